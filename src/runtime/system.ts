import { createActor } from 'xstate';
import type { RootSupervisorRef } from '../../machines/root-supervisor.machine.js';
import {
  DEFAULT_RESTART_POLICY,
  type GiveUpInput,
  type RestartPolicy,
  type RestoreTrackerInput,
  type RestoreTrackerOutput,
  type TrackerRef,
  type TrackerSpawn,
} from '../../machines/supervisor.machine.js';
import {
  FINAL_STATE_NAMES,
  type Finality,
  TRACKER_EVENT_TYPES,
  type TrackerContext,
  type TrackerEvent,
  trackerMachine,
} from '../../machines/tracker.machine.js';
import { stampingLogic, startInShard } from '../../machines/xstate-adaptations.js';
import {
  IdConflictError,
  InvalidInputError,
  ShuttingDownError,
  StoreError,
  asSystemError,
  storeReadError,
} from '../errors.js';
import {
  type SnapshotStore,
  type TrackerChange,
  type TrackerCount,
  type TrackerRecord,
  decodeSeqCursor,
} from '../store/types.js';
import { ChainDirectory, type RuntimeChain } from './chains.js';
import { HeldEvents } from './held-events.js';
import { type Logger, silentLogger } from './logger.js';
import { ChangeCauses, trackerChange } from './changes.js';
import {
  type FirstCause,
  type ObserverHost,
  TrackerObserver,
  type TrackerSnapshot,
  trackerRecord,
} from './persistence.js';
import { Quarantine } from './quarantine.js';
import { ShardRegistry } from './registry.js';
import { DEFAULT_SHARD_COUNT } from './shard.js';
import { StartBatcher, StoredReader } from './start-batch.js';
import { trackerMigrations } from './snapshot-compat.js';
import { startSupervision } from './supervision.js';
import { type Tracker, ViewTexts, toTracker, topState } from './tracker-view.js';
import type {
  ChainView,
  HeadListener,
  Placement,
  SendResult,
  StartManyResult,
  StartOptions,
  StartRequest,
  StartResult,
  TrackerHistoryPage,
  TrackerHistoryQuery,
  TrackerHooks,
  TrackerListQuery,
  TrackerListener,
  TrackerPage,
  TrackerSystemOptions,
  TrackerSystemStats,
} from './types.js';
import { normalizeId, normalizeTxHash, parseConfirmations, validateConfirmations } from './validate.js';

export type * from './types.js';

/**
 * Start the tracker system: a root supervisor over sharded supervisors, the registry in their
 * context, every tracker persisted through `store`.
 *
 * @example
 * const system = await createTrackerSystem({ store: new MemoryStore() });
 * await system.start('txn_01dp371w0fnjhf9z2tjebx4vr4', { txHash });
 * system.lookup('txn_01dp371w0fnjhf9z2tjebx4vr4'); // the live ActorRef, also after a restart
 */
export async function createTrackerSystem(options: TrackerSystemOptions): Promise<TrackerSystem> {
  const system = new TrackerSystem(options);
  if (options.rehydrate !== false) await system.rehydrate();
  return system;
}

/**
 * The library API of the runtime: start, look up, send to, stop and list trackers, and feed it chain
 * heads. Each concern lives in its own module: start batching (start-batch.ts), the due-head index
 * (due-heads.ts), persistence of snapshots (persistence.ts), events held for restarting trackers
 * (held-events.ts), quarantine of rows that do not fit (quarantine.ts), and the supervision tree
 * (supervision.ts).
 */
/** How many live trackers' JSON texts `peekText` keeps. */
const VIEW_TEXTS_KEPT = 10_000;

