import {
  FINALITY_TAGS,
  type Finality,
  type TrackerContext,
  type TrackerStateName,
} from '../../machines/tracker.machine.js';
import { silentLogger, withFields } from '../runtime/logger.js';
import type { TrackerHooks } from '../runtime/system.js';
import { CanonicalChain } from './canonical.js';
import { ChainIdMismatchError, errorMessage, redact } from './errors.js';
import { type FallbackTransport, checkedTransport, createFallbackTransport } from './fallback.js';
import { parseBlock, parseNullable } from './format.js';
import { getBlock } from './getBlock.js';
import { getChainId } from './getChainId.js';
import { type HeadSource, createHeadSource } from './heads.js';
import { lookupTransactions } from './lookupTransactions.js';
import { applyLookups } from './replay.js';
import { StuckSchedule, judgeStuck } from './stuck.js';
import { replayPlan } from './sync.js';
import { type Tracked, TrackedSet } from './tracked.js';
import { type Transport, createHttpTransport } from './transport.js';
import { createWebSocketHeadSource } from './web-socket.js';
import type { ChainWatcherHealth, ChainWatcherOptions, WatcherState } from './watcher-state.js';

export type { ChainWatcherHealth, ChainWatcherOptions, TrackerSink, WatcherState } from './watcher-state.js';

/** The same transport, counting round trips and failures into `counters`. */
function countRequests(inner: Transport, counters: { requests: number; errors: number }): Transport {
  const counted = async <T>(call: () => Promise<T>): Promise<T> => {
    counters.requests++;
    try {
      return await call();
    } catch (error) {
      counters.errors++;
      throw error;
    }
  };
  return {
    get url() {
      return inner.url;
    },
    request: (call) => counted(() => inner.request(call)),
    batch: (calls) => counted(() => inner.batch(calls)),
    close: () => inner.close(),
  };
}

/**
 * Follows one chain's heads and drives the trackers: constant RPC calls per block, however many
 * trackers there are. Plug `watcher.hooks` into the tracker system.
 *
 * @example
 * const hooks: TrackerHooks = {};
 * const system = await createTrackerSystem({ store: new MemoryStore(), hooks });
 * const watcher = createChainWatcher({ url: 'http://127.0.0.1:8545', system });
 * Object.assign(hooks, watcher.hooks);
 * watcher.start();
 */
export function createChainWatcher(options: ChainWatcherOptions): ChainWatcher {
  return new ChainWatcher(options);
}

export class ChainWatcher {
  readonly hooks: Required<TrackerHooks>;
  private readonly state: WatcherState;
  private readonly pollIntervalMs: number;
  private readonly dropCheckIntervalMs: number;
  private readonly lookupBatchSize: number;
  private readonly lookupGatherMs: number;
  /** The wake-up a gathering of new trackers' lookups will end with. */
  private gatherTimer: NodeJS.Timeout | null = null;
  private readonly backoff: { baseMs: number; maxMs: number };
  private readonly heads: HeadSource;
  /** The fallback node's own WebSocket, when its URL is ws(s) (its transport only). */
  private readonly fallbackSocket: HeadSource | undefined;
  private readonly fallback: FallbackTransport | undefined;
  private readonly finalityRefreshHeads: number;
  /** Heads replayed since the safe and finalized blocks were last all read. */
  private headsSinceFinality = Infinity;
  /** Why the node last did not give each tag's block (null: it did). */
  private readonly finalityErrors: Record<Finality, string | null> = { safe: null, finalized: null };
  private running = false;
  private loop: Promise<void> | null = null;
  private wakeUp: (() => void) | null = null;
  /** A wake-up came while a tick ran: the next tick starts without waiting. */
  private wokenDuringTick = false;
  private failures = 0;
  private lastError: string | null = null;
  private lastDropCheck = 0;
  /** The head the pending trackers were last judged stuck or not at. */
  private judgedAt: bigint | null = null;
  /** JSON-RPC round trips (a batch is one) and the ones that failed, for `/metrics`. */
  readonly rpc = { requests: 0, errors: 0 };
  /** The newest head the node reported (the watcher may still be replaying up to it). */
  private nodeHead: number | null = null;

