import { Cluster, type ClusterOptions } from '../../src/cluster/cluster.js';
import { silentLogger } from '../../src/runtime/logger.js';
import { type TrackerSystem, createTrackerSystem } from '../../src/runtime/system.js';
import type { TrackerSystemOptions } from '../../src/runtime/types.js';
import { PostgresStore } from '../../src/store/postgres.js';

/** One instance of a cluster in the test's own process. */
export interface Member {
  store: PostgresStore;
  cluster: Cluster;
  system: TrackerSystem;
}

export interface JoinOptions {
  /** Cluster options beside the slow lease clock (`requestTimeoutMs`, `beforeAnswers`, …). */
  cluster?: Partial<ClusterOptions>;
  /** Tracker system options beside the store and placement (`hooks`, …). */
  system?: Partial<TrackerSystemOptions>;
  /** Called with the store once opened, before the cluster reads anything through it. */
  watch?: (store: PostgresStore) => void;
}

/**
 * An instance in this process; its heartbeat is slow (leases of 120 s, a heartbeat a minute), so a
 * test decides when leases change.
 *
 * @example
 * const a = await joinInProcess(url, 'a');
 */
export async function joinInProcess(url: string, instanceId: string, options: JoinOptions = {}): Promise<Member> {
  const store = await PostgresStore.open({ url });
  options.watch?.(store);
  const cluster = await Cluster.open({
    url,
    instanceId,
    leaseTtlMs: 120_000,
    heartbeatMs: 60_000,
    logger: silentLogger,
    ...options.cluster,
  });
  store.setCommitHook(cluster.commitHook);
  const system = await createTrackerSystem({
    store,
    placement: cluster.placement,
    rehydrate: false,
    ...options.system,
  });
  await cluster.start(system);
  return { store, cluster, system };
}

/** Every member stops (handing its leases back) and is removed from the list. */
export async function leaveAll(members: Member[]): Promise<void> {
  for (const { cluster, system, store } of members.splice(0)) {
    await cluster.stop().catch(() => {});
    await system.shutdown();
    await store.close();
  }
}
