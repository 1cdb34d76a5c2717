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
  /** The branch stops short of the head: plan again after replaying it. */
  partial: boolean;
}

/**
 * The recent canonical chain as the watcher has replayed it: enough block hashes to find the fork
 * point of any reorg up to `depth` blocks.
 */
export class CanonicalChain {
  private readonly blocks = new Map<bigint, BlockRef>();
  private headRef: BlockRef | null = null;
  private readonly walked = new Map<string, ChainBlock>();

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

  /**
   * The next step towards `head`. Behind by more than one block: the next block by number, taken
   * only if its parent hash is our head (each step commits, so a flaky node still lets us
   * progress; `partial` says more steps follow). Otherwise walk back from `head` by parent hash
   * to a block we know: the fork point of a reorg.
   */
  async plan(transport: Transport, head: ChainBlock): Promise<SyncPlan | null> {
    const ours = this.headRef;
    if (!ours) return { orphaned: [], branch: [head], tooDeep: null, partial: false };
    const known = this.blocks.get(head.number);
    if (known?.hash === head.hash) {
      // The head went back to a block we know (e.g. anvil_rollback): what is above it left.
      return head.number < ours.number
        ? { orphaned: this.above(head.number), branch: [], tooDeep: null, partial: false }
        : null;
    }
    if (head.number - ours.number > BigInt(this.maxCatchUp)) {
      return { orphaned: [], branch: [head], tooDeep: new ReorgTooDeepError(this.maxCatchUp), partial: false };
    }
    if (head.number > ours.number + 1n) {
      const next = await getBlock(transport, { blockTag: ours.number + 1n });
      if (next && next.parentHash === ours.hash) return { orphaned: [], branch: [next], tooDeep: null, partial: true };
    }
    const branch = [head];
    let cur = head;
    for (;;) {
      const parentNumber = cur.number - 1n;
      const parent = this.blocks.get(parentNumber);
      if (parent?.hash === cur.parentHash) break;
      if (!parent && parentNumber <= ours.number) {
        // Below the history and still no match.
        this.walked.clear();
        return { orphaned: this.above(-1n), branch, tooDeep: new ReorgTooDeepError(this.blocks.size), partial: false };
      }
      // Blocks fetched by an earlier, failed walk are reused: a flaky node still lets it finish.
      const next = this.walked.get(cur.parentHash) ?? (await getBlock(transport, { blockHash: cur.parentHash }));
      // The node forgot the parent: the chain moved under us; the next tick starts over.
      if (!next) throw new ReorgTooDeepError(branch.length);
      this.walked.set(next.hash, next);
      cur = next;
      branch.unshift(cur);
    }
    this.walked.clear();
    return { orphaned: this.above(cur.number - 1n), branch, tooDeep: null, partial: false };
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