  constructor(options: ChainWatcherOptions) {
    const url = options.url ?? options.transport?.url;
    if (!url) throw new TypeError('createChainWatcher needs url or transport');
    const logger = options.name
      ? withFields(options.logger ?? silentLogger, { chain: options.name })
      : (options.logger ?? silentLogger);
    this.heads = createHeadSource(url, () => this.wake(), logger, options);
    // Each node is counted and checked to be on the chain before its first request.
    const node = (transport: Transport): Transport =>
      checkedTransport(countRequests(transport, this.rpc), (checked) => this.checkChain(checked));
    const primary = node(options.transport ?? this.heads.transport ?? createHttpTransport(url, options));
    let transport = primary;
    if (options.fallbackUrl) {
      const fallbackUrl = options.fallbackUrl;
      if (/^wss?:/i.test(fallbackUrl))
        this.fallbackSocket = createWebSocketHeadSource(fallbackUrl, () => {}, logger, options);
      this.fallback = createFallbackTransport(
        primary,
        node(this.fallbackSocket?.transport ?? createHttpTransport(fallbackUrl, options)),
        {
          onSwitch: (to, error) =>
            logger.warn(
              {
                to,
                url: redact(to === 'primary' ? url : fallbackUrl),
                err: error === null ? undefined : errorMessage(error),
              },
              `requests go to the ${to} node`,
            ),
        },
      );
      transport = this.fallback;
    }
    const depth = options.historyDepth ?? 2048;
    this.state = {
      transport,
      sink: options.system,
      chainId: options.chainId ?? null,
      final: { safe: null, finalized: null },
      logger,
      now: options.now ?? Date.now,
      tracked: new TrackedSet(),
      chain: new CanonicalChain(depth, 4 * depth),
      support: { blockReceipts: true },
      droppedAfterMs: options.droppedAfterMs ?? 600_000,
      stuck: new StuckSchedule(options.stuckAfterBlocks ?? 10),
      baseFee: null,
      recoveredAt: 0,
      lastHeadAt: null,
      lookups: new Set(),
      maxLookupFailures: 3,
      confirmedOn: new Map(),
      metrics: { blocksProcessed: 0, reorgs: 0, deepestReorg: 0, reorgsAfterConfirmation: 0, reorgsBelowFinalized: 0 },
    };
    this.finalityRefreshHeads = options.finalityRefreshHeads ?? 32;
    this.pollIntervalMs = options.pollIntervalMs ?? 1000;
    this.dropCheckIntervalMs =
      options.dropCheckIntervalMs ?? Math.min(60_000, Math.max(1000, this.state.droppedAfterMs / 10));
    this.lookupBatchSize = options.lookupBatchSize ?? 100;
    this.lookupGatherMs = options.lookupGatherMs ?? 20;
    this.backoff = { baseMs: options.backoff?.baseMs ?? 250, maxMs: options.backoff?.maxMs ?? 30_000 };
    this.hooks = {
      trackerLive: (context, state) => this.follow(context, state),
      trackerGone: (id) => this.forget(id),
      recheck: (context) => this.requestLookup(context.id),
      rebroadcast: (context) => void this.rebroadcast(context.id),
      canRebroadcast: (id) => this.rawTransaction(id) !== null,
    };
  }

  /** Start following heads. Never rejects: failures show in `health()` and are retried. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.heads.start();
    this.fallbackSocket?.start();
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wake();
    await this.loop;
    this.heads.stop();
    this.fallbackSocket?.stop();
    this.state.transport.close();
  }

  health(): ChainWatcherHealth {
    const head = this.state.chain.head;
    const { metrics } = this.state;
    const { safe, finalized } = this.state.final;
    return {
      status: !this.running ? 'stopped' : this.failures > 0 ? 'degraded' : head ? 'ok' : 'starting',
      url: redact(this.state.transport.url),
      chainId: this.state.chainId,
      usingFallback: this.fallback?.active === 'fallback',
      headNumber: head ? Number(head.number) : null,
      headHash: head?.hash ?? null,
      safe: safe === null ? null : Number(safe),
      finalized: finalized === null ? null : Number(finalized),
      lastHeadAt: this.state.lastHeadAt,
      consecutiveFailures: this.failures,
      lastError: this.lastError,
      tracked: this.state.tracked.size,
      pendingLookups: this.state.lookups.size,
      ...metrics,
      blockReceipts: this.state.support.blockReceipts,
    };
  }

  /** The chain's id: configured, or read from the first node (null until then). */
  get chainId(): number | null {
    return this.state.chainId;
  }

