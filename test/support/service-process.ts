import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { waitUntil } from './wait.js';

/** The repository's root: `npm start` and the entry files are run from there. */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** What the service's startup line says. */
export interface Started {
  api: string;
  chain: string;
  database: string;
  pid: number;
}

export interface ServiceProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (null when killed by a signal) once the process has exited. */
  exited: Promise<number | null>;
  /** The startup line, once logged (fails if the process exits first or the deadline passes). */
  started(timeoutMs?: number): Promise<Started>;
  /** The pid and URL of the embedded anvil, once the service has logged that it started one. */
  anvil(timeoutMs?: number): Promise<{ pid: number; url: string }>;
}

/**
 * Run the service as users do, as a child process: `command` and `args` from the repository's root
 * (`node --import tsx src/main.ts`, `node <build>/src/main.js`, `npm start`), with `env` over this
 * process's environment and info-level JSON logs.
 *
 * @example
 * const service = spawnService(process.execPath, ['--import', 'tsx', 'src/main.ts'], { PORT: '0', DATABASE_URL: 'sqlite:/tmp/x.db' });
 * const { api } = await service.started();
 */
export function spawnService(command: string, args: string[], env: Record<string, string>): ServiceProcess {
  const child = spawn(command, args, {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let code: number | null | undefined;
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (exitCode) => {
      code = exitCode;
      resolve(exitCode);
    }),
  );
  const logLine = (msg: RegExp): Record<string, unknown> | undefined => {
    // Whole lines only: the last one may still be arriving.
    for (const line of stdout.split('\n').slice(0, -1)) {
      if (!line.startsWith('{')) continue;
      const entry = JSON.parse(line) as Record<string, unknown>;
      if (typeof entry.msg === 'string' && msg.test(entry.msg)) return entry;
    }
    return undefined;
  };
  const waitForLine = (msg: RegExp, what: string, timeoutMs: number): Promise<Record<string, unknown>> =>
    waitUntil(
      () => {
        const entry = logLine(msg);
        if (entry) return entry;
        if (code !== undefined)
          throw new Error(`the service exited (code ${code}) before ${what}: ${stderr}${stdout}`.slice(0, 2000));
        return undefined;
      },
      what,
      timeoutMs,
    );
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
    started: async (timeoutMs = 30_000) =>
      (await waitForLine(/^tx-tracker: API /, 'the startup line', timeoutMs)) as unknown as Started,
    anvil: async (timeoutMs = 30_000) => {
      const entry = await waitForLine(/started a local anvil/, 'the embedded anvil', timeoutMs);
      return { pid: entry.pid as number, url: entry.url as string };
    },
  };
}

/** The entry from source, as `npm start` runs it (without npm). */
export function spawnFromSource(env: Record<string, string>, args: string[] = []): ServiceProcess {
  return spawnService(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], env);
}

/**
 * Whether `pid` is a running process. One that has exited but is not reaped yet (a zombie: its
 * parent, e.g. an init that does not reap, has not waited for it) is not running.
 */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    // No /proc (macOS): kill(pid, 0) said it is there.
    return true;
  }
}

/** Whether an HTTP (or JSON-RPC) server answers at `url` at all. */
export async function answers(url: string): Promise<boolean> {
  try {
    await fetch(url, { signal: AbortSignal.timeout(2000) });
    return true;
  } catch {
    return false;
  }
}
