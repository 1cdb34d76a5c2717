import type { Notification, Pool, PoolClient } from 'pg';
import type { TrackerEvent } from '../../machines/tracker.machine.js';
import { toHttpError } from '../api/errors.js';
import { ForwardedError, StoreError } from '../errors.js';
import type { Logger } from '../runtime/logger.js';
import type { TrackerSystem } from '../runtime/system.js';
import type { Tracker } from '../runtime/tracker-view.js';
import type { Placement, SendResult, StartManyResult, StartRequest } from '../runtime/types.js';

const INBOX_CHANNEL = 'tx_tracker_inbox';
const ANSWERS_CHANNEL = 'tx_tracker_answers';
/** Ids per NOTIFY payload (PostgreSQL caps a payload at 8,000 bytes). */
const IDS_PER_NOTIFY = 400;
/** Requests claimed at most per statement. */
const CLAIM_LIMIT = 1000;

/**
 * Claims the open requests of the shards this instance holds, in one statement: each shard's lease
 * row is checked (owner and epoch, the epoch this instance believes) and locked `FOR KEY SHARE` until
 * the claim commits. A lease claim by another instance locks the row `FOR UPDATE SKIP LOCKED`, so it
 * cannot take the shard while a claim under the old epoch is being committed, and a row changed by a
 * claim that committed first is read again at its new version (PostgreSQL's read committed
 * recheck), so a shard taken over meanwhile is not claimed. Renewals and hand-backs update no key
 * column (their `FOR NO KEY UPDATE` does not conflict with `FOR KEY SHARE`): they do not wait for a
 * claim. Events claimed under an earlier epoch are not claimed again: they never run twice.
 */
const CLAIM_SQL = `
  WITH open AS (
    SELECT i.id, i.shard, i.claimed_epoch, v.epoch
    FROM cluster_inbox i JOIN unnest($1::int[], $2::int8[]) AS v(shard, epoch) ON v.shard = i.shard
    WHERE i.answer IS NULL AND i.shard = ANY($1::int[])
      AND (i.claimed_epoch IS NULL OR (i.kind <> 'send' AND i.claimed_epoch < v.epoch))
    ORDER BY i.id LIMIT ${CLAIM_LIMIT}
  ), held AS (
    SELECT l.shard, l.epoch FROM shard_leases l
    WHERE l.shard IN (SELECT shard FROM open) AND l.owner = $3
    ORDER BY l.shard FOR KEY SHARE
  )
  UPDATE cluster_inbox i SET claimed_epoch = o.epoch
  FROM open o JOIN held h ON h.shard = o.shard AND h.epoch = o.epoch
  WHERE i.id = o.id AND i.answer IS NULL
    AND (i.claimed_epoch IS NULL OR (i.kind <> 'send' AND i.claimed_epoch < o.epoch))
  RETURNING i.id, i.shard, i.tracker_id, i.request, o.claimed_epoch, o.epoch`;

type Request =
  { kind: 'start'; request: StartRequest & { id: string } } | { kind: 'send'; event: TrackerEvent } | { kind: 'stop' };

type Item = [shard: number, trackerId: string, request: Request];

/** A request as the owner claimed it; `claimed_epoch`: the epoch an earlier owner had claimed it under. */
interface Row {
  id: string;
  shard: number;
  tracker_id: string;
  request: Request;
  claimed_epoch: string | null;
  epoch: string;
}

/** A request this owner claimed under `epoch`; `again`: an earlier owner had claimed it and did not answer. */
interface Claimed extends Omit<Row, 'epoch'> {
  epoch: bigint;
  again: boolean;
}

type Answer =
  { ok: true; status: string; tracker: Tracker | null } | { ok: false; status: number; code: string; message: string };

interface Waiter {
  resolve(answer: Answer): void;
  timer: NodeJS.Timeout;
}

