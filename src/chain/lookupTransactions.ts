import type { BaseError } from './errors.js';
import { type ChainReceipt, type ChainTransaction, parseNullable, parseReceipt, parseTransaction } from './format.js';
import type { RpcCall, Transport } from './transport.js';

export interface LookupTransactionsParameters {
  hashes: readonly string[];
  /** Also fetch the raw signed form (`eth_getRawTransactionByHash`) of these hashes. */
  withRaw?: ReadonlySet<string>;
  /** Calls per JSON-RPC batch (default 300). */
  batchSize?: number;
}

export type TransactionLookup =
  | {
      hash: string;
      ok: true;
      transaction: ChainTransaction | null;
      receipt: ChainReceipt | null;
      raw: string | null;
    }
  /** This hash's own calls failed (or were malformed); the others are fine. */
  | { hash: string; ok: false; error: BaseError | Error };

export type LookupTransactionsReturnType = TransactionLookup[];
export type LookupTransactionsErrorType = BaseError;

/**
 * Transaction and receipt of many hashes in JSON-RPC batches: what a tracker needs to catch up
 * when it starts. Throws only when a whole batch fails.
 *
 * @example
 * const [lookup] = await lookupTransactions(transport, { hashes: [txHash] });
 * if (lookup.ok && lookup.receipt) console.log('mined in', lookup.receipt.blockNumber);
 */
export async function lookupTransactions(
  transport: Transport,
  { hashes, withRaw, batchSize = 300 }: LookupTransactionsParameters,
): Promise<LookupTransactionsReturnType> {
  const results: TransactionLookup[] = [];
  let calls: RpcCall[] = [];
  let owners: string[] = [];
  const flush = async (): Promise<void> => {
    if (calls.length === 0) return;
    const outcomes = await transport.batch(calls);
    let i = 0;
    for (const hash of owners) {
      const tx = outcomes[i++]!;
      const receipt = outcomes[i++]!;
      const raw = withRaw?.has(hash) ? outcomes[i++]! : { ok: true as const, result: null };
      try {
        if (!tx.ok) throw tx.error;
        if (!receipt.ok) throw receipt.error;
        results.push({
          hash,
          ok: true,
          transaction: parseNullable(tx.result, parseTransaction, `transaction ${hash}`),
          receipt: parseNullable(receipt.result, parseReceipt, `receipt ${hash}`),
          // Nodes without eth_getRawTransactionByHash still track fine; raw stays unknown.
          raw: raw.ok && typeof raw.result === 'string' ? raw.result : null,
        });
      } catch (error) {
        results.push({ hash, ok: false, error: error instanceof Error ? error : new Error(String(error)) });
      }
    }
    calls = [];
    owners = [];
  };
  for (const hash of hashes) {
    calls.push({ method: 'eth_getTransactionByHash', params: [hash] });
    calls.push({ method: 'eth_getTransactionReceipt', params: [hash] });
    if (withRaw?.has(hash)) calls.push({ method: 'eth_getRawTransactionByHash', params: [hash] });
    owners.push(hash);
    if (calls.length >= batchSize) await flush();
  }
  await flush();
  return results;
}