export class TrackerSystem {
  readonly store: SnapshotStore;
  readonly shardCount: number;
  readonly defaultConfirmations: number;
  /** The chains trackers can be on, one of them the default. */
  readonly chains: ChainDirectory;
  readonly policy: RestartPolicy;
  readonly trackerLogic: typeof trackerMachine;
  private readonly root: RootSupervisorRef;
  private readonly registry: ShardRegistry;
  private readonly hooks: TrackerHooks;
  private readonly logger: Logger;
  private readonly faultInjection: boolean;
  private readonly placement: Placement | undefined;
  private readonly now: () => number;
  private readonly quarantine: Quarantine;
  private readonly reader: StoredReader;
  private readonly starts = new StartBatcher((requests) => this.startNow(requests));
  private readonly held = new HeldEvents();
  private readonly listeners = new Set<TrackerListener>();
  private readonly headListeners = new Set<HeadListener>();
  /**
   * Ids being rehydrated, each with whether its first snapshot is the stored row itself (writing
   * it again would be waste). Their first snapshot is no change either way.
   */
  private readonly rehydrating = new Map<string, boolean>();
  /** Which event made which tracker snapshot, for the history. */
  private readonly causes = new ChangeCauses();
  /** The texts of the live trackers read last, for `peekText`. */
  private readonly viewTexts = new ViewTexts(VIEW_TEXTS_KEPT);
  private subscriptions = 0;
  /** Trackers attached in this turn, announced together in one microtask (`announceAttached`). */
  private attached: Array<{ id: string; ref: TrackerRef }> = [];
  private readonly observerHost: ObserverHost = {
    changed: (id, snapshot, write, previous, first) => this.trackerChanged(id, snapshot, write, previous, first),
    ended: () => void this.subscriptions--,
  };
  private counters = { crashes: 0, restarts: 0, crashLoops: 0 };
  /** Ids that crashed in this process and have not run again yet (for the restarts counter). */
  private readonly crashedHere = new Set<string>();
  private shuttingDown = false;
  /** An inspector is attached: shards get their START as events, which it sees. */
  private readonly inspected: boolean;

  constructor(options: TrackerSystemOptions) {
    this.store = options.store;
    this.inspected = options.inspect !== undefined;
    this.reader = new StoredReader(options.store);
    this.shardCount = options.shardCount ?? DEFAULT_SHARD_COUNT;
    this.defaultConfirmations = validateConfirmations(options.defaultConfirmations ?? 12);
    this.chains = new ChainDirectory(options.chains ?? [], options.defaultChain, this.defaultConfirmations);
    this.policy = { ...DEFAULT_RESTART_POLICY, ...options.restartPolicy };
    this.hooks = options.hooks ?? {};
    this.logger = options.logger ?? silentLogger;
    this.faultInjection = options.faultInjection ?? false;
    this.placement = options.placement;
    this.now = options.now ?? Date.now;
    this.quarantine = new Quarantine({
      store: this.store,
      // Rows from before trackers had a chain become the default chain's (version 1 → 2).
      migrations: { ...trackerMigrations(this.chains.default.id), ...options.migrations },
      logger: this.logger,
      now: this.now,
      defaultConfirmations: this.defaultConfirmations,
      defaultChainId: this.chains.default.id,
    });

    // New trackers' first snapshots are stamped from one resolved template (xstate-adaptations.ts).
    this.trackerLogic = this.causes.track(
      stampingLogic(
        trackerMachine.provide({
          actions: {
            requestRecheck: ({ context }) => this.hooks.recheck?.(context),
            requestRebroadcast: ({ context }) => this.hooks.rebroadcast?.(context),
          },
        }),
      ),
    );

    this.root = startSupervision(
      {
        loadForRestart: (input) => this.loadForRestart(input),
        storedNow: this.reader.synchronous
          ? (id) => this.quarantine.restoreOutput(id, this.reader.readOneNow(id)).snapshot
          : undefined,
        giveUp: (input) => this.giveUp(input),
        spawned: this.spawned,
        crashed: (id) => {
          this.registry.deregistered(id);
          this.counters.crashes++;
          this.crashedHere.add(id);
        },
        gone: (id) => this.gone(id),
        givenUp: () => void this.counters.crashLoops++,
        released: (ids) => {
          for (const id of ids) this.gone(id);
        },
        shardRestarted: (shard) => {
          this.registry.shardEmptied(shard);
          void this.rehydrate(shard);
        },
      },
      {
        shardCount: this.shardCount,
        policy: this.policy,
        trackerLogic: this.trackerLogic,
        now: this.now,
        logger: this.logger,
        inspect: options.inspect,
      },
    );
    this.registry = new ShardRegistry(this.root, this.shardCount);
  }

  /**
   * Start tracking a transaction under `id` (default: its hash on the default chain,
   * `<chainId>:<hash>` on another). Resolves once the tracker's first snapshot is durable. Starting
   * an id that runs returns the running tracker; ids are unique across all chains.
   *
   * @example
   * const { status, ref } = await system.start('txn_01dp371w0fnjhf9z2tjebx4vr4', { txHash, confirmations: 3 });
   * await system.start(undefined, { txHash, chain: 'base', confirmations: 'finalized' }); // id `8453:<hash>`
   */
  async start(id: string | undefined, options: StartOptions): Promise<StartResult> {
    const [result] = await this.startMany([{ ...options, id }]);
    if (result!.status === 'error') throw result!.error;
    return result!;
  }

