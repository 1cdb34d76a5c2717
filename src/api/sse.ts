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
  /** The frame's size in bytes, for the replay bound. */
  bytes: number;
}

interface Client {
  res: Response;
  trackerId: string | undefined;
  /** Ring position (absolute) of the next change to give or pass over. */
  position: number;
  /** Changes with ids up to this one are skipped (a client resuming ahead of this instance's feed). */
  after: number;
  /** Waiting for its socket to drain: changes wait in the ring meanwhile. */
  waiting: boolean;
  closed: boolean;
  stallTimer: NodeJS.Timeout | undefined;
}

export interface ChangeFeedOptions {
  /** Changes kept for `Last-Event-ID` replay (default 10,000). */
  replay?: number;
  /** Bytes of changes kept for replay, the oldest dropped first (default 8 MiB). */
  replayBytes?: number;
  /** Streams open at once; more are refused with 503 `too_many_streams` (default 100). */
  maxClients?: number;
  /** A stream whose socket takes no data for this long is cut off (default 30 s). */
  stallTimeoutMs?: number;
  /** Comment line sent to keep proxies from closing idle streams (default 15 s). */
  heartbeatMs?: number;
  /**
   * Tracker changes numbered elsewhere (several instances share one change log, src/cluster),
   * instead of this system's own changes numbered here: their ids are the log's, the same on every
   * instance, so `Last-Event-ID` holds across instances.
   */
  changes?: ChangeSource;
}

/** Tracker changes with ids from a shared, increasing sequence (ids may skip numbers). */
export interface ChangeSource {
  /** The changes kept for replay first (oldest first), then each new one; returns the unsubscribe function. */
  subscribe(listener: (id: number, tracker: Tracker) => void): () => void;
}

export interface ChangeFeedStats {
  clients: number;
  /** Bytes written to the streams that their sockets have not taken yet, over all streams. */
  bufferedBytes: number;
  /** Changes kept for replay, and their bytes. */
  keptChanges: number;
  keptBytes: number;
  /** Streams cut off since start: stalled, or fallen behind the replay window. */
  dropped: number;
  /** Streams refused since start, at `maxClients`. */
  refused: number;
}

/** A stream is given one chunk of about this many characters per write and per event-loop turn. */
const CHUNK_CHARS = 16 * 1024;
const RETRY_AFTER_SECONDS = 5;

/**
 * Every tracker change as Server-Sent Events: a global, increasing `id:`, the tracker JSON as
 * `data:`, a ring of recent changes bounded by count and bytes for `Last-Event-ID` replay. A new
 * head of a chain is one `head` event (`{blockNumber, chain, name}`: confirming trackers'
 * confirmations on that chain follow from it); a client following one confirming tracker (`?id=`)
 * gets that tracker with its new count instead.
 *
 * Each stream is a cursor into the ring, written to a chunk of frames at a time until `res.write`
 * says its socket is full, then on `drain`: a stream never holds more unsent data than its
 * socket's high-water mark and one chunk, replay included. A stream whose socket stays full for
 * `stallTimeoutMs`, or whose next change has left the ring, is cut off; it may reconnect with
 * `Last-Event-ID`.
 *
 * @example
 * const feed = new ChangeFeed(system, { maxClients: 100 });
 * app.get('/events', feed.handler());
 */
export class ChangeFeed {
  /**
   * The ring: kept changes at absolute positions [`first`, `end`), in id order (no gaps unless the
   * ids come from a `ChangeSource`); `changes[0]` is position `offset`, older slots emptied.
   */
  private changes: Array<Change | undefined> = [];
  private first = 0;
  private end = 0;
  private offset = 0;
  private readonly external: boolean;
  private keptBytes = 0;
  private nextId = 1;
  private readonly clients = new Set<Client>();
  private readonly unsubscribe: () => void;
  private readonly unsubscribeHeads: () => void;
  private readonly system: TrackerSystem;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly replay: number;
  private readonly replayBytes: number;
  private readonly maxClients: number;
  private readonly stallTimeoutMs: number;
  private dropped = 0;
  private refused = 0;
  private pumpScheduled = false;

