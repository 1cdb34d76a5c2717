/**
 * The floor of `POST /trackers/batch` for `npm run bench:api`: a bare Express 5 app that parses the
 * same body, starts a plain actor of the tracker machine for each new hash and commits their rows in
 * one plain better-sqlite3 transaction (bench/plain-floor.ts) before it answers. None of the
 * service's code. Prints `{"url": …}` once listening.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express from 'express';
import { type PlainActor, type PlainRow, openPlainFloor, plainActor, plainRow } from './plain-floor.js';

const HASH = /^0x[0-9a-fA-F]{64}$/;
const floor = openPlainFloor(join(mkdtempSync(join(tmpdir(), 'bench-api-batch-floor-')), 'trackers.db'));
const actors = new Map<string, PlainActor>();
const app = express();
app.use(express.json({ limit: '1mb' }));

const view = (actor: PlainActor) => {
  const { context, value } = actor.getSnapshot();
  return {
    id: context.id,
    txHash: context.txHash,
    state: typeof value === 'string' ? value : Object.keys(value)[0],
    createdAt: new Date(context.createdAt).toISOString(),
  };
};

app.post('/trackers/batch', (req, res) => {
  const items = (req.body as { trackers: Array<{ txHash?: unknown; id?: unknown }> }).trackers;
  const rows: PlainRow[] = [];
  const results = items.map((item) => {
    if (typeof item.txHash !== 'string' || !HASH.test(item.txHash)) return { status: 400 };
    const txHash = item.txHash.toLowerCase();
    const id = typeof item.id === 'string' ? item.id : txHash;
    const existing = actors.get(id);
    if (existing)
      return { status: existing.getSnapshot().context.txHash === txHash ? 200 : 409, tracker: view(existing) };
    const actor = plainActor(id, txHash);
    actors.set(id, actor);
    rows.push(plainRow(actor));
    return { status: 201, tracker: view(actor) };
  });
  floor.commit(rows);
  res.json({ results });
});

const server = app.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as { port: number };
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${port}` })}\n`);
});
process.on('SIGTERM', () => server.close(() => (floor.close(), process.exit(0))));
