import type { Notification, Pool, PoolClient } from 'pg';
import type { TrackerEvent } from '../../machines/tracker.machine.js';
import { toHttpError } from '../api/errors.js';
import { ForwardedError, StoreError } from '../errors.js';
import type { Logger } from '../runtime/logger.js';
import type { TrackerSystem } from '../runtime/system.js';
import type { Tracker } from '../runtime/tracker-view.js';
import type { Placement, SendResult, StartManyResult, StartRequest } from '../runtime/types.js';
import type { Queryable } from './schema.js';

const INBOX_CHANNEL = 'tx_tracker_inbox';
const ANSWERS_CHANNEL = 'tx_tracker_answers';
/** Ids per NOTIFY payload (PostgreSQL caps a payload at 8,000 bytes). */
const IDS_PER_NOTIFY = 400;

type Request =
  { kind: 'start'; request: StartRequest & { id: string } } | { kind: 'send'; event: TrackerEvent } | { kind: 'stop' };

type Item = [shard: number, trackerId: string, request: Request];

/** An open request as the owner reads it; `claimed_epoch` set once an owner took it to run. */
interface Row {
  id: string;
  shard: number;
  tracker_id: string;
  request: Request;
  claimed_epoch: string | null;
}

/** A request this owner claimed under `epoch`; `again`: an earlier owner had claimed it and did not answer. */
interface Claimed extends Row {
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
  /** The fencing check, in a transaction on `client`: the shards this instance does not hold at its epoch. */
  fence(client: Queryable, shards: readonly number[]): Promise<Set<number>>;
  /** Shards the fencing check found taken over: stop them here. */
  fenced(shards: Iterable<number>): void;
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
 * rows under its lease epoch, in a transaction with the fencing check (so no other instance can
 * take the shard while the claim commits), and it answers only rows still claimed under that epoch.
 * A later owner never runs an event (`send`) claimed under an earlier epoch again: the earlier owner
 * answers it (when it wakes up) or the caller's wait ends; an event's effects (a crash, a lookup, a
 * rebroadcast) cannot be undone or told apart in the store, so at most once is what once can be.
 * Starts and stops are idempotent: a later owner runs them again when the earlier one did not answer.
 *
 * @example
 * const inbox = new ClusterInbox({ pool, owns, ownedShards, logger });
 * const system = await createTrackerSystem({ store, placement: inbox.placement });
 * await inbox.start(system);
 */
export class ClusterInbox {
  private readonly waiting = new Map<string, Waiter>();
  private system: TrackerSystem | undefined;
  private listener: PoolClient | undefined;
  private draining: Promise<void> | undefined;
  /** Requests fetched and being run here, and their runs. */
  private readonly inProgress = new Set<string>();
  private readonly answering = new Set<Promise<void>>();
  /** The last claim, settled once its requests were set running. */
  private claiming: Promise<void> = Promise.resolve();
  private again = false;
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
   * Fetch the open requests for owned shards and set them running; the next fetch does not wait for
   * their answers (a commit in flight), so a request arriving meanwhile joins the next commit.
   * Events claimed by an earlier owner are not fetched: they never run twice.
   */
  private async drainOnce(): Promise<void> {
    const shards = this.options.ownedShards().filter((shard) => this.options.ready(shard));
    if (shards.length === 0) return;
    const { rows } = await this.options.pool.query<Row>(
      `SELECT id, shard, tracker_id, request, claimed_epoch FROM cluster_inbox
       WHERE answer IS NULL AND shard = ANY($1::int[]) AND NOT (id = ANY($2::bigint[]))
         AND (claimed_epoch IS NULL OR kind <> 'send')
       ORDER BY id LIMIT 1000`,
      [shards, [...this.inProgress]],
    );
    if (rows.length === 1000) this.again = true;
    const mine = rows.filter(
      (row) => this.options.owns(row.shard) && this.options.ready(row.shard) && !this.inProgress.has(row.id),
    );
    if (mine.length === 0) return;
    for (const row of mine) this.inProgress.add(row.id);
    const work = this.claimAndAnswer(mine)
      .catch((error: unknown) =>
        this.options.logger.warn({ err: error }, 'could not answer requests from other instances; retrying'),
      )
      .finally(() => {
        for (const row of mine) this.inProgress.delete(row.id);
        this.answering.delete(work);
      });
    this.answering.add(work);
  }

  /**
   * Claim the rows under this instance's lease epochs, in one transaction with the fencing check:
   * rows of shards taken over meanwhile are not claimed (and those shards are stopped here), and
   * while the transaction is open no other instance can claim this one's leases.
   */
  private async claim(rows: Row[]): Promise<Claimed[]> {
    const candidates: Claimed[] = [];
    for (const row of rows) {
      const epoch = this.options.epochOf(row.shard);
      // Claimed already under this epoch and not running here: its answer was lost; an event stays answered by its wait.
      if (epoch === undefined || (row.claimed_epoch !== null && BigInt(row.claimed_epoch) >= epoch)) continue;
      candidates.push({ ...row, epoch, again: row.claimed_epoch !== null });
    }
    if (candidates.length === 0) return [];
    const client = await this.options.pool.connect();
    let broken = false;
    const onError = () => (broken = true);
    client.on('error', onError);
    try {
      await client.query('BEGIN');
      const rejected = await this.options.fence(client, [...new Set(candidates.map((row) => row.shard))]);
      const held = candidates.filter((row) => !rejected.has(row.shard));
      const { rows: claimed } = await client.query<{ id: string }>(
        `UPDATE cluster_inbox i SET claimed_epoch = v.epoch
         FROM unnest($1::bigint[], $2::int8[]) AS v(id, epoch)
         WHERE i.id = v.id AND i.answer IS NULL AND (i.claimed_epoch IS NULL OR i.claimed_epoch < v.epoch)
         RETURNING i.id`,
        [held.map((row) => row.id), held.map((row) => String(row.epoch))],
      );
      await client.query('COMMIT');
      if (rejected.size > 0) this.options.fenced(rejected);
      const ids = new Set(claimed.map((row) => row.id));
      return held.filter((row) => ids.has(row.id));
    } catch (error) {
      await client.query('ROLLBACK').catch(() => (broken = true));
      throw error;
    } finally {
      client.off('error', onError);
      client.release(broken);
    }
  }

  /**
   * Run the claimed requests (together: starts of one turn share one commit; events to one tracker
   * keep their order), write the answers back to the rows still claimed under the same epoch.
   */
  private async claimAndAnswer(rows: Row[]): Promise<void> {
    // Claims are made and their requests set running in fetch order: events to a tracker keep theirs.
    const previous = this.claiming;
    let dispatched!: () => void;
    this.claiming = new Promise((resolve) => (dispatched = resolve));
    let runs: Array<Promise<[Claimed, Answer]>>;
    try {
      await previous;
      const claimed = await this.claim(rows);
      runs = claimed.map(async (row): Promise<[Claimed, Answer]> => {
        // Lost after the claim (a pause ended by the lease clock): not run, so it may be retried.
        if (this.options.epochOf(row.shard) !== row.epoch) return [row, CHANGED_HANDS];
        const answer = await this.run(row.tracker_id, row.request);
        // An earlier owner started it for this very request, and did not get to answer.
        if (row.again && answer.ok && answer.status === 'already_started')
          return [row, { ...answer, status: 'started' }];
        return [row, answer];
      });
    } finally {
      dispatched();
    }
    if (runs.length === 0) return;
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
      if (this.options.owns(shard) && this.options.ready(shard)) void this.drain();
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