export interface InboxOptions {
  pool: Pool;
  /** Whether this instance owns a shard now. */
  owns(shard: number): boolean;
  ownedShards(): number[];
  /** Whether an owned shard's trackers are live here yet (rehydrated): its requests wait until then. */
  ready(shard: number): boolean;
  /** The epoch of this instance's lease on a shard (undefined: not held). */
  epochOf(shard: number): bigint | undefined;
  /** This instance's id, as the owner of its rows in `shard_leases`. */
  instanceId: string;
  /** A request not answered within this long fails with 503 `owner_unavailable` (default 15 s). */
  timeoutMs?: number;
  /** How often open requests for owned shards are looked for besides notifications (default 1 s). */
  sweepMs?: number;
  /** For tests: runs after claimed requests ran, before their answers are written (ids of the rows). */
  beforeAnswers?: (ids: readonly string[]) => Promise<void>;
  logger: Logger;
}

/**
 * Requests for trackers another instance runs: a row in `cluster_inbox` per request, keyed by the
 * tracker's shard (not by an instance, so that a request made while its shard changes hands is
 * answered by the next owner), a NOTIFY to wake the owner, and the answer written back to the row
 * with a NOTIFY to wake the caller. The owner runs the request with the same library call one
 * instance would, so the answer means the same.
 *
 * Each request runs once across ownership changes: before running requests, the owner claims their
 * rows under its lease epoch, in one statement that checks and locks the shards' lease rows (so no
 * other instance can take a shard while the claim commits), and it answers only rows still claimed
 * under that epoch.
 * A later owner never runs an event (`send`) claimed under an earlier epoch again: the earlier owner
 * answers it (when it wakes up) or the caller's wait ends; an event's effects (a crash, a lookup, a
 * rebroadcast) cannot be undone or told apart in the store, so at most once is what once can be.
 * Starts and stops are idempotent: a later owner runs them again when the earlier one did not answer.
 *
 * @example
 * const inbox = new ClusterInbox({ pool, instanceId, owns, ownedShards, ready, epochOf, logger });
 * const system = await createTrackerSystem({ store, placement: inbox.placement });
 * await inbox.start(system);
 */
export class ClusterInbox {
  private readonly waiting = new Map<string, Waiter>();
  private system: TrackerSystem | undefined;
  private listener: PoolClient | undefined;
  private draining: Promise<void> | undefined;
  /** Claimed requests being run here and answered. */
  private readonly answering = new Set<Promise<void>>();
  private again = false;
  /** Shards notified since the last claim; every owned shard when `claimAll` (a sweep, shards gained). */
  private notifiedShards = new Set<number>();
  private claimAll = false;
  private collecting = false;
  private collectAgain = false;
  private sweep: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly timeoutMs: number;

  constructor(private readonly options: InboxOptions) {
    this.timeoutMs = options.timeoutMs ?? 15_000;
  }

  /** The `Placement` the tracker system routes through. */
  readonly placement: Placement = {
    owns: (shard) => this.options.owns(shard),
    start: async (requests, shards) => {
      const answers = await this.ask(
        requests.map((request, i) => [shards[i]!, request.id, { kind: 'start', request }]),
      );
      return answers.map((answer): StartManyResult => {
        if (!answer.ok)
          return { status: 'error', error: new ForwardedError(answer.status, answer.code, answer.message) };
        return { status: answer.status as 'started', tracker: answer.tracker!, ref: undefined };
      });
    },
    send: async (id, shard, event) => {
      const [answer] = await this.ask([[shard, id, { kind: 'send', event }]]);
      if (!answer!.ok) throw new ForwardedError(answer!.status, answer!.code, answer!.message);
      const { status, tracker } = answer!;
      return (tracker === null ? { status: 'not_found' } : { status, tracker }) as SendResult;
    },
    stop: async (id, shard) => {
      const [answer] = await this.ask([[shard, id, { kind: 'stop' }]]);
      if (!answer!.ok) throw new ForwardedError(answer!.status, answer!.code, answer!.message);
      return answer!.tracker ?? undefined;
    },
  };

