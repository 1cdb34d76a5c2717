import type { BaseError } from './errors.js';
import type { ChainTransaction } from './format.js';
import { getBlock } from './getBlock.js';
import { getTransactionCount } from './getTransactionCount.js';
import type { Transport } from './transport.js';

export interface FindReplacementParameters {
  from: string;
  nonce: bigint;
  /** A block at which the nonce was surely unused (e.g. the oldest block the watcher remembers). */
  fromBlock: bigint;
  /** A block at which the nonce is used. */
  toBlock: bigint;
}
export type FindReplacementReturnType = ChainTransaction | null;
export type FindReplacementErrorType = BaseError;

/**
 * The mined tx that used `from`'s `nonce`, found by bisecting `eth_getTransactionCount` over the
 * block range and reading the one block where the count passed the nonce: O(log n) calls.
 *
 * @example
 * const tx = await findReplacement(transport, { from, nonce: 7n, fromBlock: 100n, toBlock: 140n });
 */
export async function findReplacement(
  transport: Transport,
  { from, nonce, fromBlock, toBlock }: FindReplacementParameters,
): Promise<FindReplacementReturnType> {
  let low = fromBlock; // count(low) <= nonce, assumed
  let high = toBlock; // count(high) > nonce
  if ((await getTransactionCount(transport, { address: from, blockTag: high })) <= nonce) return null;
  if (low < 0n) low = 0n;
  while (high - low > 1n) {
    const mid = (low + high) / 2n;
    const count = await getTransactionCount(transport, { address: from, blockTag: mid });
    if (count > nonce) high = mid;
    else low = mid;
  }
  const block = await getBlock(transport, { blockTag: high, includeTransactions: true });
  return block?.transactions?.find((tx) => tx.from === from && tx.nonce === nonce) ?? null;
}
