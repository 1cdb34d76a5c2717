import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { Logger } from '../src/runtime/logger.js';
import { type TrackerSystem, type TrackerSystemOptions, createTrackerSystem } from '../src/runtime/system.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { hashOf, tempDir, waitFor } from './helpers.js';

/** Keeps every log line, so a test can see the quarantine being reported. */
function recordingLogger(): Logger & { lines: Array<{ level: string; obj: object; msg: string | undefined }> } {
  const lines: Array<{ level: string; obj: object; msg: string | undefined }> = [];
  const at = (level: string) => (obj: object, msg?: string) => void lines.push({ level, obj, msg });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

const insert = (store: SqliteStore, row: { id: string; state: string; version: number; snapshot: string }): void => {
  store.db
    .prepare(
      `INSERT OR REPLACE INTO trackers (id, tx_hash, state, version, snapshot, restarts, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, 0, 1000, 1000)`,
    )
    .run(row.id, hashOf(7), row.state, row.version, row.snapshot);
};

/** A stored snapshot of a real tracker, as JSON, changed by `edit`. */
async function storedSnapshot(
  store: SqliteStore,
  id: string,
): Promise<{ value: unknown; context: Record<string, unknown> }> {
  return JSON.parse(JSON.stringify((await store.get(id))!.snapshot)) as {
    value: unknown;
    context: Record<string, unknown>;
  };
}

describe('rows that do not fit the machine are quarantined, never dropped or run', () => {
  const dir = tempDir();
  const opened: Array<{ system: TrackerSystem; store: SqliteStore }> = [];
  afterEach(async () => {
    for (const { system, store } of opened.splice(0)) {
      await system.shutdown();
      await store.close();
    }
  });
  afterAll(() => dir.remove());

  async function open(name: string, options: Partial<TrackerSystemOptions> = {}) {
    const store = new SqliteStore({ path: join(dir.path, name) });
    const system = await createTrackerSystem({ store, faultInjection: true, ...options });
    opened.push({ system, store });
    return { store, system };
  }

  it('quarantines bad JSON, an unknown state, a missing field and an old version without migration; the rest start', async () => {
    const first = await open('mixed.db');
    for (let i = 0; i < 3; i++) await first.system.start(`good_${i}`, { txHash: hashOf(i), confirmations: 2 });
    await first.system.send('good_0', {
      type: 'TX_MINED',
      blockNumber: 10,
      blockHash: hashOf(10),
      status: 'success',
      head: 10,
    });
    const template = await storedSnapshot(first.store, 'good_1');
    await first.system.shutdown();
    const cooked = (id: string, edit: (s: typeof template) => void): string => {
      const s = JSON.parse(JSON.stringify(template)) as typeof template;
      s.context.id = id;
      edit(s);
      return JSON.stringify(s);
    };
    insert(first.store, { id: 'bad_json', state: 'pending', version: 1, snapshot: '{"value": "pending", "cont' });
    insert(first.store, {
      id: 'unknown_state',
      state: 'pending',
      version: 1,
      snapshot: cooked('unknown_state', (s) => (s.value = { pending: 'mined' })),
    });
    insert(first.store, {
      id: 'unknown_column',
      state: 'mined',
      version: 1,
      snapshot: cooked('unknown_column', (s) => (s.value = 'mined')),
    });
    insert(first.store, {
      id: 'missing_field',
      state: 'pending',
      version: 1,
      snapshot: cooked('missing_field', (s) => delete s.context.reorgs),
    });
    insert(first.store, { id: 'old_version', state: 'pending', version: 0, snapshot: cooked('old_version', () => {}) });
    insert(first.store, {
      id: 'future_version',
      state: 'pending',
      version: 9,
      snapshot: cooked('future_version', () => {}),
    });
    await first.store.close();
    opened.pop();

    const logger = recordingLogger();
    const { system, store } = await open('mixed.db', { logger });
    const bad = ['bad_json', 'unknown_state', 'unknown_column', 'missing_field', 'old_version', 'future_version'];
    const reasons: Record<string, RegExp> = {
      bad_json: /not valid JSON/,
      unknown_state: /unknown state/,
      unknown_column: /unknown state/,
      missing_field: /reorgs is missing/,
      old_version: /no migration from machine version 0 to 1/,
      future_version: /newer than this one/,
    };
    for (const id of bad) {
      expect(system.lookup(id), id).toBeUndefined();
      const tracker = await system.get(id);
      expect(tracker, id).toMatchObject({ id, state: 'failed', failure: { reason: 'incompatible_snapshot' } });
      expect(tracker!.failure!.detail, id).toMatch(reasons[id]!);
      expect(
        logger.lines.some(
          (l) => l.level === 'error' && (l.obj as { id?: string }).id === id && /quarantined/.test(l.msg ?? ''),
        ),
        id,
      ).toBe(true);
    }
    const failedPage = await system.list({ state: 'failed', limit: 100 });
    expect(failedPage.items.map((t) => t.id).sort()).toEqual([...bad].sort());

    // The row as it was found is kept, byte for byte where it was not JSON.
    const kept = await store.get('bad_json');
    expect(kept!.quarantined).toMatchObject({
      original: { snapshot: '{"value": "pending", "cont', version: 1, state: 'pending' },
    });
    expect((await store.get('old_version'))!.quarantined!.original.version).toBe(0);

    // Every other tracker started normally and carries on.
    expect(system.stats().live).toBe(3);
    const done = await system.send('good_0', { type: 'NEW_HEAD', blockNumber: 11 });
    expect(done).toMatchObject({ status: 'accepted', tracker: { state: 'confirmed' } });
    expect(await system.get('good_2')).toMatchObject({ state: 'pending' });
  });

  it('loads an old version through a migration step', async () => {
    const first = await open('migrate.db');
    await first.system.start('old', { txHash: hashOf(7), confirmations: 3 });
    await first.system.shutdown();
    // Version 0 of this test's story had no `reorgs` and called `replacedBy` `replacement`.
    const v0 = await storedSnapshot(first.store, 'old');
    delete v0.context.reorgs;
    v0.context.replacement = v0.context.replacedBy;
    delete v0.context.replacedBy;
    insert(first.store, { id: 'old', state: 'pending', version: 0, snapshot: JSON.stringify(v0) });
    await first.store.close();
    opened.pop();

    const migrations = {
      0: (snapshot: unknown) => {
        const s = snapshot as { context: Record<string, unknown> };
        const { replacement, ...context } = s.context;
        return { ...s, context: { ...context, reorgs: 0, replacedBy: replacement ?? null } };
      },
    };
    const { system } = await open('migrate.db', { migrations });
    expect(system.lookup('old')).toBeDefined();
    await system.send('old', { type: 'TX_MINED', blockNumber: 5, blockHash: hashOf(5), status: 'success', head: 7 });
    expect(await system.get('old')).toMatchObject({ state: 'confirmed', reorgs: 0, replacedBy: null });
  });

  it('quarantines instead of running a row that was corrupted on disk while its tracker ran (crash path)', async () => {
    const logger = recordingLogger();
    const { system, store } = await open('crash.db', { logger });
    await system.start('victim', { txHash: hashOf(7), confirmations: 3 });
    await store.flush();
    store.db.prepare("UPDATE trackers SET snapshot = 'garbage' WHERE id = 'victim'").run();
    const before = system.lookup('victim');
    await system.send('victim', { type: 'CRASH' });
    await waitFor(
      async () => (await system.get('victim'))?.state === 'failed',
      'the crashed tracker to be quarantined',
    );
    expect(system.lookup('victim')).toBeUndefined();
    expect(before).toBeDefined();
    expect(await system.get('victim')).toMatchObject({ failure: { reason: 'incompatible_snapshot' } });
    expect((await store.get('victim'))!.quarantined!.original.snapshot).toBe('garbage');
  });
});
