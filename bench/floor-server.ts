/**
 * The floor for `npm run bench:api`: a bare Express 5 app with the same routes on an in-memory Map
 * (JSON body parsing and a hash check, nothing else). Prints `{"url": …}` once listening.
 */
import express from 'express';

const HASH = /^0x[0-9a-fA-F]{64}$/;
const trackers = new Map<string, { id: string; txHash: string; state: string; createdAt: string }>();
const app = express();
app.use(express.json({ limit: '1mb' }));

function create(body: { txHash?: unknown; id?: unknown }): { status: number; tracker?: unknown } {
  if (typeof body.txHash !== 'string' || !HASH.test(body.txHash)) return { status: 400 };
  const txHash = body.txHash.toLowerCase();
  const id = typeof body.id === 'string' ? body.id : txHash;
  const existing = trackers.get(id);
  if (existing) return { status: existing.txHash === txHash ? 200 : 409, tracker: existing };
  const tracker = { id, txHash, state: 'pending', createdAt: new Date().toISOString() };
  trackers.set(id, tracker);
  return { status: 201, tracker };
}

app.post('/trackers', (req, res) => {
  const { status, tracker } = create(req.body as { txHash?: unknown });
  res.status(status).json(tracker ?? { error: { code: 'invalid_tx_hash', message: 'bad hash' } });
});
app.post('/trackers/batch', (req, res) => {
  const items = (req.body as { trackers: Array<{ txHash?: unknown }> }).trackers;
  res.json({ results: items.map((item) => create(item)) });
});
app.get('/trackers/:id', (req, res) => {
  const tracker = trackers.get(req.params.id);
  if (!tracker) res.status(404).json({ error: { code: 'not_found', message: 'no tracker' } });
  else res.json(tracker);
});

const server = app.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as { port: number };
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${port}` })}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
