/**
 * The durable floor for `npm run bench:api`: the bare floor's Express 5 app and routes, where each
 * tracker is what the runtime makes of it at the least: one of its tracker actors (the stamped
 * logic, created with a parent) with one observer that writes its snapshot to a SQLite store (the
 * service's own store class, writer thread included), and a create is answered once its snapshot is
 * durable. No supervisor, registry shards, chain watcher, validation schemas, SSE, metrics or
 * request ids. Prints `{"url": …}` once listening.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express from 'express';
import { toTracker, topState } from '../src/runtime/tracker-view.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { type DurableFloorTracker, durableFloorTrackers } from './durable-floor.js';

const HASH = /^0x[0-9a-fA-F]{64}$/;
const store = new SqliteStore({ path: join(mkdtempSync(join(tmpdir(), 'bench-api-durable-floor-')), 'trackers.db') });
const spawn = durableFloorTrackers(store, 12);
const trackers = new Map<string, DurableFloorTracker>();
const app = express();
app.use(express.json({ limit: '1mb' }));

const view = (actor: DurableFloorTracker) => {
  const snapshot = actor.getSnapshot();
  return toTracker(snapshot.context, topState(snapshot.value));
};

function create(body: { txHash?: unknown; id?: unknown }): { status: number; tracker?: unknown } {
  if (typeof body.txHash !== 'string' || !HASH.test(body.txHash)) return { status: 400 };
  const txHash = body.txHash.toLowerCase();
  const id = typeof body.id === 'string' ? body.id : txHash;
  const existing = trackers.get(id);
  if (existing) return { status: existing.getSnapshot().context.txHash === txHash ? 200 : 409, tracker: view(existing) };
  const actor = spawn(id, txHash);
  trackers.set(id, actor);
  return { status: 201, tracker: view(actor) };
}

app.post('/trackers', async (req, res) => {
  const { status, tracker } = create(req.body as { txHash?: unknown });
  if (status === 201) await store.flush();
  res.status(status).json(tracker ?? { error: { code: 'invalid_tx_hash', message: 'bad hash' } });
});
app.post('/trackers/batch', async (req, res) => {
  const items = (req.body as { trackers: Array<{ txHash?: unknown }> }).trackers;
  const results = items.map((item) => create(item));
  await store.flush();
  res.json({ results });
});
app.get('/trackers/:id', (req, res) => {
  const actor = trackers.get(req.params.id);
  if (!actor) res.status(404).json({ error: { code: 'not_found', message: 'no tracker' } });
  else res.json(view(actor));
});

const server = app.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as { port: number };
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${port}` })}\n`);
});
process.on('SIGTERM', () => server.close(() => void store.close().then(() => process.exit(0))));