  /**
   * Start many trackers with one durability barrier. One bad item never rejects the others: each
   * gets its own result, in order.
   *
   * @example
   * const results = await system.startMany([{ txHash: a }, { txHash: b, id: 'order-7' }]);
   */
  async startMany(requests: readonly StartRequest[]): Promise<StartManyResult[]> {
    if (this.shuttingDown) throw new ShuttingDownError();
    // Calls made in the same turn of the event loop are started together (StartBatcher).
    return this.starts.enqueue(requests);
  }

  private async startNow(requests: readonly StartRequest[]): Promise<StartManyResult[]> {
    if (this.shuttingDown) throw new ShuttingDownError();
    // Undefined until the store has answered for that request.
    const results: Array<StartManyResult | undefined> = [];
    /** Requests for trackers of shards another instance runs: answered by their owners. */
    const remote: Array<{ index: number; request: StartRequest & { id: string }; shard: number }> = [];
    const pendingStored: Array<{
      index: number;
      id: string;
      txHash: string;
      chain: RuntimeChain;
      requiredConfirmations: number;
      finality: Finality | null;
    }> = [];
    for (const request of requests) {
      try {
        const txHash = normalizeTxHash(request.txHash);
        const chain = this.chains.resolve(request.chain);
        const id =
          request.id === undefined ? (chain.isDefault ? txHash : `${chain.id}:${txHash}`) : normalizeId(request.id);
        const { requiredConfirmations, finality } =
          request.confirmations === undefined ? chain : parseConfirmations(request.confirmations);
        // Another instance's tracker (several instances share the shards): its owner answers.
        const shard = this.placement ? this.registry.shardIndex(id) : -1;
        if (this.placement && !this.placement.owns(shard)) {
          remote.push({ index: results.length, request: { ...request, id, txHash, chain: chain.id }, shard });
          results.push(undefined);
          continue;
        }
        const live = this.lookup(id);
        if (live) {
          results.push(this.alreadyStarted(id, txHash, chain.id, live));
          continue;
        }
        pendingStored.push({ index: results.length, id, txHash, chain, requiredConfirmations, finality });
        results.push(undefined);
      } catch (error) {
        results.push({ status: 'error', error: asSystemError(error) });
      }
    }
    const forwarded =
      remote.length > 0
        ? this.placement!.start(
            remote.map((r) => r.request),
            remote.map((r) => r.shard),
          ).then(
            (answers) => answers.forEach((answer, i) => (results[remote[i]!.index] = answer)),
            (error: unknown) =>
              remote.forEach((r) => (results[r.index] = { status: 'error', error: asSystemError(error) })),
          )
        : undefined;
    // Ids that are not live may have finished earlier, or be restarting: the store knows.
    const synchronous = this.reader.synchronous;
    const ids = pendingStored.map((p) => p.id);
    const stored = synchronous ? this.reader.readNow(ids) : await this.reader.read(ids);
    const seen = new Set<string>();
    const duplicates: Array<{ index: number; id: string; txHash: string; chainId: number }> = [];
    const spawned: Array<{ index: number; id: string }> = [];
    const byShard = new Map<number, TrackerSpawn[]>();
    pendingStored.forEach((p, i) => {
      const record = stored[i];
      if (record instanceof StoreError) {
        results[p.index] = { status: 'error', error: record };
        return;
      }
      // After an asynchronous read, another call may have started it meanwhile.
      const live = synchronous ? undefined : this.lookup(p.id);
      if (live || seen.has(p.id)) {
        if (live) results[p.index] = this.alreadyStarted(p.id, p.txHash, p.chain.id, live);
        else duplicates.push({ index: p.index, id: p.id, txHash: p.txHash, chainId: p.chain.id });
        return;
      }
      if (record) {
        const tracker = this.quarantine.trackerOf(record, this.headOf);
        if (record.txHash !== p.txHash || tracker.chainId !== p.chain.id) {
          results[p.index] = { status: 'error', error: new IdConflictError(p.id, record.txHash, tracker.chainId) };
        } else if (FINAL_STATE_NAMES.includes(tracker.state)) {
          results[p.index] = { status: 'exists', tracker, ref: undefined };
        } else {
          results[p.index] = { status: 'already_started', tracker, ref: undefined };
        }
        return;
      }
      seen.add(p.id);
      const shard = this.registry.shardIndex(p.id);
      const input = {
        id: p.id,
        txHash: p.txHash,
        chainId: p.chain.id,
        requiredConfirmations: p.requiredConfirmations,
        finality: p.finality,
        createdAt: this.now(),
      };
      const spawns = byShard.get(shard) ?? [];
      spawns.push({ id: p.id, input });
      byShard.set(shard, spawns);
      spawned.push({ index: p.index, id: p.id });
    });
    // One START per shard: the shard copies its registry once for the whole group.
    this.startInShards(byShard);
    for (const { index, id } of spawned) {
      const ref = this.lookup(id)!;
      results[index] = { status: 'started', tracker: this.view(ref), ref };
    }
    for (const { index, id, txHash, chainId } of duplicates)
      results[index] = this.alreadyStarted(id, txHash, chainId, this.lookup(id));
    // `already_started` waits too: after a failed flush a retried start finds the tracker live, and
    // must not be acknowledged before its first snapshot is durable.
    if (results.some((r) => r?.status === 'started' || r?.status === 'already_started')) await this.flush();
    await forwarded;
    return results as StartManyResult[];
  }

