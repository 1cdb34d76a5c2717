import { ReorgTooDeepError } from './errors.js';
import type { ChainBlock } from './format.js';
import { getBlock } from './getBlock.js';
import type { Transport } from './transport.js';

export interface BlockRef {
  number: bigint;
  hash: string;
  parentHash: string;
}

/** How to get from the blocks we know to the node's head. */
export interface SyncPlan {
  /** Blocks of ours that left the chain, highest first. */
  orphaned: BlockRef[];
  /** The new blocks to replay, lowest first; the last one is the head. */
  branch: ChainBlock[];
  /** The fork went deeper than the history: trackers must be looked up again. */
  tooDeep: ReorgTooDeepError | null;
}

/**
 * The recent canonical chain as the watcher has replayed it: enough block hashes to find the fork
 * point of any reorg up to `depth` blocks.
 */
export class CanonicalChain {
  private readonly blocks = new Map<bigint, BlockRef>();
  private headRef: BlockRef | null = null;

  constructor(
    readonly depth: number,
    /** Most blocks fetched to reach one head; a longer gap restarts from the head. */
    readonly maxCatchUp: number,
  ) {}

  get head(): BlockRef | null {
    return this.headRef;
  }

  get lowest(): bigint | null {
    return this.headRef ? this.headRef.number - BigInt(this.blocks.size) + 1n : null;
  }

  get(number: bigint): BlockRef | undefined {
    return this.blocks.get(number);
  }

  isCanonical(number: bigint, hash: string): boolean | undefined {
    const known = this.blocks.get(number);
    if (known) return known.hash === hash;
    return this.headRef !== null && number > this.headRef.number ? false : undefined;
  }

  /** Walk back from `head` by parent hash to a block we know; fetches only by hash. */
  async plan(transport: Transport, head: ChainBlock): Promise<SyncPlan | null> {
    if (!this.headRef) return { orphaned: [], branch: [head], tooDeep: null };
    const known = this.blocks.get(head.number);
    if (known?.hash === head.hash) {
      // The head went back to a block we know (e.g. anvil_rollback): what is above it left.
      return head.number < this.headRef.number ? { orphaned: this.above(head.number), branch: [], tooDeep: null } : null;
    }
    const branch = [head];
    let cur = head;
    for (;;) {
      const parentNumber = cur.number - 1n;
      const parent = this.blocks.get(parentNumber);
      if (parent?.hash === cur.parentHash) break;
      if (!parent && parentNumber <= this.headRef.number) {
        // Below the history and still no match.
        return { orphaned: this.above(-1n), branch, tooDeep: new ReorgTooDeepError(this.blocks.size) };
      }
      if (branch.length >= this.maxCatchUp) {
        return { orphaned: [], branch: [head], tooDeep: new ReorgTooDeepError(this.maxCatchUp) };
      }
      const next = await getBlock(transport, { blockHash: cur.parentHash });
      // The node forgot the parent: the chain moved under us; the next tick starts over.
      if (!next) throw new ReorgTooDeepError(branch.length);
      cur = next;
      branch.unshift(cur);
    }
    return { orphaned: this.above(cur.number - 1n), branch, tooDeep: null };
  }

  /** Forget blocks above `number` (they left the chain). */
  truncate(number: bigint): void {
    for (const ref of this.above(number)) this.blocks.delete(ref.number);
    this.headRef = this.blocks.get(number) ?? null;
  }

  reset(): void {
    this.blocks.clear();
    this.headRef = null;
  }

  /** Append a replayed block; the oldest ones beyond `depth` are forgotten. */
  commit(block: BlockRef): void {
    const ref = { number: block.number, hash: block.hash, parentHash: block.parentHash };
    this.blocks.set(ref.number, ref);
    this.headRef = ref;
    for (let n = ref.number - BigInt(this.depth); this.blocks.has(n); n--) this.blocks.delete(n);
  }

  private above(number: bigint): BlockRef[] {
    const refs = [...this.blocks.values()].filter((ref) => ref.number > number);
    return refs.sort((a, b) => (a.number > b.number ? -1 : 1));
  }
}
