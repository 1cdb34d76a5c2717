import type { Request, RequestHandler, Response } from 'express';
import type { TrackerSystem } from '../runtime/system.js';
import type { Tracker } from '../runtime/tracker-view.js';
import { normalizeId } from '../runtime/validate.js';
import { ApiError } from './errors.js';

interface Change {
  id: number;
  trackerId: string | undefined;
  /**
   * `all`: a tracker change, for every client of the whole feed and that tracker's followers.
   * `feed`: a new head, for clients of the whole feed (they derive confirming trackers' counts).
   * `followers`: a confirming tracker's confirmations moved with a head, for its followers only.
   */
  audience: 'all' | 'feed' | 'followers';
  /** The SSE frame, built once for every client. */
  frame: string;
}

interface Client {
  res: Response;
  trackerId: string | undefined;
}

export interface ChangeFeedOptions {
  /** Changes kept for `Last-Event-ID` replay (default 10,000). */
  replay?: number;
  /** A client whose unsent data passes this many bytes is cut off; it reconnects and replays (default 4 MiB). */
  maxBufferedBytes?: number;
  /** Comment line sent to keep proxies from closing idle streams (default 15 s). */
  heartbeatMs?: number;
}

/**
 * Every tracker change as Server-Sent Events: a global, increasing `id:`, the tracker JSON as
 * `data:`, a bounded ring buffer for `Last-Event-ID` replay. A new head of a chain is one `head`
 * event (`{blockNumber, chain, name}`: confirming trackers' confirmations on that chain follow from
 * it); a client following one confirming tracker (`?id=`) gets that tracker with its new count
 * instead.
 *
 * @example
 * const feed = new ChangeFeed(system);
 * app.get('/events', feed.handler());
 */
export class ChangeFeed {
  private readonly buffer: Change[] = [];
  private readonly clients = new Set<Client>();
  private readonly unsubscribe: () => void;
  private readonly unsubscribeHeads: () => void;
  private readonly system: TrackerSystem;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly replay: number;
  private readonly maxBufferedBytes: number;
  private nextId = 1;

  constructor(system: TrackerSystem, options: ChangeFeedOptions = {}) {
    this.replay = options.replay ?? 10_000;
    this.maxBufferedBytes = options.maxBufferedBytes ?? 4 * 1024 * 1024;
    this.system = system;
    this.unsubscribe = system.subscribe((tracker) => this.publish(tracker.id, 'all', JSON.stringify(tracker), 'tracker'));
    this.unsubscribeHeads = system.subscribeHeads((blockNumber, chainId) => this.publishHead(blockNumber, chainId));
    this.heartbeat = setInterval(() => this.broadcastComment('heartbeat'), options.heartbeatMs ?? 15_000).unref();
  }

  get clientCount(): number {
    return this.clients.size;
  }

  /** The `GET /events` handler. */
  handler(): RequestHandler {
    return (req, res) => {
      const only = typeof req.query.id === 'string' ? normalizeId(req.query.id) : undefined;
      const lastEventId = parseLastEventId(req);
      res.status(200).set({
        'Content-Type': 'text/event-stream; charset=utf-8',
        'Cache-Control': 'no-cache, no-transform',
        Connection: 'keep-alive',
        'X-Accel-Buffering': 'no',
      });
      res.flushHeaders();
      res.write('retry: 2000\n: connected\n\n');
      if (lastEventId !== undefined) this.replayTo(res, lastEventId, only);
      const client: Client = { res, trackerId: only };
      this.clients.add(client);
      res.on('close', () => this.clients.delete(client));
    };
  }

  /** End every stream (shutdown) and stop listening to the system. */
  close(): void {
    clearInterval(this.heartbeat);
    this.unsubscribe();
    this.unsubscribeHeads();
    // End each stream, then drop its connection: a stream's socket is never reused for a request.
    for (const client of this.clients) client.res.end(() => client.res.socket?.destroy());
    this.clients.clear();
  }

  private publish(trackerId: string | undefined, audience: Change['audience'], data: string, event: string): void {
    const id = this.nextId++;
    const change: Change = { id, trackerId, audience, frame: `id: ${id}\nevent: ${event}\ndata: ${data}\n\n` };
    this.buffer.push(change);
    // Trim in chunks so a busy feed does not shift the array on every change.
    if (this.buffer.length > this.replay + 1024) this.buffer.splice(0, this.buffer.length - this.replay);
    for (const client of this.clients) if (reaches(change, client.trackerId)) this.send(client, change.frame);
  }

  private publishHead(blockNumber: number, chainId: number): void {
    const name = this.system.chains.get(chainId)?.name;
    this.publish(undefined, 'feed', JSON.stringify({ blockNumber, chain: chainId, name }), 'head');
    const followed = new Set<string>();
    for (const client of this.clients) if (client.trackerId !== undefined) followed.add(client.trackerId);
    for (const trackerId of followed) {
      const tracker = this.confirming(trackerId, chainId);
      if (tracker) this.publish(trackerId, 'followers', JSON.stringify(tracker), 'tracker');
    }
  }

  /** The live tracker with its confirmations at its chain's head, when it is confirming on `chainId`. */
  private confirming(trackerId: string, chainId: number): Tracker | undefined {
    const tracker = this.system.peek(trackerId);
    return tracker?.state === 'confirming' && tracker.chainId === chainId ? tracker : undefined;
  }

  private replayTo(res: Response, lastEventId: number, only: string | undefined): void {
    const start = this.buffer.length - Math.min(this.buffer.length, this.replay);
    const oldest = this.buffer[start]?.id ?? this.nextId;
    if (lastEventId + 1 < oldest) {
      // The client missed changes that are no longer buffered: say so, so it can re-list.
      res.write(`event: gap\ndata: ${JSON.stringify({ lastEventId, oldestId: oldest })}\n\n`);
    }
    for (let i = start; i < this.buffer.length; i++) {
      const change = this.buffer[i]!;
      if (change.id > lastEventId && reaches(change, only)) res.write(change.frame);
    }
  }

  private send(client: Client, frame: string): void {
    if (client.res.writableLength > this.maxBufferedBytes) {
      // A slow reader must not hold the server's memory; it reconnects with Last-Event-ID.
      client.res.end();
      this.clients.delete(client);
      return;
    }
    client.res.write(frame);
  }

  private broadcastComment(text: string): void {
    for (const client of this.clients) this.send(client, `: ${text}\n\n`);
  }
}

/** Whether a client of the whole feed (`only` undefined) or a follower of `only` gets `change`. */
function reaches(change: Change, only: string | undefined): boolean {
  if (only === undefined) return change.audience !== 'followers';
  return change.audience !== 'feed' && change.trackerId === only;
}

function parseLastEventId(req: Request): number | undefined {
  const raw = req.get('last-event-id') ?? (typeof req.query.lastEventId === 'string' ? req.query.lastEventId : undefined);
  if (raw === undefined) return undefined;
  if (!/^\d{1,15}$/.test(raw)) throw new ApiError(400, 'invalid_last_event_id', 'Last-Event-ID must be a non-negative integer');
  return Number(raw);
}