  /**
   * Each shard's START, applied by the runtime as the transition does it (`startInShard`: XState's
   * macrostep per shard cost as much as the tracker's own start); sent as the event while the
   * system is inspected, so that the inspector sees it.
   */
  private startInShards(byShard: ReadonlyMap<number, TrackerSpawn[]>): void {
    this.registry.ensure(byShard.keys());
    for (const [index, trackers] of byShard) {
      const shard = this.registry.shard(index);
      if (this.inspected || !startInShard(shard, trackers, this.spawned)) shard.send({ type: 'START', trackers });
    }
  }

  /** A shard created a tracker (new, restarted or rehydrated): register it, attach persistence. */
  private readonly spawned = (id: string, ref: TrackerRef): void => {
    this.registry.registered(id, ref);
    this.attach(id, ref);
  };

  /** The live actor for `id`, wherever it runs, also after a restart; undefined when not live. */
  lookup(id: string): TrackerRef | undefined {
    return this.registry.lookup(id);
  }

  /** A live tracker as it stands now (confirmations at its chain's head); undefined when not live. */
  peek(id: string): Tracker | undefined {
    const ref = this.lookup(id);
    return ref && this.view(ref);
  }

  /**
   * `peek` as JSON text, what `GET /trackers/:id` sends; the text is reused while the tracker's
   * snapshot and (when it is confirming) its chain's head stay the same.
   */
  peekText(id: string): string | undefined {
    const ref = this.lookup(id);
    if (!ref) return undefined;
    const snapshot = ref.getSnapshot();
    const state = topState(snapshot.value);
    const head = state === 'confirming' ? this.headOf(snapshot.context.chainId) : null;
    return this.viewTexts.text(id, snapshot, head, () => toTracker(snapshot.context, state, head));
  }

  /** The tracker as it stands now, live or final. */
  async get(id: string): Promise<Tracker | undefined> {
    const key = normalizeId(id);
    const ref = this.lookup(key);
    if (ref) return this.view(ref);
    const record = await this.store.get(key).catch(storeReadError);
    if (record instanceof StoreError) throw record;
    return record ? this.quarantine.trackerOf(record, this.headOf) : undefined;
  }

  /**
   * Route an event to the tracker's current actor. Resolves once the change is durable.
   *
   * @example
   * await system.send('txn_1', { type: 'RECHECK' }); // { status: 'accepted', tracker }
   */
  async send(id: string, event: TrackerEvent): Promise<SendResult> {
    if (this.shuttingDown) throw new ShuttingDownError();
    const key = normalizeId(id);
    if (!TRACKER_EVENT_TYPES.includes(event.type)) {
      throw new InvalidInputError('unknown_event', `trackers define no event ${String(event.type)}`);
    }
    if (event.type === 'CRASH' && !this.faultInjection) {
      throw new InvalidInputError('fault_injection_disabled', 'CRASH is only accepted with fault injection enabled');
    }
    const stamped = { ...event, at: event.at ?? this.now() };
    const nothingToSend = event.type === 'REBROADCAST' && this.hooks.canRebroadcast?.(key) === false;
    const ref = this.lookup(key);
    if (!ref && this.placement) {
      const shard = this.registry.shardIndex(key);
      if (!this.placement.owns(shard)) return this.placement.send(key, shard, stamped);
    }
    if (!ref || this.held.has(key)) {
      // Held at once, before any await: events keep the order they came in.
      const waits = this.waitsForIncarnation(key);
      const held = waits && !nothingToSend ? this.held.hold(key, stamped) : false;
      const tracker = await this.get(key);
      if (!tracker) return { status: 'not_found' };
      if (held) return { status: 'held', tracker };
      return waits && nothingToSend
        ? { status: 'nothing_to_rebroadcast', tracker }
        : { status: 'not_accepted', tracker };
    }
    if (!ref.getSnapshot().can(stamped)) return { status: 'not_accepted', tracker: this.view(ref) };
    if (nothingToSend) return { status: 'nothing_to_rebroadcast', tracker: this.view(ref) };
    ref.send(stamped);
    await this.flush();
    return { status: 'accepted', tracker: (await this.get(key))! };
  }

