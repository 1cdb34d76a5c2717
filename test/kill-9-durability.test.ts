import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../src/store/sqlite.js';
import { progressRank } from './fixtures/progress.js';
import { seededRandom, tempDir, waitFor } from './helpers.js';

const CHILD = fileURLToPath(new URL('./fixtures/kill9-child.ts', import.meta.url));
const ROUNDS = 4;
/** The changes the fixture's happy path makes, in order; a stored rank has made this many of them. */
const PATH = ['START', 'TX_MINED', 'NEW_HEAD', 'NEW_HEAD'];
const CHANGES_AT_RANK: Record<number, number> = { 0: 1, 2: 2, 3: 3, 1000: 4 };

interface Child {
  process: ChildProcess;
  acks: number;
  lines: string[];
  stderr: string;
  exited: boolean;
  exitCode: number | null;
}

/** Run the fixture; every `A <id> <rank>` line is recorded in `acked` (highest rank per id). */
function runChild(args: string[], acked: Map<string, number>): Child {
  const child: Child = {
    process: spawn(process.execPath, ['--import', 'tsx', CHILD, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }),
    acks: 0,
    lines: [],
    stderr: '',
    exited: false,
    exitCode: null,
  };
  let buffered = '';
  child.process.stdout!.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    for (const line of lines) {
      child.lines.push(line);
      const [kind, id, rank] = line.split(' ');
      if (kind !== 'A') continue;
      child.acks++;
      acked.set(id!, Math.max(acked.get(id!) ?? -1, Number(rank)));
    }
  });
  child.process.stderr!.on('data', (chunk: Buffer) => (child.stderr += chunk.toString('utf8')));
  child.process.on('exit', (code) => {
    child.exited = true;
    child.exitCode = code;
  });
  return child;
}

describe('kill -9 loses nothing that was acknowledged', () => {
  const dir = tempDir();
  afterAll(() => dir.remove());

  it('every acknowledged start survives SIGKILL at random moments, as far as acknowledged, with exactly its history rows, and trackers then finish', async () => {
    const seed = Number(process.env.KILL9_SEED ?? Date.now() % 1_000_000);
    const random = seededRandom(seed);
    const path = join(dir.path, 'trackers.db');
    const acked = new Map<string, number>();
    const note = `seed ${seed} (replay with KILL9_SEED=${seed})`;

    for (let round = 0; round < ROUNDS; round++) {
      const child = runChild([path, 'run', `r${round}`], acked);
      // Kill at a random acknowledgement count: the other workers are mid-write at that moment.
      const killAt = 20 + Math.floor(random() * 1500);
      await waitFor(() => child.acks >= killAt || child.exited, `${killAt} acknowledgements in round ${round}`, 60_000);
      expect(child.exited, `child ended by itself: ${child.stderr}`).toBe(false);
      child.process.kill('SIGKILL');
      await waitFor(() => child.exited, 'the killed child to exit');

      // A fresh connection recovers the WAL the way the next process start does.
      const store = new SqliteStore({ path });
      for (const [id, rank] of acked) {
        const record = await store.get(id);
        expect(record, `${id} acknowledged, missing after kill in round ${round}; ${note}`).toBeDefined();
        const stored = record!.snapshot as { context: { confirmations: number } };
        const storedRank = progressRank({ state: record!.state, confirmations: stored.context.confirmations });
        expect(storedRank, `${id} went back from rank ${rank} in round ${round}; ${note}`).toBeGreaterThanOrEqual(rank);
        // The history rows commit with the snapshot: exactly the changes that led to the stored row.
        const history = (await store.history(id, { limit: 10 })).items;
        expect(
          history.map((e) => e.event),
          `${id}: history of a tracker stored at rank ${storedRank} in round ${round}; ${note}`,
        ).toEqual(PATH.slice(0, CHANGES_AT_RANK[storedRank]));
        expect(history.at(-1)!.to.split('.')[0], `${id}; ${note}`).toBe(record!.state);
      }
      await store.close();
    }
    expect(acked.size).toBeGreaterThan(ROUNDS * 5);

    const finisher = runChild([path, 'finish'], acked);
    await waitFor(() => finisher.exited, 'the finishing run to exit', 60_000);
    expect(finisher.exitCode, finisher.stderr).toBe(0);
    expect(finisher.lines.at(-1)).toMatch(/^DONE \d+$/);

    const store = new SqliteStore({ path });
    for (const id of acked.keys()) {
      expect((await store.get(id))?.state, `${id}; ${note}`).toBe('confirmed');
      // Rehydrated trackers add no row; the finishing run adds the changes it made.
      const events = (await store.history(id, { limit: 10 })).items.map((e) => e.event);
      expect(events[0], `${id}; ${note}`).toBe('START');
      expect(
        events.filter((e) => e === 'START'),
        `${id}; ${note}`,
      ).toHaveLength(1);
      expect(events.length, `${id}: ${events.join(' ')}; ${note}`).toBeLessThanOrEqual(PATH.length);
    }
    let live = 0;
    for await (const batch of store.loadLive(1000)) live += batch.length;
    expect(live).toBe(0);
    await store.close();
  });
});
