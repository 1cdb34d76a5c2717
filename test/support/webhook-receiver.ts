import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** One request a receiver got, and what it answered. */
export interface Received {
  id: string;
  timestamp: string;
  signature: string;
  body: string;
  /** What the receiver answered; null when it never answered. */
  status: number | null;
  at: number;
}

/**
 * What to answer the nth request (0-based): a status, `hang` (never answer), or a status with
 * headers and a body (`endless`: a body that never ends).
 */
export type Answer = number | 'hang' | { status: number; headers?: Record<string, string>; body?: string | 'endless' };

export interface Receiver {
  url: string;
  received: Received[];
  /** The bodies of the requests answered 2xx, parsed, by webhook-id (the first one each). */
  accepted(): Map<string, { type: string; data: { seq: number; trackerId: string; from: string | null; to: string } }>;
  close(): Promise<void>;
}

/**
 * A webhook receiver on 127.0.0.1 and a free port that records every request and answers as
 * `answer` says.
 *
 * @example
 * const receiver = await startReceiver((n) => (n < 3 ? 500 : 204));
 */
export async function startReceiver(answer: (n: number, request: Received) => Answer = () => 204): Promise<Receiver> {
  const received: Received[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const header = (name: string) => String(req.headers[name] ?? '');
      const entry: Received = {
        id: header('webhook-id'),
        timestamp: header('webhook-timestamp'),
        signature: header('webhook-signature'),
        body: Buffer.concat(chunks).toString('utf8'),
        status: null,
        at: Date.now(),
      };
      const reply = answer(received.length, entry);
      received.push(entry);
      if (reply === 'hang') return;
      const { status, headers, body } =
        typeof reply === 'number' ? { status: reply, headers: {}, body: undefined } : reply;
      entry.status = status;
      res.writeHead(status, headers);
      if (body !== 'endless') {
        res.end(body ?? (status >= 400 ? 'no thanks' : ''));
        return;
      }
      const chunk = 'x'.repeat(16 * 1024);
      const more = () => {
        while (!res.destroyed && res.write(chunk));
        if (!res.destroyed) res.once('drain', more);
      };
      more();
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    received,
    accepted() {
      const byId = new Map();
      for (const r of received) {
        if (r.status !== null && r.status >= 200 && r.status < 300 && !byId.has(r.id))
          byId.set(r.id, JSON.parse(r.body));
      }
      return byId;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