  /**
   * Deliver a chain fact without waiting for durability (the chain watcher's path). Returns false
   * when no live tracker has that id.
   */
  deliver(id: string, event: TrackerEvent): boolean {
    if (this.shuttingDown) return false;
    const stamped = event.at === undefined ? { ...event, at: this.now() } : event;
    const ref = this.lookup(id);
    if (ref && !this.held.has(id)) {
      ref.send(stamped);
      return true;
    }
    return this.waitsForIncarnation(id) && this.held.hold(id, stamped);
  }

  /**
   * A new head of a chain (default: the default chain). Confirming trackers are not sent every
   * head: their confirmations are derived from it (`head − blockNumber + 1`), and only the ones it
   * brings to their required confirmations get a `NEW_HEAD` event. Returns how many were woken.
   * Reorgs reach trackers as `BLOCK_REORGED`.
   *
   * @example
   * system.newHead(1_234_567); // wakes the trackers whose threshold is ≤ 1,234,567
   * system.newHead(30_000_000, 8453); // the same on chain 8453
   */
  newHead(blockNumber: number, chainId: number = this.chains.default.id): number {
    if (this.shuttingDown) return 0;
    const chain = this.chainOf(chainId);
    let woken = 0;
    for (const id of chain.due.newHead(blockNumber)) {
      if (this.deliver(id, { type: 'NEW_HEAD', blockNumber })) woken++;
    }
    for (const listener of this.headListeners) {
      try {
        listener(blockNumber, chain.id);
      } catch (error) {
        this.logger.error({ err: error }, 'head listener threw');
      }
    }
    return woken;
  }

  /**
   * A chain's new safe or finalized block (`tag`): the confirming trackers waiting for that tag whose
   * block it reaches get `FINALITY` and are confirmed. Returns how many were woken.
   *
   * @example
   * system.newFinality(1, 'finalized', 1_234_500);
   */
  newFinality(chainId: number, tag: Finality, blockNumber: number): number {
    if (this.shuttingDown) return 0;
    const chain = this.chainOf(chainId);
    let woken = 0;
    const head = Math.max(chain.due.head ?? blockNumber, blockNumber);
    for (const id of chain.due.newFinal(tag, blockNumber)) {
      if (this.deliver(id, { type: 'FINALITY', blockNumber, head })) woken++;
    }
    return woken;
  }

  /** Whether confirming trackers of a chain wait for its `tag` block (the watcher reads it for them). */
  awaitsFinality(chainId: number, tag: Finality): boolean {
    return (this.chains.get(chainId)?.due.waitingFor(tag) ?? 0) > 0;
  }

  /** The newest head of the default chain the system was told of; null before the first. */
  get chainHead(): number | null {
    return this.chains.default.due.head;
  }

  /** Each chain: its settings and the newest head, safe and finalized block the system was told of. */
  chainViews(): ChainView[] {
    return this.chains.all().map((chain) => ({
      id: chain.id,
      name: chain.name,
      isDefault: chain.isDefault,
      confirmations: chain.finality ?? chain.requiredConfirmations,
      head: chain.due.head,
      safe: chain.due.final.safe,
      finalized: chain.due.final.finalized,
    }));
  }

  /** Trackers per chain and state over the whole store (rows from before chains counted as the default's). */
  async countTrackers(): Promise<TrackerCount[]> {
    const counts = await this.store.countByChain().catch(storeReadError);
    if (counts instanceof StoreError) throw counts;
    const merged = new Map<string, TrackerCount>();
    for (const { chainId, state, count } of counts) {
      const chain = chainId ?? this.chains.default.id;
      const key = `${chain}/${state}`;
      const known = merged.get(key);
      if (known) known.count += count;
      else merged.set(key, { chainId: chain, state, count });
    }
    return [...merged.values()];
  }

  /** Be told of every new head (after the due trackers were woken). Returns the unsubscribe function. */
  subscribeHeads(listener: HeadListener): () => void {
    this.headListeners.add(listener);
    return () => this.headListeners.delete(listener);
  }