  /** Blocks between the node's head and the last block replayed; undefined before the first head. */
  blockLag(): number | undefined {
    const head = this.state.chain.head;
    if (this.nodeHead === null || !head) return undefined;
    return Math.max(0, this.nodeHead - Number(head.number));
  }

  /** The signed form of a tracker's tx when the node gave it, to re-broadcast it after a reorg. */
  rawTransaction(id: string): string | null {
    return this.state.tracked.get(id)?.raw ?? null;
  }

  /**
   * Send a tracked tx's signed form to the node again (the REBROADCAST event), e.g. after a reorg
   * dropped it, then look it up. Never rejects: resolves false when there is no signed form (the
   * tracker system refuses those requests up front, see `canRebroadcast`) or the node refused it
   * (logged).
   *
   * @example
   * await watcher.rebroadcast('txn_1'); // true once the node took it
   */
  async rebroadcast(id: string): Promise<boolean> {
    const raw = this.rawTransaction(id);
    if (!raw) {
      this.state.logger.debug({ id }, 'rebroadcast: the node never gave this tx in signed form; nothing to send');
      return false;
    }
    try {
      await this.state.transport.request({ method: 'eth_sendRawTransaction', params: [raw] });
      this.state.logger.info({ id }, 'rebroadcast: the node took the signed tx again');
      return true;
    } catch (error) {
      this.state.logger.warn({ id, err: errorMessage(error) }, 'rebroadcast refused by the node');
      return false;
    } finally {
      this.requestLookup(id);
    }
  }

