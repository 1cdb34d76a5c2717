import type { BaseError } from './errors.js';
import { type ChainReceipt, type ChainTransaction, parseNullable, parseReceipt, parseTransaction } from './format.js';
import type { RpcCall, RpcOutcome, Transport } from './transport.js';

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
 * when it starts. Two rounds: every hash's transaction first, then only what the found ones need,
 * the receipt of a mined one and the raw form when asked for. A hash the node does not know
 * (most lookups of new or dropped transactions) costs one call instead of three; a node with no
 * transaction for a hash has no receipt for it either. Throws only when a whole batch fails.
 *
 * @example
 * const [lookup] = await lookupTransactions(transport, { hashes: [txHash] });
 * if (lookup.ok && lookup.receipt) console.log('mined in', lookup.receipt.blockNumber);
 */
export async function lookupTransactions(
  transport: Transport,
  { hashes, withRaw, batchSize = 300 }: LookupTransactionsParameters,
): Promise<LookupTransactionsReturnType> {
  const transactions = await batched(
    transport,
    hashes.map((hash) => ({ method: 'eth_getTransactionByHash', params: [hash] })),
    batchSize,
  );
  const results: TransactionLookup[] = [];
  /** Found transactions and the calls still to make for each. */
  const found: Array<{ index: number; transaction: ChainTransaction; receipt: boolean; raw: boolean }> = [];
  hashes.forEach((hash, i) => {
    try {
      const outcome = transactions[i]!;
      if (!outcome.ok) throw outcome.error;
      const transaction = parseNullable(outcome.result, parseTransaction, `transaction ${hash}`);
      results.push({ hash, ok: true, transaction, receipt: null, raw: null });
      if (!transaction) return;
      const receipt = transaction.blockNumber !== null;
      const raw = withRaw?.has(hash) ?? false;
      if (receipt || raw) found.push({ index: i, transaction, receipt, raw });
    } catch (error) {
      results.push({ hash, ok: false, error: error instanceof Error ? error : new Error(String(error)) });
    }
  });
  const calls: RpcCall[] = [];
  for (const { index, receipt, raw } of found) {
    if (receipt) calls.push({ method: 'eth_getTransactionReceipt', params: [hashes[index]!] });
    if (raw) calls.push({ method: 'eth_getRawTransactionByHash', params: [hashes[index]!] });
  }
  const outcomes = await batched(transport, calls, batchSize);
  let at = 0;
  for (const { index, transaction, receipt: wantsReceipt, raw: wantsRaw } of found) {
    const hash = hashes[index]!;
    const receipt = wantsReceipt ? outcomes[at++]! : { ok: true as const, result: null };
    const raw = wantsRaw ? outcomes[at++]! : { ok: true as const, result: null };
    try {
      if (!receipt.ok) throw receipt.error;
      results[index] = {
        hash,
        ok: true,
        transaction,
        receipt: parseNullable(receipt.result, parseReceipt, `receipt ${hash}`),
        // Nodes without eth_getRawTransactionByHash still track fine; raw stays unknown.
        raw: raw.ok && typeof raw.result === 'string' ? raw.result : null,
      };
    } catch (error) {
      results[index] = { hash, ok: false, error: error instanceof Error ? error : new Error(String(error)) };
    }
  }
  return results;
}

/** These calls in batches of at most `batchSize`, one after the other; their outcomes in order. */
async function batched(transport: Transport, calls: readonly RpcCall[], batchSize: number): Promise<RpcOutcome[]> {
  const outcomes: RpcOutcome[] = [];
  for (let i = 0; i < calls.length; i += batchSize)
    outcomes.push(...(await transport.batch(calls.slice(i, i + batchSize))));
  return outcomes;
}