  /**
   * Stop tracking on purpose: the tracker goes to `stopped`, is deregistered, and its final
   * snapshot stays in the store. Undefined when the id is unknown.
   */
  async stop(id: string): Promise<Tracker | undefined> {
    const key = normalizeId(id);
    if (this.placement && !this.lookup(key)) {
      const shard = this.registry.shardIndex(key);
      if (!this.placement.owns(shard)) return this.placement.stop(key, shard);
    }
    if (this.waitsForIncarnation(key)) await this.held.restarted(key);
    const ref = this.lookup(key);
    if (ref) {
      this.registry.shardFor(key).send({ type: 'STOP_TRACKER', id: key });
      await this.flush();
    }
    return this.get(key);
  }

  /** A page of trackers in id order, optionally in one state, on one chain. */
  async list(query: TrackerListQuery): Promise<TrackerPage> {
    const { chain, ...rest } = query;
    const chainId = chain === undefined ? undefined : this.chains.resolve(chain).id;
    const page = await this.store
      .list({ ...rest, chainId, unsetChainId: this.chains.default.id })
      .catch(storeReadError);
    if (page instanceof StoreError) throw page;
    return {
      items: page.items.map((record) => this.quarantine.trackerOf(record, this.headOf)),
      nextCursor: page.nextCursor,
    };
  }

  /**
   * A tracker's changes, oldest first, paged (also once it ended, until the history retention
   * drops them). Undefined when the id is unknown.
   *
   * @example
   * const { items, nextCursor } = (await system.history('txn_1', { limit: 100 }))!;
   */
  async history(id: string, query: TrackerHistoryQuery): Promise<TrackerHistoryPage | undefined> {
    const key = normalizeId(id);
    if (query.cursor && decodeSeqCursor(query.cursor) === null) {
      throw new InvalidInputError('invalid_cursor', 'cursor: not a cursor of this history');
    }
    const known = this.lookup(key) !== undefined || (await this.store.get(key).catch(storeReadError));
    if (known instanceof StoreError) throw known;
    if (!known && !this.registry.isRestarting(key)) return undefined;
    const page = await this.store.history(key, query).catch(storeReadError);
    if (page instanceof StoreError) throw page;
    return {
      items: page.items.map(({ seq, at, from, to, event, blockNumber, blockHash, restarts, reorgs, detail }) => ({
        seq,
        at: new Date(at).toISOString(),
        from,
        to,
        event,
        blockNumber,
        blockHash,
        restarts,
        reorgs,
        detail,
      })),
      nextCursor: page.nextCursor,
    };
  }

  /** Be told of every tracker change, creation included. Returns the unsubscribe function. */
  subscribe(listener: TrackerListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Bring non-final trackers back from the store (all of them, or those of some shards), in batches.
   * A row that does not fit the machine is quarantined (failed, `incompatible_snapshot`), never run.
   * `current(shard)` false once the read is done: that shard changed hands meanwhile, and what was
   * read for it is not started (a newer rehydration brings it).
   */
  async rehydrate(only?: number | Iterable<number>, current?: (shard: number) => boolean): Promise<number> {
    const shards = only === undefined ? undefined : new Set(typeof only === 'number' ? [only] : only);
    let count = 0;
    let quarantined = 0;
    /** Trackers of chains this system does not have, per chain id: kept as stored, not run. */
    const elsewhere = new Map<number, number>();
    // Grouped by shard and sent once per shard: one registry copy per shard instead of one per tracker.
    const byShard = new Map<number, TrackerSpawn[]>();
    // The store reads only these shards' rows (a claim of a few shards must not read every tracker).
    const rows = this.store.loadLive(1000, shards && { shards: [...shards], shardCount: this.shardCount });
    for await (const batch of rows) {
      for (const record of batch) {
        const shardIndex = this.registry.shardIndex(record.id);
        if (shards !== undefined && !shards.has(shardIndex)) continue;
        if (this.placement && !this.placement.owns(shardIndex)) continue;
        if (this.lookup(record.id)) continue;
        const snapshot = this.quarantine.runnableOrQuarantine(record);
        if (!snapshot) {
          quarantined++;
          continue;
        }
        if (!this.chains.get(snapshot.context.chainId)) {
          elsewhere.set(snapshot.context.chainId, (elsewhere.get(snapshot.context.chainId) ?? 0) + 1);
          continue;
        }
        this.rehydrating.set(record.id, snapshot === record.snapshot);
        const spawns = byShard.get(shardIndex) ?? [];
        spawns.push({ id: record.id, snapshot });
        byShard.set(shardIndex, spawns);
        count++;
      }
    }
    // A shard may have been released (or released and taken anew) while the store was read.
    for (const shardIndex of byShard.keys()) {
      if ((this.placement && !this.placement.owns(shardIndex)) || (current && !current(shardIndex))) {
        byShard.delete(shardIndex);
      }
    }
    this.startInShards(byShard);
    this.rehydrating.clear();
    for (const [chainId, trackers] of elsewhere) {
      this.logger.warn(
        { chainId, trackers },
        `${trackers} live trackers are on chain ${chainId}, which is not configured: they are kept as stored and not followed`,
      );
    }
    if (quarantined > 0) {
      await this.flush().catch((error: unknown) =>
        this.logger.error({ err: error }, 'could not store quarantined trackers'),
      );
    }
    return count;
  }

  /**
   * Stop these shards' trackers at once, writing nothing more for them: they are run by another
   * instance now (their leases were handed back or lost). Events held for them are dropped.
   *
   * @example
   * system.releaseShards([17, 18]);
   */
  releaseShards(shards: Iterable<number>): void {
    this.registry.release(shards);
  }

  /** A stored row as the API shows it (its confirmations at its chain's head as known here). */
  describe(record: TrackerRecord): Tracker {
    return this.quarantine.trackerOf(record, this.headOf);
  }

  /** Shards that have live or restarting trackers here, ascending. */
  occupiedShards(): number[] {
    return this.registry.occupied();
  }

  /** Make every write so far durable (rejects when the store cannot). */
  async flushWrites(): Promise<void> {
    await this.flush();
  }

  /**
   * Stop taking work (starts, events and heads are refused from now on), make every write durable,
   * stop all actors. The store stays open (its owner closes it).
   *
   * `stopActors: false` leaves the actors as they are, inert, for a process about to exit: XState
   * stops a parent's children one at a time, copying the parent's children for each, which at
   * 100,000 trackers takes longer than the SIGTERM bound (docs/performance.md).
   *
   * @example
   * await system.shutdown(); // a library user: everything stopped
   * await system.shutdown({ stopActors: false }); // SIGTERM: durable, then exit
   */
  async shutdown(options: { stopActors?: boolean } = {}): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    await this.flush().catch((error: unknown) => this.logger.error({ err: error }, 'final flush failed'));
    if (options.stopActors !== false) this.root.send({ type: 'SHUTDOWN' });
  }

