import type { BaseError } from './errors.js';
import { quantity, toQuantity } from './format.js';
import type { Transport } from './transport.js';

export interface GetTransactionCountParameters {
  address: string;
  blockTag: 'latest' | bigint;
}
/** The sender's next nonce as of that block: every nonce below it is used. */
export type GetTransactionCountReturnType = bigint;
export type GetTransactionCountErrorType = BaseError;

/**
 * `eth_getTransactionCount`: how many transactions `address` has mined as of `blockTag`.
 *
 * @example
 * const next = await getTransactionCount(transport, { address, blockTag: 'latest' });
 */
export async function getTransactionCount(
  transport: Transport,
  { address, blockTag }: GetTransactionCountParameters,
): Promise<GetTransactionCountReturnType> {
  const tag = typeof blockTag === 'bigint' ? toQuantity(blockTag) : blockTag;
  return quantity(await transport.request({ method: 'eth_getTransactionCount', params: [address, tag] }), 'nonce');
}
