import type { Finality, StuckReason } from '../../machines/tracker.machine.js';
import type { TransactionIntent } from './classifyReplacement.js';

/** What the watcher knows of one live tracker. */
export interface Tracked {
  id: string;
  /** The hash followed now: the tracker's own, or the repriced tx that took its place. */
  hash: string;
  requiredConfirmations: number;
  /** Confirmed by the chain's block of this tag instead of a count. */
  finality: Finality | null;
  state: 'pending' | 'confirming';
  blockNumber: bigint | null;
  blockHash: string | null;
  /** The last head this tracker was told of (to know, when it goes, whether it confirmed). */
  head: bigint | null;
  /** Sender, nonce, call and max fee, once the node has shown the tx (replacement matching, stuck reasons). */
  tx: (TransactionIntent & { nonce: bigint; maxFeePerGas: bigint | null }) | null;
  /** The signed tx, for re-broadcast after a reorg. */
  raw: string | null;
  /** The node has known this tx at some point. */
  seen: boolean;
  /** Epoch ms since when the node has not known the tx (null while it knows it). */
  unknownSince: number | null;
  /**
   * The head at which this watcher first saw the node hold the followed tx unmined (null: not yet,
   * or it was mined or repriced since): stuck counts blocks from here.
   */
  pendingSince: bigint | null;
  /** The stuck reason the tracker was last given (null: not stuck). */
  stuck: StuckReason | null;
  /** Own lookups that failed in a row. */
  lookupFailures: number;
  /** Epoch ms of the last lookup of this tracker's tx. */
  checkedAt: number;
}

function add(index: Map<string, Set<string>>, key: string, id: string): void {
  let set = index.get(key);
  if (!set) index.set(key, (set = new Set()));
  set.add(id);
}

function remove(index: Map<string, Set<string>>, key: string | null, id: string): void {
  if (key === null) return;
  const set = index.get(key);
  if (!set) return;
  set.delete(id);
  if (set.size === 0) index.delete(key);
}

const senderKey = (from: string, nonce: bigint): string => `${from}:${nonce}`;

/**
 * The live trackers the watcher follows, indexed by followed hash, by sender+nonce (replacements)
 * and by block hash (reorgs). Several ids may follow one hash.
 */
export class TrackedSet {
  private readonly byId = new Map<string, Tracked>();
  private readonly byHash = new Map<string, Set<string>>();
  private readonly bySender = new Map<string, Set<string>>();
  private readonly byBlock = new Map<string, Set<string>>();

  get size(): number {
    return this.byId.size;
  }

  get(id: string): Tracked | undefined {
    return this.byId.get(id);
  }

  values(): IterableIterator<Tracked> {
    return this.byId.values();
  }

  idsByHash(hash: string): readonly string[] {
    return [...(this.byHash.get(hash) ?? [])];
  }

  idsBySender(from: string, nonce: bigint): readonly string[] {
    return [...(this.bySender.get(senderKey(from, nonce)) ?? [])];
  }

  hasSenders(): boolean {
    return this.senders.size > 0;
  }

  hasSender(from: string): boolean {
    return this.senders.has(from);
  }

  /** Ids of the trackers whose tx `from` sent. */
  idsOfSender(from: string): readonly string[] {
    return [...(this.senders.get(from) ?? [])];
  }

  idsByBlock(blockHash: string): readonly string[] {
    return [...(this.byBlock.get(blockHash) ?? [])];
  }

  hashes(): ReadonlySet<string> {
    return new Set(this.byHash.keys());
  }

  /** Sender → the ids of the trackers whose tx it sent. */
  private readonly senders = new Map<string, Set<string>>();

  upsert(entry: Tracked): void {
    this.delete(entry.id);
    this.byId.set(entry.id, entry);
    add(this.byHash, entry.hash, entry.id);
    this.indexTx(entry);
    this.setBlock(entry, entry.state, entry.blockNumber, entry.blockHash);
  }

  delete(id: string): Tracked | undefined {
    const entry = this.byId.get(id);
    if (!entry) return undefined;
    this.byId.delete(id);
    remove(this.byHash, entry.hash, id);
    this.unindexTx(entry);
    remove(this.byBlock, entry.blockHash, id);
    return entry;
  }

  setHash(entry: Tracked, hash: string): void {
    remove(this.byHash, entry.hash, entry.id);
    entry.hash = hash;
    add(this.byHash, hash, entry.id);
  }

  setTx(entry: Tracked, tx: Tracked['tx']): void {
    this.unindexTx(entry);
    entry.tx = tx;
    this.indexTx(entry);
  }

  setBlock(entry: Tracked, state: Tracked['state'], blockNumber: bigint | null, blockHash: string | null): void {
    remove(this.byBlock, entry.blockHash, entry.id);
    entry.state = state;
    entry.blockNumber = blockNumber;
    entry.blockHash = blockHash;
    if (blockHash !== null) add(this.byBlock, blockHash, entry.id);
  }

  private indexTx(entry: Tracked): void {
    if (!entry.tx) return;
    add(this.bySender, senderKey(entry.tx.from, entry.tx.nonce), entry.id);
    add(this.senders, entry.tx.from, entry.id);
  }

  private unindexTx(entry: Tracked): void {
    if (!entry.tx) return;
    remove(this.bySender, senderKey(entry.tx.from, entry.tx.nonce), entry.id);
    remove(this.senders, entry.tx.from, entry.id);
  }
}
