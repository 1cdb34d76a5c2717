import type { RootSupervisorRef } from '../../machines/root-supervisor.machine.js';
import type { SupervisorRef, TrackerRef } from '../../machines/supervisor.machine.js';
import { shardOf } from './shard.js';

/**
 * Reads the registry that lives in the supervisors' context: a tracker id hashes to a shard, the
 * shard's context maps the id to its live actor. Shards are created on first use, in batches.
 * `lookup` reads a flat map kept beside it from the supervisors' own hooks (a tracker registered,
 * crashed, ended, released; a shard restarted), so that a request's lookup is one string hash.
 *
 * @example
 * const registry = new ShardRegistry(root, 1024);
 * registry.lookup('txn_1'); // the live ActorRef, or undefined
 */
export class ShardRegistry {
  private readonly live = new Map<string, TrackerRef>();

  constructor(
    private readonly root: RootSupervisorRef,
    readonly shardCount: number,
  ) {}

  shardIndex(id: string): number {
    return shardOf(id, this.shardCount);
  }

  /** The live actor for `id`; undefined when it is not live. */
  lookup(id: string): TrackerRef | undefined {
    return this.live.get(id);
  }

  /** A shard registered this actor for `id` (its `trackerSpawned`). */
  registered(id: string, ref: TrackerRef): void {
    this.live.set(id, ref);
  }

  /** A shard deregistered `id` (it crashed, ended, or left with its shard). */
  deregistered(id: string): void {
    this.live.delete(id);
  }

  /** Shard `index` failed and was restarted empty: its trackers are no longer registered. */
  shardEmptied(index: number): void {
    for (const id of this.live.keys()) if (this.shardIndex(id) === index) this.live.delete(id);
  }

  /** Whether `id` crashed and waits for its restart. */
  isRestarting(id: string): boolean {
    const shard = this.existing(this.shardIndex(id));
    return shard !== undefined && id in shard.getSnapshot().context.restarting;
  }

  /** The shard `id` lives in, created on first use. */
  shardFor(id: string): SupervisorRef {
    return this.shard(this.shardIndex(id));
  }

  /** Shard `index`, created on first use. */
  shard(index: number): SupervisorRef {
    this.ensure([index]);
    return this.existing(index)!;
  }

  /** Create the missing ones among `shards` in one root transition (one copy of its children). */
  ensure(shards: Iterable<number>): void {
    const existing = this.root.getSnapshot().context.shards;
    const missing = [...shards].filter((shard) => !(shard in existing));
    if (missing.length > 0) this.root.send({ type: 'ENSURE_SHARDS', shards: missing });
  }

  /** Stop these shards' trackers and forget the shards (they are run elsewhere now). */
  release(shards: Iterable<number>): void {
    const existing = this.root.getSnapshot().context.shards;
    const present = [...shards].filter((shard) => shard in existing);
    if (present.length > 0) this.root.send({ type: 'RELEASE_SHARDS', shards: present });
  }

  /** Shards with live or restarting trackers, ascending. */
  occupied(): number[] {
    const shards: number[] = [];
    for (const shard of this.shards()) {
      const { context } = shard.getSnapshot();
      if (context.trackers.size > 0 || Object.keys(context.restarting).length > 0) shards.push(context.shard);
    }
    return shards.sort((a, b) => a - b);
  }

  /** Every shard supervisor that exists. */
  shards(): SupervisorRef[] {
    return Object.values(this.root.getSnapshot().context.shards);
  }

  /**
   * Live trackers, trackers restarting, and what the shards supervise: their trackers (created with
   * the shard as parent, see machines/supervisor.machine.ts) plus their XState children (restore
   * and give-up tasks).
   */
  counts(): { live: number; restarting: number; shardChildren: number; shards: number } {
    let live = 0;
    let restarting = 0;
    let shardChildren = 0;
    const shards = this.shards();
    for (const shard of shards) {
      const snapshot = shard.getSnapshot();
      live += snapshot.context.trackers.size;
      restarting += Object.keys(snapshot.context.restarting).length;
      shardChildren += snapshot.context.trackers.size + Object.keys(snapshot.children).length;
    }
    return { live, restarting, shardChildren, shards: shards.length };
  }

  private existing(index: number): SupervisorRef | undefined {
    return this.root.getSnapshot().context.shards[index];
  }
}
