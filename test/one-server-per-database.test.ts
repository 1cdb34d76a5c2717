import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { DatabaseLockedError } from '../src/errors.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { hashOf, tempDir } from './helpers.js';
import { type ServiceProcess, spawnFromSource } from './support/service-process.js';

describe('one server per database', () => {
  const dir = tempDir('tx-tracker-lock-');
  const running: ServiceProcess[] = [];
  afterEach(() => {
    for (const service of running.splice(0)) service.child.kill('SIGKILL');
  });
  afterAll(() => dir.remove());

  it('a second store opened with lock on the same file is refused until the first closes; without lock, readers still open it', async () => {
    const path = join(dir.path, 'in-process.db');
    const first = new SqliteStore({ path, lock: true });
    expect(() => new SqliteStore({ path, lock: true })).toThrow(DatabaseLockedError);
    const reader = new SqliteStore({ path });
    await reader.close();
    await first.close();
    const next = new SqliteStore({ path, lock: true });
    await next.close();
  });

  it('regression: a second server on the same SQLite file refuses to start with one line, instead of serving trackers the first one changes', async () => {
    const path = join(dir.path, 'trackers.db');
    const env = { PORT: '0', DATABASE_URL: `sqlite:${path}` };
    const first = spawnFromSource(env);
    running.push(first);
    const { api } = await first.started();
    const id = 'txn_lock_test';
    const created = await fetch(`${api}/trackers`, { method: 'POST', body: JSON.stringify({ id, txHash: hashOf(7) }) });
    expect(created.status).toBe(201);

    const second = spawnFromSource(env);
    running.push(second);
    const outcome = await Promise.race([
      second.exited.then((code) => ({ code })),
      second.started().then(() => 'served as well'),
    ]);
    expect(outcome).toEqual({ code: 1 });
    const lines = second.stderr().trim().split('\n');
    expect(lines).toEqual([
      expect.stringMatching(
        /^database .*trackers\.db is in use by another tx-tracker process \(it holds .*trackers\.db-lock\)/,
      ),
    ]);
    // Refused before anything else started: no embedded anvil, no HTTP.
    expect(second.stdout()).not.toContain('started a local anvil');

    // A server killed with SIGKILL leaves no stale lock: the next one starts and has the tracker.
    first.child.kill('SIGKILL');
    await first.exited;
    const third = spawnFromSource(env);
    running.push(third);
    const restarted = await third.started();
    const found = await fetch(`${restarted.api}/trackers/${id}`);
    expect(found.status).toBe(200);
    third.child.kill('SIGTERM');
    expect(await third.exited).toBe(0);
  });
});