  constructor(system: TrackerSystem, options: ChangeFeedOptions = {}) {
    this.replay = options.replay ?? 10_000;
    this.replayBytes = options.replayBytes ?? 8 * 1024 * 1024;
    this.maxClients = options.maxClients ?? 100;
    this.stallTimeoutMs = options.stallTimeoutMs ?? 30_000;
    this.system = system;
    this.external = options.changes !== undefined;
    this.unsubscribe = options.changes
      ? options.changes.subscribe((id, tracker) =>
          this.publish(tracker.id, 'all', JSON.stringify(tracker), 'tracker', id),
        )
      : system.subscribe((tracker) => this.publish(tracker.id, 'all', JSON.stringify(tracker), 'tracker'));
    this.unsubscribeHeads = system.subscribeHeads((blockNumber, chainId) => this.publishHead(blockNumber, chainId));
    this.heartbeat = setInterval(() => this.broadcastComment('heartbeat'), options.heartbeatMs ?? 15_000).unref();
  }

  /** Open streams, their unsent bytes, the replay ring's size, and streams cut off or refused. */
  stats(): ChangeFeedStats {
    let bufferedBytes = 0;
    for (const client of this.clients) bufferedBytes += client.res.writableLength;
    const keptChanges = this.end - this.first;
    return {
      clients: this.clients.size,
      bufferedBytes,
      keptChanges,
      keptBytes: this.keptBytes,
      dropped: this.dropped,
      refused: this.refused,
    };
  }

  /** The `GET /events` handler. */
  handler(): RequestHandler {
    return (req, res) => {
      const only = typeof req.query.id === 'string' ? normalizeId(req.query.id) : undefined;
      const lastEventId = parseLastEventId(req);
      if (this.clients.size >= this.maxClients) {
        this.refused++;
        res.set('Retry-After', String(RETRY_AFTER_SECONDS));
        throw new ApiError(
          503,
          'too_many_streams',
          `${this.maxClients} event streams are open, as many as this server serves; retry later`,
        );
      }
      res.status(200).set({
        'Content-Type': 'text/event-stream; charset=utf-8',
        'Cache-Control': 'no-cache, no-transform',
        Connection: 'keep-alive',
        'X-Accel-Buffering': 'no',
      });
      res.flushHeaders();
      res.write('retry: 2000\n: connected\n\n');
      const client: Client = {
        res,
        trackerId: only,
        position: this.end,
        after: -1,
        waiting: false,
        closed: false,
        stallTimer: undefined,
      };
      if (lastEventId !== undefined) this.resumeAfter(client, lastEventId);
      this.clients.add(client);
      res.on('close', () => {
        client.closed = true;
        clearTimeout(client.stallTimer);
        this.clients.delete(client);
      });
      this.pump(client);
    };
  }

  /** End every stream (shutdown) and stop listening to the system. */
  close(): void {
    clearInterval(this.heartbeat);
    this.unsubscribe();
    this.unsubscribeHeads();
    for (const client of this.clients) {
      this.pump(client);
      clearTimeout(client.stallTimer);
      // A stream's socket is never reused for a request; one whose socket is full would never end.
      if (client.waiting) client.res.destroy();
      else client.res.end(() => client.res.socket?.destroy());
    }
    this.clients.clear();
  }

  private get lastId(): number {
    return this.nextId - 1;
  }

  /**
   * The id of the newest change given out so far (0 before any): a read of the store started after
   * this holds every change up to it, so a client that lists then streams with this as
   * `Last-Event-ID` misses none in between.
   */
  get lastEventId(): number {
    return this.lastId;
  }

  private get oldestId(): number {
    return this.at(this.first)?.id ?? this.nextId;
  }

  private at(position: number): Change | undefined {
    return this.changes[position - this.offset];
  }