  /** Serve requests for this instance's shards with `system`, and take answers for its own. */
  async start(system: TrackerSystem): Promise<void> {
    this.system = system;
    await this.listen();
    const sweepMs = this.options.sweepMs ?? 1000;
    let lastPrune = Date.now();
    const tick = () => {
      this.sweep = setTimeout(() => {
        this.claimAll = true;
        void this.drain();
        void this.collect();
        if (Date.now() - lastPrune > 30_000) {
          lastPrune = Date.now();
          void this.prune();
        }
        tick();
      }, sweepMs);
    };
    tick();
  }

  /** Shards became this instance's: answer what waits for them. */
  shardsGained(): void {
    this.claimAll = true;
    void this.drain();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.sweep);
    await this.draining;
    await Promise.all(this.answering);
    const client = this.listener;
    this.listener = undefined;
    if (client) {
      await client.query(`UNLISTEN *`).catch(() => {});
      client.release();
    }
    for (const [, waiter] of this.waiting) {
      clearTimeout(waiter.timer);
      waiter.resolve({ ok: false, status: 503, code: 'shutting_down', message: 'the tracker system is shutting down' });
    }
    this.waiting.clear();
  }

  /** Rows nobody will collect any more (their callers died or gave up) are deleted. */
  private async prune(): Promise<void> {
    await this.options.pool
      .query('DELETE FROM cluster_inbox WHERE created_at < now() - $1::interval', [
        `${this.timeoutMs * 4} milliseconds`,
      ])
      .catch((error: unknown) => this.options.logger.warn({ err: error }, 'could not prune the cluster inbox'));
  }

  // ---- the caller's side ------------------------------------------------------------------

  /** Requests asked in this turn, sent together in one statement. */
  private queued: Array<{ item: Item; resolve(answer: Answer): void; reject(error: unknown): void }> = [];

  private ask(items: Item[]): Promise<Answer[]> {
    return Promise.all(
      items.map(
        (item) =>
          new Promise<Answer>((resolve, reject) => {
            if (this.queued.push({ item, resolve, reject }) === 1) setImmediate(() => void this.send());
          }),
      ),
    );
  }

  private async send(): Promise<void> {
    const batch = this.queued;
    this.queued = [];
    let rows: Array<{ id: string }>;
    try {
      ({ rows } = await this.options.pool.query<{ id: string }>(
        `WITH r AS (
           INSERT INTO cluster_inbox (shard, tracker_id, kind, request)
           SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::jsonb[]) RETURNING id, shard
         ) SELECT id, pg_notify('${INBOX_CHANNEL}', shard::text) FROM r ORDER BY id`,
        [
          batch.map(({ item: [shard] }) => shard),
          batch.map(({ item: [, id] }) => id),
          batch.map(({ item: [, , request] }) => request.kind),
          batch.map(({ item: [, , request] }) => JSON.stringify(request)),
        ],
      ));
    } catch (error) {
      const failure = new StoreError('the request could not be handed to the instance that runs the tracker', error);
      for (const { reject } of batch) reject(failure);
      return;
    }
    rows.forEach(({ id }, i) => {
      const timer = setTimeout(() => void this.giveUp(id, batch[i]!.resolve), this.timeoutMs);
      this.waiting.set(id, { resolve: batch[i]!.resolve, timer });
    });
    // An answer may have come before its id was known here.
    void this.collect();
  }

  /** No answer in time: the request is withdrawn, and the caller told whether an owner had taken it. */
  private async giveUp(id: string, resolve: (answer: Answer) => void): Promise<void> {
    if (!this.waiting.delete(id)) return;
    let claimed = false;
    try {
      const { rows } = await this.options.pool.query<{ claimed: boolean; answer: Answer | null }>(
        'DELETE FROM cluster_inbox WHERE id = $1 RETURNING claimed_epoch IS NOT NULL AS claimed, answer',
        [id],
      );
      // Answered meanwhile: that answer stands.
      if (rows[0]?.answer) return resolve(rows[0].answer);
      claimed = rows[0]?.claimed ?? false;
    } catch {
      // Unknown: said as for a claimed one, the safe reading.
      claimed = true;
    }
    resolve({
      ok: false,
      status: 503,
      code: 'owner_unavailable',
      message: claimed
        ? `the instance that took this request did not answer within ${this.timeoutMs} ms; it may have run it (once): read the tracker before retrying`
        : `the instance that runs this tracker did not answer within ${this.timeoutMs} ms; retry`,
    });
  }

  /** Take the answers to this instance's requests that have come. */
  private async collect(): Promise<void> {
    if (this.collecting) {
      this.collectAgain = true;
      return;
    }
    if (this.waiting.size === 0) return;
    this.collecting = true;
    this.collectAgain = false;
    try {
      const { rows } = await this.options.pool.query<{ id: string; answer: Answer }>(
        `DELETE FROM cluster_inbox WHERE id = ANY($1::bigint[]) AND answer IS NOT NULL RETURNING id, answer`,
        [[...this.waiting.keys()]],
      );
      for (const { id, answer } of rows) {
        const waiter = this.waiting.get(id);
        if (!waiter) continue;
        this.waiting.delete(id);
        clearTimeout(waiter.timer);
        waiter.resolve(answer);
      }
    } catch (error) {
      this.options.logger.warn({ err: error }, 'could not read answers from other instances; retrying');
    } finally {
      this.collecting = false;
      if (this.collectAgain) void this.collect();
    }
  }

  // ---- the owner's side -------------------------------------------------------------------

  /** Answer the open requests for owned shards, one pass at a time (a wake-up during one runs another). */
  private drain(): Promise<void> {
    if (this.stopped || !this.system) return Promise.resolve();
    if (this.draining) {
      this.again = true;
      return this.draining;
    }
    this.draining = (async () => {
      do {
        this.again = false;
        await this.drainOnce().catch((error: unknown) =>
          this.options.logger.warn({ err: error }, 'could not answer requests from other instances; retrying'),
        );
      } while (this.again && !this.stopped);
    })().finally(() => (this.draining = undefined));
    return this.draining;
  }

  /**
   * Claim the open requests for owned shards and set them running, in claim order (events to a
   * tracker keep theirs); the next claim does not wait for their answers (a commit in flight), so a
   * request arriving meanwhile joins the next commit.
   */
  private async drainOnce(): Promise<void> {
    // Only the shards notified since the last claim (a lookup per shard), unless all are due.
    const all = this.claimAll;
    const notified = this.notifiedShards;
    this.claimAll = false;
    this.notifiedShards = new Set();
    const shards: number[] = [];
    const epochs: string[] = [];
    for (const shard of all ? this.options.ownedShards() : notified) {
      const epoch = this.options.epochOf(shard);
      if (epoch === undefined || !this.options.ready(shard)) continue;
      shards.push(shard);
      epochs.push(String(epoch));
    }
    if (shards.length === 0) return;
    let rows: Row[];
    try {
      ({ rows } = await this.options.pool.query<Row>(CLAIM_SQL, [shards, epochs, this.options.instanceId]));
    } catch (error) {
      this.redo(all, shards);
      throw error;
    }
    if (rows.length === CLAIM_LIMIT) {
      this.redo(all, shards);
      this.again = true;
    }
    if (rows.length === 0) return;
    const claimed = rows
      .map((row): Claimed => ({ ...row, epoch: BigInt(row.epoch), again: row.claimed_epoch !== null }))
      .sort((a, b) => (BigInt(a.id) < BigInt(b.id) ? -1 : 1));
    const work = this.runAndAnswer(claimed)
      .catch((error: unknown) =>
        this.options.logger.warn({ err: error }, 'could not answer requests from other instances; retrying'),
      )
      .finally(() => this.answering.delete(work));
    this.answering.add(work);
  }

  /** The shards of a claim are looked at again by the next one. */
  private redo(all: boolean, shards: readonly number[]): void {
    if (all) this.claimAll = true;
    else for (const shard of shards) this.notifiedShards.add(shard);
  }

  /**
   * Run the claimed requests (together: starts of one turn share one commit; each is set running
   * before this returns its promise), write the answers back to the rows still claimed under the same epoch.
   */
  private async runAndAnswer(claimed: Claimed[]): Promise<void> {
    const runs = claimed.map(async (row): Promise<[Claimed, Answer]> => {
      // Lost after the claim (a pause ended by the lease clock): not run, so it may be retried.
      if (this.options.epochOf(row.shard) !== row.epoch) return [row, CHANGED_HANDS];
      const answer = await this.run(row.tracker_id, row.request);
      // An earlier owner started it for this very request, and did not get to answer.
      if (row.again && answer.ok && answer.status === 'already_started') return [row, { ...answer, status: 'started' }];
      return [row, answer];
    });
    const answered = await Promise.all(runs);
    await this.options.beforeAnswers?.(answered.map(([row]) => row.id));
    for (let at = 0; at < answered.length; at += IDS_PER_NOTIFY) {
      const chunk = answered.slice(at, at + IDS_PER_NOTIFY);
      await this.options.pool.query(
        `WITH a AS (
           UPDATE cluster_inbox i SET answer = v.answer, answered_at = now()
           FROM unnest($1::bigint[], $2::jsonb[], $3::int8[]) AS v(id, answer, epoch)
           WHERE i.id = v.id AND i.answer IS NULL AND i.claimed_epoch = v.epoch RETURNING i.id
         ) SELECT pg_notify('${ANSWERS_CHANNEL}', string_agg(id::text, ',')) FROM a HAVING count(*) > 0`,
        [
          chunk.map(([row]) => row.id),
          chunk.map(([, answer]) => JSON.stringify(answer)),
          chunk.map(([row]) => String(row.epoch)),
        ],
      );
    }
  }

  private async run(trackerId: string, request: Request): Promise<Answer> {
    const system = this.system!;
    try {
      if (request.kind === 'start') {
        const [result] = await system.startMany([request.request]);
        if (result!.status === 'error') return failure(result!.error);
        return { ok: true, status: result!.status, tracker: result!.tracker };
      }
      if (request.kind === 'send') {
        const result = await system.send(trackerId, request.event);
        return { ok: true, status: result.status, tracker: 'tracker' in result ? result.tracker : null };
      }
      const tracker = await system.stop(trackerId);
      return { ok: true, status: 'stopped', tracker: tracker ?? null };
    } catch (error) {
      return failure(error);
    }
  }

  // ---- notifications ----------------------------------------------------------------------

  private async listen(): Promise<void> {
    if (this.stopped) return;
    try {
      const client = await this.options.pool.connect();
      this.listener = client;
      client.on('notification', (message: Notification) => this.notified(message));
      client.on('error', () => {
        if (this.listener === client) this.listener = undefined;
        client.release(true);
        if (!this.stopped) setTimeout(() => void this.listen(), 500).unref();
      });
      await client.query(`LISTEN ${INBOX_CHANNEL}; LISTEN ${ANSWERS_CHANNEL}`);
    } catch (error) {
      this.options.logger.warn({ err: error }, 'could not listen for requests from other instances; retrying');
      if (!this.stopped) setTimeout(() => void this.listen(), 500).unref();
    }
  }

  private notified(message: Notification): void {
    if (message.channel === INBOX_CHANNEL) {
      const shard = Number(message.payload);
      if (!this.options.owns(shard) || !this.options.ready(shard)) return;
      this.notifiedShards.add(shard);
      void this.drain();
      return;
    }
    if (message.payload?.split(',').some((id) => this.waiting.has(id))) void this.collect();
  }
}

const CHANGED_HANDS: Answer = {
  ok: false,
  status: 503,
  code: 'owner_unavailable',
  message: 'the tracker changed instance before this request ran; it was not run: retry',
};

function failure(error: unknown): Answer {
  const { status, body } = toHttpError(error);
  return { ok: false, status, code: body.error.code, message: body.error.message };
}
