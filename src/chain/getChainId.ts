import type { BaseError } from './errors.js';
import { quantity } from './format.js';
import type { Transport } from './transport.js';

export type GetChainIdReturnType = number;
export type GetChainIdErrorType = BaseError;

/**
 * The node's EIP-155 chain id (`eth_chainId`).
 *
 * @example
 * const chainId = await getChainId(transport); // 8453
 */
export async function getChainId(transport: Transport): Promise<GetChainIdReturnType> {
  return Number(quantity(await transport.request({ method: 'eth_chainId', params: [] }), 'chainId'));
}
