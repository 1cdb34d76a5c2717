import { type BaseError, InvalidRpcResponseError, RpcRequestError } from './errors.js';
import { type ChainReceipt, parseNullable, parseReceipt } from './format.js';
import { getBlock } from './getBlock.js';
import { type Transport, unwrap } from './transport.js';

export interface GetBlockReceiptsParameters {
  blockHash: string;
  /**
   * Receipts wanted when the node lacks `eth_getBlockReceipts` (the fallback fetches only these,
   * batched, instead of every receipt of the block).
   */
  wanted: ReadonlySet<string>;
  /** Remembers across calls whether the node has `eth_getBlockReceipts`. */
  support: { blockReceipts: boolean };
}
/** null when the block is not (or no longer) known to the node. */
export type GetBlockReceiptsReturnType = ChainReceipt[] | null;
export type GetBlockReceiptsErrorType = BaseError;

/**
 * The receipts of one block, by its hash, in one call (`eth_getBlockReceipts`). Nodes without it
 * get `eth_getBlockByHash` plus one batch of `eth_getTransactionReceipt` for the wanted hashes.
 *
 * @example
 * const receipts = await getBlockReceipts(transport, { blockHash, wanted: new Set(), support: { blockReceipts: true } });
 */
export async function getBlockReceipts(
  transport: Transport,
  { blockHash, wanted, support }: GetBlockReceiptsParameters,
): Promise<GetBlockReceiptsReturnType> {
  if (support.blockReceipts) {
    try {
      const raw = await transport.request({ method: 'eth_getBlockReceipts', params: [blockHash] });
      if (raw === null) return null;
      if (!Array.isArray(raw)) throw new InvalidRpcResponseError('eth_getBlockReceipts: not an array');
      return raw.map((r, i) => parseReceipt(r, `receipts[${i}]`));
    } catch (error) {
      if (!isMethodMissing(error)) throw error;
      support.blockReceipts = false;
    }
  }
  const block = await getBlock(transport, { blockHash });
  if (!block) return null;
  const hashes = block.transactionHashes.filter((h) => wanted.has(h));
  const outcomes = await transport.batch(hashes.map((h) => ({ method: 'eth_getTransactionReceipt', params: [h] })));
  const receipts: ChainReceipt[] = [];
  outcomes.forEach((outcome, i) => {
    const receipt = parseNullable(unwrap(outcome), parseReceipt, `receipt ${hashes[i]}`);
    if (receipt && receipt.blockHash === blockHash) receipts.push(receipt);
  });
  return receipts;
}

/** "Method not found" and its cousins: the node does not offer the call at all. */
function isMethodMissing(error: unknown): boolean {
  if (!(error instanceof RpcRequestError)) return false;
  return error.code === -32601 || /not (found|supported|available)|does not exist/i.test(error.details ?? '');
}