  stats(): TrackerSystemStats {
    return { ...this.registry.counts(), ...this.counters, subscriptions: this.subscriptions };
  }

  // ---- internals -------------------------------------------------------------------------

  private async flush(): Promise<void> {
    try {
      await this.store.flush();
    } catch (error) {
      throw error instanceof StoreError ? error : new StoreError('the store could not make the change durable', error);
    }
  }

  /** The newest head of a chain the system was told of (null: none yet, or not a chain of this system). */
  private readonly headOf = (chainId: number): number | null => this.chains.get(chainId)?.due.head ?? null;

  private chainOf(chainId: number): RuntimeChain {
    const chain = this.chains.get(chainId);
    if (!chain) throw new InvalidInputError('unknown_chain', `chain ${chainId} is not a chain of this system`);
    return chain;
  }

  private view(ref: TrackerRef): Tracker {
    const snapshot = ref.getSnapshot();
    return this.viewOf(snapshot.context, snapshot.value);
  }

  private viewOf(context: TrackerContext, value: unknown): Tracker {
    return toTracker(context, topState(value), this.headOf(context.chainId));
  }

  private alreadyStarted(id: string, txHash: string, chainId: number, ref: TrackerRef | undefined): StartManyResult {
    const tracker = ref ? this.view(ref) : undefined;
    if (tracker && (tracker.txHash !== txHash || tracker.chainId !== chainId)) {
      return { status: 'error', error: new IdConflictError(id, tracker.txHash, tracker.chainId) };
    }
    return { status: 'already_started', tracker: tracker!, ref };
  }

  /** Persist every change of a tracker (new or restored) and tell the hooks it is live. */
  private attach(id: string, ref: TrackerRef): void {
    this.subscriptions++;
    const asIs = this.rehydrating.get(id);
    this.rehydrating.delete(id);
    const first: FirstCause = this.crashedHere.has(id) ? 'RESTART' : asIs === undefined ? 'START' : null;
    const observer = new TrackerObserver(this.observerHost, id, asIs === true, first);
    observer.subscription = ref.subscribe(observer);
    // One microtask for every tracker attached in this turn (a START of thousands is one turn).
    if (this.attached.push({ id, ref }) === 1) queueMicrotask(() => this.announceAttached());
  }