  /**
   * Heads and followers' counts are this instance's own: with ids from a `ChangeSource` they carry
   * the id of the last change (a client resuming from one misses no change).
   */
  private publish(
    trackerId: string | undefined,
    audience: Change['audience'],
    data: string,
    event: string,
    sourceId?: number,
  ): void {
    let id: number;
    if (sourceId !== undefined) {
      // A source's change at or below the newest kept (a replay overlapping what came live) is not kept twice.
      if (sourceId <= this.lastId) return;
      id = sourceId;
      this.nextId = sourceId + 1;
    } else {
      id = this.external ? this.lastId : this.nextId++;
    }
    const frame = `id: ${id}\nevent: ${event}\ndata: ${data}\n\n`;
    this.keep({ id, trackerId, audience, frame, bytes: Buffer.byteLength(frame) });
    // Once per turn, not once per change: a burst of changes goes out in a few writes per stream.
    this.schedulePump();
  }

  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      for (const client of this.clients) this.pump(client);
    });
  }

  /** Add a change to the ring, then drop the oldest while the ring is over its count or bytes. */
  private keep(change: Change): void {
    this.changes.push(change);
    this.end++;
    this.keptBytes += change.bytes;
    // The newest change always stays, so live streams find it.
    while (this.end - this.first > 1 && (this.end - this.first > this.replay || this.keptBytes > this.replayBytes)) {
      this.keptBytes -= this.at(this.first)!.bytes;
      this.changes[this.first - this.offset] = undefined;
      this.first++;
    }
    // Compact now and then, so the array neither grows without end nor shifts on every change.
    const emptied = this.first - this.offset;
    if (emptied >= 1024 && emptied * 2 >= this.changes.length) {
      this.changes = this.changes.slice(emptied);
      this.offset = this.first;
    }
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

  /**
   * Where a client resuming after `lastEventId` starts. When changes it missed have left the ring,
   * or the id is newer than any change (ids restart with the process), it is told to re-list first.
   * With ids from a shared source, a newer id is one this instance has not caught up with yet: the
   * client waits for the changes after it, with no gap.
   */
  private resumeAfter(client: Client, lastEventId: number): void {
    const oldestId = this.oldestId;
    if (lastEventId + 1 >= oldestId && lastEventId <= this.lastId) {
      client.position = this.positionAfter(lastEventId);
      client.after = lastEventId;
      return;
    }
    if (lastEventId > this.lastId && this.external) {
      client.after = lastEventId;
      return;
    }
    const message = `changes after ${lastEventId} are not kept: re-list with GET /trackers, then go on with this stream`;
    client.res.write(`event: gap\ndata: ${JSON.stringify({ lastEventId, oldestId, message })}\n\n`);
    client.position = lastEventId > this.lastId ? this.end : this.first;
  }

  /** The position of the first kept change with an id above `id` (ids never decrease along the ring). */
  private positionAfter(id: number): number {
    let low = this.first;
    let high = this.end;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.at(middle)!.id > id) high = middle;
      else low = middle + 1;
    }
    return low;
  }

  /**
   * Write the next chunk of changes after the client's cursor that reach it; the rest follow when
   * its socket drains, or on the next turn, so a long replay shares the loop with everyone else.
   */
  private pump(client: Client): void {
    if (client.waiting || client.closed) return;
    const chunk = this.nextChunk(client);
    if (!chunk) return;
    if (!client.res.write(chunk)) this.waitForDrain(client);
    else if (client.position < this.end) this.schedulePump();
  }

  /** The next frames for a client, up to about `CHUNK_CHARS`; undefined when it was cut off. */
  private nextChunk(client: Client): string | undefined {
    let chunk = '';
    while (client.position < this.end && chunk.length < CHUNK_CHARS) {
      if (client.position < this.first) {
        // Behind by more than the ring holds: it reconnects, replays what is kept, and is told of the gap.
        this.drop(client);
        return undefined;
      }
      const change = this.at(client.position++)!;
      // Heads carry the last change's id (with a source): only changes are skipped by `after`.
      if ((change.audience !== 'all' || change.id > client.after) && reaches(change, client.trackerId))
        chunk += change.frame;
    }
    return chunk;
  }

  private waitForDrain(client: Client): void {
    client.waiting = true;
    client.stallTimer = setTimeout(() => this.drop(client), this.stallTimeoutMs).unref();
    client.res.once('drain', () => {
      clearTimeout(client.stallTimer);
      client.waiting = false;
      this.pump(client);
    });
  }

  /**
   * Cut a stream off that does not keep up: reset, since ending it would wait for its reader and
   * leave its unsent data in the kernel meanwhile.
   */
  private drop(client: Client): void {
    if (client.closed) return;
    this.dropped++;
    client.closed = true;
    clearTimeout(client.stallTimer);
    this.clients.delete(client);
    const socket = client.res.socket;
    if (socket) socket.resetAndDestroy();
    else client.res.destroy();
  }

  private broadcastComment(text: string): void {
    for (const client of this.clients) {
      if (!client.waiting && !client.closed && !client.res.write(`: ${text}\n\n`)) this.waitForDrain(client);
    }
  }
}

/** Whether a client of the whole feed (`only` undefined) or a follower of `only` gets `change`. */
function reaches(change: Change, only: string | undefined): boolean {
  if (only === undefined) return change.audience !== 'followers';
  return change.audience !== 'feed' && change.trackerId === only;
}

function parseLastEventId(req: Request): number | undefined {
  const raw =
    req.get('last-event-id') ?? (typeof req.query.lastEventId === 'string' ? req.query.lastEventId : undefined);
  if (raw === undefined) return undefined;
  if (!/^\d{1,15}$/.test(raw))
    throw new ApiError(400, 'invalid_last_event_id', 'Last-Event-ID must be a non-negative integer');
  return Number(raw);
}
