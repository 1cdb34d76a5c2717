/** The BEAM anchor (the seed's `seed_otp_bench.exs`, named by BENCH_ANCHOR) run beside ours, its printed lines parsed. */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';

// The anchor is not part of this repository: its path is given, never assumed.
export const ANCHOR = process.env.BENCH_ANCHOR ?? '';

export interface BeamResult {
  n: number;
  startMs?: number;
  bytesPerTracker?: number;
  totalMiB?: number;
  lookupUs?: number;
  callUs?: number;
  headAllMs?: number;
  crashP50Us?: number;
  crashP99Us?: number;
  /** Set when the script stopped before printing every line (its last stderr line). */
  error?: string;
  load: number[];
}

/** Whether `elixir` is on the PATH and the anchor script is where we expect it. */
export function beamAvailable(): { ok: true } | { ok: false; why: string } {
  const which = spawnSync('sh', ['-c', 'command -v elixir'], { encoding: 'utf8' });
  if (which.status !== 0) return { ok: false, why: 'elixir not found: BEAM column skipped' };
  if (ANCHOR === '') return { ok: false, why: 'BENCH_ANCHOR not set: BEAM column skipped' };
  if (!existsSync(ANCHOR)) return { ok: false, why: `${ANCHOR} not found: BEAM column skipped` };
  return { ok: true };
}

const num = (text: string, re: RegExp): number | undefined => {
  const m = re.exec(text);
  return m ? Number(m[1]) : undefined;
};

export function runBeam(n: number): BeamResult {
  const load = loadavg();
  let out = '';
  let error: string | undefined;
  try {
    out = execFileSync('elixir', [ANCHOR, String(n)], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 1 << 22,
    });
  } catch (e) {
    const failed = e as { stdout?: string; stderr?: string };
    out = failed.stdout ?? '';
    const stderr = failed.stderr ?? String(e);
    error = `anchor stopped: ${/\(([A-Za-z.]*Error)\)/.exec(stderr)?.[1] ?? 'error'}`;
  }
  const batches = /ms per batch of \d+: ([\d. ]+?)\s+\(/.exec(out)?.[1];
  const result: BeamResult = {
    n,
    startMs: batches?.split(/\s+/).reduce((sum, ms) => sum + Number(ms), 0),
    bytesPerTracker: num(out, /memory per tracker \(process \+ registry\): (\d+) bytes/),
    totalMiB: num(out, /total (\d+) MiB/),
    lookupUs: num(out, /^lookup: ([\d.]+) us/m),
    callUs: num(out, /lookup \+ call round trip: ([\d.]+) us/),
    headAllMs: num(out, /new head to all \d+ \(sequential calls\): ([\d.]+) ms/),
    crashP50Us: num(out, /crash -> restarted and found by id: p50 (\d+) us/),
    crashP99Us: num(out, /p99 (\d+) us/),
    load,
  };
  if (error) result.error = error;
  return result;
}
