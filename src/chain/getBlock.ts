import type { BaseError } from './errors.js';
import { type ChainBlock, parseBlock, parseNullable, toQuantity } from './format.js';
import type { Transport } from './transport.js';

export type GetBlockParameters =
  { blockHash: string; includeTransactions?: boolean } | { blockTag: 'latest' | bigint; includeTransactions?: boolean };
export type GetBlockReturnType = ChainBlock | null;
export type GetBlockErrorType = BaseError;

/**
 * One block by hash (`eth_getBlockByHash`) or by tag/number (`eth_getBlockByNumber`); null when the
 * node does not have it.
 *
 * @example
 * const head = await getBlock(transport, { blockTag: 'latest' });
 * const same = await getBlock(transport, { blockHash: head!.hash, includeTransactions: true });
 */
export async function getBlock(transport: Transport, parameters: GetBlockParameters): Promise<GetBlockReturnType> {
  const full = parameters.includeTransactions ?? false;
  const raw =
    'blockHash' in parameters
      ? await transport.request({ method: 'eth_getBlockByHash', params: [parameters.blockHash, full] })
      : await transport.request({
          method: 'eth_getBlockByNumber',
          params: [
            typeof parameters.blockTag === 'bigint' ? toQuantity(parameters.blockTag) : parameters.blockTag,
            full,
          ],
        });
  return parseNullable(raw, parseBlock, 'block');
}