  /** Resolves once the watcher has replayed a head at or above `blockNumber` (tests, demos). */
  async waitForHead(blockNumber: number, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ((this.state.chain.head?.number ?? -1n) < BigInt(blockNumber)) {
      if (Date.now() > deadline) throw new Error(`no head ${blockNumber} within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  // ---- hooks -----------------------------------------------------------------------------

  private follow(context: TrackerContext, state: TrackerStateName): void {
    if (state !== 'pending' && state !== 'confirming') return;
    const previous = this.state.tracked.get(context.id);
    const entry: Tracked = {
      id: context.id,
      // A pending tracker with replacedBy was repriced: it follows the new hash.
      hash: state === 'pending' && context.replacedBy ? context.replacedBy : context.txHash,
      requiredConfirmations: context.requiredConfirmations,
      finality: context.finality,
      state,
      blockNumber: context.blockNumber === null ? null : BigInt(context.blockNumber),
      blockHash: context.blockHash,
      head: null,
      lookupFailures: 0,
      tx: previous?.tx ?? null,
      raw: previous?.raw ?? null,
      seen: previous?.seen ?? false,
      unknownSince: previous?.unknownSince ?? null,
      // The tracker's own word on whether it is stuck; the count goes on where it was (same hash).
      pendingSince: previous?.pendingSince ?? null,
      stuck: context.stuck?.reason ?? null,
      checkedAt: 0,
    };
    if (previous && previous.hash !== entry.hash) {
      entry.tx = null;
      entry.pendingSince = null;
    }
    this.state.tracked.upsert(entry);
    this.requestLookup(context.id);
  }

  private forget(id: string): void {
    const entry = this.state.tracked.delete(id);
    this.state.lookups.delete(id);
    if (!entry || entry.state !== 'confirming' || !entry.blockHash || entry.blockNumber === null) return;
    // Trackers are not told every head: the newer of the chain's head and the head it was mined
    // at (a block being replayed is not committed yet) says whether it had its confirmations.
    if (entry.finality !== null) {
      const final = this.state.final[entry.finality];
      if (final === null || final < entry.blockNumber) return;
    } else {
      const chainHead = this.state.chain.head?.number ?? null;
      const head = entry.head === null || (chainHead !== null && chainHead > entry.head) ? chainHead : entry.head;
      if (head === null || head - entry.blockNumber + 1n < BigInt(entry.requiredConfirmations)) return;
    }
    // Confirmed: remember the block, so that a reorg deeper than requiredConfirmations is noticed.
    const on = this.state.confirmedOn.get(entry.blockHash) ?? { ids: [], number: entry.blockNumber };
    on.ids.push(id);
    this.state.confirmedOn.set(entry.blockHash, on);
  }

  private requestLookup(id: string): void {
    this.state.lookups.add(id);
    if (this.state.lookups.size >= this.lookupBatchSize || this.lookupGatherMs <= 0) this.wake();
    else this.gatherThenWake();
  }

  /** Wake the loop once new trackers had `lookupGatherMs` to gather, unless it wakes before. */
  private gatherThenWake(): void {
    if (this.gatherTimer !== null) return;
    this.gatherTimer = setTimeout(() => {
      this.gatherTimer = null;
      this.wake();
    }, this.lookupGatherMs);
  }

  private wake(): void {
    if (this.gatherTimer !== null) {
      clearTimeout(this.gatherTimer);
      this.gatherTimer = null;
    }
    const wake = this.wakeUp;
    this.wakeUp = null;
    if (wake) wake();
    else this.wokenDuringTick = true;
  }

  // ---- the loop --------------------------------------------------------------------------

  private async run(): Promise<void> {
    while (this.running) {
      // With pushed heads, polling is only a safety net against a silent subscription.
      let delay = this.heads.pushes
        ? Math.max(this.pollIntervalMs, Math.min(30_000, this.dropCheckIntervalMs))
        : this.pollIntervalMs;
      try {
        await this.tick();
        if (this.failures > 0) {
          this.state.logger.info({ after: this.failures }, 'chain watcher recovered');
          this.state.recoveredAt = this.state.now();
        }
        this.failures = 0;
        this.lastError = null;
      } catch (error) {
        this.failures++;
        this.lastError = errorMessage(error);
        // Exponential backoff with full jitter; trackers are never failed for this.
        const cap = Math.min(this.backoff.maxMs, this.backoff.baseMs * 2 ** Math.min(this.failures - 1, 20));
        delay = Math.max(this.backoff.baseMs / 2, Math.random() * cap);
        this.state.logger.warn(
          { err: error, failures: this.failures, retryInMs: Math.round(delay) },
          'chain watcher tick failed',
        );
      }
      if (!this.running) break;
      if (this.wokenDuringTick && this.failures === 0) delay = 0;
      this.wokenDuringTick = false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        this.wakeUp = () => {
          clearTimeout(timer);
          // Let a burst of trackerLive calls gather into one batch.
          setImmediate(resolve);
        };
      });
      this.wakeUp = null;
    }
  }

  /** Each step makes its own progress; the first error is rethrown once all had their turn. */
  private async tick(): Promise<void> {
    let failure: unknown = null;
    const step = async (run: () => Promise<void>): Promise<void> => {
      try {
        await run();
      } catch (error) {
        failure ??= error;
      }
    };
    await step(() => this.syncHead());
    if (this.state.lookups.size > 0) await step(() => this.runLookups());
    await step(() => this.judgeStuck());
    await step(() => this.checkDropped());
    if (failure !== null) throw failure;
  }

  private async syncHead(): Promise<void> {
    const before = this.state.chain.head;
    const hint = this.heads.latest();
    const head = hint
      ? await getBlock(this.state.transport, { blockHash: hint })
      : await getBlock(this.state.transport, { blockTag: 'latest' });
    if (!head) return; // the hinted block is gone already; the next head will come
    this.nodeHead = Number(head.number);
    for (;;) {
      const plan = await this.state.chain.plan(this.state.transport, head);
      if (!plan) break;
      await replayPlan(this.state, plan);
      if (!plan.partial) break;
    }
    if (this.state.chain.head !== before && this.state.chain.head !== null) await this.syncFinality();
  }

  /**
   * After a new head: the safe and finalized blocks, in one request, when trackers wait for them
   * (and every `finalityRefreshHeads` heads for `health()`), handed to the sink if they are still
   * on the chain replayed so far.
   */
  private async syncFinality(): Promise<void> {
    const chainId = this.state.chainId!;
    const { sink, transport, chain, logger } = this.state;
    this.headsSinceFinality++;
    const refresh = this.headsSinceFinality >= this.finalityRefreshHeads;
    const tags = refresh ? FINALITY_TAGS : FINALITY_TAGS.filter((tag) => sink.awaitsFinality?.(chainId, tag) ?? false);
    if (tags.length === 0) return;
    if (refresh) this.headsSinceFinality = 0;
    const outcomes = await transport.batch(
      tags.map((tag) => ({ method: 'eth_getBlockByNumber', params: [tag, false] })),
    );
    tags.forEach((tag, i) => {
      const outcome = outcomes[i]!;
      if (!outcome.ok) {
        // A node without the tag (or failing it now) leaves its trackers confirming, never failed.
        if (this.finalityErrors[tag] !== outcome.error.message) {
          logger.warn(
            { chainId, tag, err: outcome.error.message },
            `the node did not give its ${tag} block; trackers waiting for it wait`,
          );
        }
        this.finalityErrors[tag] = outcome.error.message;
        return;
      }
      this.finalityErrors[tag] = null;
      const block = parseNullable(outcome.result, parseBlock, `${tag} block`);
      if (!block || chain.isCanonical(block.number, block.hash) === false) return;
      const previous = this.state.final[tag];
      this.state.final[tag] = block.number;
      if (previous !== block.number) sink.newFinality?.(chainId, tag, Number(block.number));
    });
  }

  /** A node is used only once it says it is on the watcher's chain (which it sets, when not configured). */
  private async checkChain(transport: Transport): Promise<void> {
    const chainId = await getChainId(transport);
    if (this.state.chainId === null) this.state.chainId = chainId;
    if (chainId !== this.state.chainId) {
      const error = new ChainIdMismatchError(transport.url, this.state.chainId, chainId);
      this.state.logger.error({ err: error.message }, 'node on the wrong chain; it is not used');
      throw error;
    }
  }

  private async runLookups(): Promise<void> {
    if (!this.state.chain.head) return;
    // Bounded per tick so that heads keep being followed while thousands of trackers start.
    const ids = [...this.state.lookups].slice(0, this.lookupBatchSize * 50);
    for (const id of ids) this.state.lookups.delete(id);
    const entries = ids.map((id) => this.state.tracked.get(id)).filter((e): e is Tracked => e !== undefined);
    for (let i = 0; i < entries.length; i += this.lookupBatchSize) {
      const chunk = entries.slice(i, i + this.lookupBatchSize);
      try {
        await this.lookupEntries(chunk);
      } catch (error) {
        // The node failed the whole batch: everything not yet done waits for the next tick.
        for (const entry of entries.slice(i)) this.state.lookups.add(entry.id);
        throw error;
      }
    }
    if (this.state.lookups.size > 0) this.wake();
  }

  private async lookupEntries(entries: Tracked[]): Promise<void> {
    const hashes = [...new Set(entries.map((e) => e.hash))];
    const withRaw = new Set(entries.filter((e) => e.raw === null).map((e) => e.hash));
    const results = await lookupTransactions(this.state.transport, {
      hashes,
      withRaw,
      batchSize: 3 * this.lookupBatchSize,
    });
    await applyLookups(this.state, entries, results);
  }

  /** Once per new head: the pending trackers whose turn it is are judged stuck or not (no call when none is due). */
  private async judgeStuck(): Promise<void> {
    const head = this.state.chain.head;
    if (!head || head.number === this.judgedAt) return;
    this.judgedAt = head.number;
    await judgeStuck(this.state, head.number, this.state.baseFee);
  }

  /** Rate-limited: each pending tracker is looked up at most once per dropCheckIntervalMs. */
  private async checkDropped(): Promise<void> {
    const now = this.state.now();
    if (now - this.lastDropCheck < Math.min(this.dropCheckIntervalMs, 1000)) return;
    this.lastDropCheck = now;
    const due: Tracked[] = [];
    for (const entry of this.state.tracked.values()) {
      // Trackers still waiting for their first lookup are not due: that lookup is on its way.
      if (entry.state !== 'pending' || this.state.lookups.has(entry.id)) continue;
      if (now - entry.checkedAt >= this.dropCheckIntervalMs) due.push(entry);
      if (due.length >= this.lookupBatchSize * 10) break;
    }
    for (let i = 0; i < due.length; i += this.lookupBatchSize) {
      await this.lookupEntries(due.slice(i, i + this.lookupBatchSize));
    }
  }
}