  /**
   * After the attaching step: count restarts, tell the hook, hand over held events, and wake the
   * waiters once the tracker took them all and still runs (else they wait for its next incarnation).
   */
  private announceAttached(): void {
    const attached = this.attached;
    this.attached = [];
    for (const { id, ref } of attached) {
      try {
        const snapshot = ref.getSnapshot();
        // A restart is counted once the tracker that crashed in this process runs again; trackers
        // brought back at start carry restarts from before, which are not this process's.
        if (this.crashedHere.delete(id)) this.counters.restarts++;
        this.hooks.trackerLive?.(snapshot.context, topState(snapshot.value));
      } catch (error) {
        this.logger.error({ err: error }, 'trackerLive hook threw');
      }
      // Most trackers have nothing held: no closures are made for them on a start of thousands.
      if (
        this.held.has(id) &&
        !this.held.handOver(
          id,
          (event) => ref.send(event),
          () => this.lookup(id) === ref,
        )
      ) {
        continue;
      }
      for (const wake of this.held.takeWaiters(id) ?? []) wake();
    }
  }

  /** Events for `id` wait for its next incarnation: it is restarting, or its held events are not handed over yet. */
  private waitsForIncarnation(id: string): boolean {
    return this.held.has(id) || this.registry.isRestarting(id);
  }

  /** A tracker's new snapshot: persist it, keep the due index, deregister it once terminal. */
  private trackerChanged(
    id: string,
    snapshot: TrackerSnapshot,
    write: boolean,
    previous: TrackerSnapshot | undefined,
    first: FirstCause,
  ): void {
    if (write) {
      const change =
        previous !== undefined
          ? trackerChange(previous, snapshot, this.causes.of(snapshot) ?? 'UNKNOWN', this.now())
          : first === null
            ? null
            : trackerChange(
                first === 'START' ? null : { value: snapshot.value, context: null },
                snapshot,
                first,
                this.now(),
              );
      this.persist(snapshot, true, change);
    } else this.persist(snapshot, false);
    const state = topState(snapshot.value);
    const due = this.chains.get(snapshot.context.chainId)?.due.update(id, snapshot.context, state);
    // After this snapshot's observers: the actor is not re-entered from inside its own update.
    if (due) queueMicrotask(() => this.deliver(id, due));
    // Persisted first, then deregistered: one fixed event type, whatever the tracker's id.
    if (snapshot.hasTag('terminal')) this.registry.shardFor(id).send({ type: 'TRACKER_ENDED', id });
  }

  private persist(snapshot: TrackerSnapshot, write = true, change?: TrackerChange | null): void {
    if (write) this.write(trackerRecord(snapshot, change));
    if (this.listeners.size > 0) {
      this.notify(this.listeners, this.viewOf(snapshot.context, snapshot.value), 'tracker listener threw');
    }
  }

  /** Call each listener; one that throws is logged and the others still run. */
  private notify<T>(listeners: ReadonlySet<(value: T) => void>, value: T, what: string): void {
    for (const listener of listeners) {
      try {
        listener(value);
      } catch (error) {
        this.logger.error({ err: error }, what);
      }
    }
  }

  /** Never throws: it runs inside XState observers, where a throw would end the process. */
  private write(record: TrackerRecord): void {
    try {
      this.store.write(record);
    } catch (error) {
      this.logger.error({ id: record.id, err: error }, 'could not write the tracker to the store');
    }
  }

  private gone(id: string): void {
    this.registry.deregistered(id);
    for (const chain of this.chains.all()) chain.due.remove(id);
    this.crashedHere.delete(id);
    const dropped = this.held.drop(id);
    if (dropped.length > 0) {
      this.logger.warn(
        { id, events: dropped.map((e) => e.type) },
        'tracker ended while events for it were held; they are dropped',
      );
    }
    this.hooks.trackerGone?.(id);
  }

  private async loadForRestart({ id, delayMs }: RestoreTrackerInput): Promise<RestoreTrackerOutput> {
    if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs).unref());
    return this.quarantine.restoreOutput(id, await this.store.get(id));
  }

  private async giveUp({ id, reason, detail }: GiveUpInput): Promise<void> {
    const record = await this.store.get(id);
    if (!record) return;
    const saved = this.quarantine.runnableOrQuarantine(record);
    if (!saved) return;
    const { txHash, chainId, requiredConfirmations, finality, createdAt } = saved.context;
    const actor = createActor(this.trackerLogic, {
      snapshot: saved,
      input: { id, txHash, chainId, requiredConfirmations, finality, createdAt },
    }).start();
    actor.send({ type: 'GIVE_UP', reason, detail, at: this.now() });
    const after = actor.getSnapshot();
    this.persist(after, true, trackerChange(saved, after, 'GIVE_UP', this.now()));
    actor.stop();
    await this.flush();
  }
}
