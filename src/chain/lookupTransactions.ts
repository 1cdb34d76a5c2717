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
 * when it starts. Two rounds: every hash's transaction (and raw form, when asked for) first, then
 * the receipts of the mined ones only. A hash the node does not know and a pending transaction
 * (most lookups: new trackers, the dropped check) need no receipt call; the raw form is asked for
 * with the transaction even when the node has no transaction for it, since a node may still hold
 * the signed form of one a reorg took out. Throws only when a whole batch fails.
 *
 * @example
 * const [lookup] = await lookupTransactions(transport, { hashes: [txHash] });
 * if (lookup.ok && lookup.receipt) console.log('mined in', lookup.receipt.blockNumber);
 */
export async function lookupTransactions(
  transport: Transport,
  { hashes, withRaw, batchSize = 300 }: LookupTransactionsParameters,
): Promise<LookupTransactionsReturnType> {
  const first: RpcCall[] = [];
  for (const hash of hashes) {
    first.push({ method: 'eth_getTransactionByHash', params: [hash] });
    if (withRaw?.has(hash)) first.push({ method: 'eth_getRawTransactionByHash', params: [hash] });
  }
  const outcomes = await batched(transport, first, batchSize);
  const results: TransactionLookup[] = [];
  /** Mined transactions, whose receipts the second round asks for. */
  const mined: Array<{ index: number; transaction: ChainTransaction; raw: string | null }> = [];
  let at = 0;
  hashes.forEach((hash, index) => {
    const tx = outcomes[at++]!;
    const raw = withRaw?.has(hash) ? outcomes[at++]! : { ok: true as const, result: null };
    try {
      if (!tx.ok) throw tx.error;
      const transaction = parseNullable(tx.result, parseTransaction, `transaction ${hash}`);
      // Nodes without eth_getRawTransactionByHash still track fine; raw stays unknown.
      const signed = raw.ok && typeof raw.result === 'string' ? raw.result : null;
      results.push({ hash, ok: true, transaction, receipt: null, raw: signed });
      if (transaction?.blockNumber != null) mined.push({ index, transaction, raw: signed });
    } catch (error) {
      results.push({ hash, ok: false, error: error instanceof Error ? error : new Error(String(error)) });
    }
  });
  const receipts = await batched(
    transport,
    mined.map(({ index }) => ({ method: 'eth_getTransactionReceipt', params: [hashes[index]!] })),
    batchSize,
  );
  mined.forEach(({ index, transaction, raw }, i) => {
    const hash = hashes[index]!;
    const receipt = receipts[i]!;
    try {
      if (!receipt.ok) throw receipt.error;
      const parsed = parseNullable(receipt.result, parseReceipt, `receipt ${hash}`);
      results[index] = { hash, ok: true, transaction, receipt: parsed, raw };
    } catch (error) {
      results[index] = { hash, ok: false, error: error instanceof Error ? error : new Error(String(error)) };
    }
  });
  return results;
}

/** These calls in batches of at most `batchSize`, one after the other; their outcomes in order. */
async function batched(transport: Transport, calls: readonly RpcCall[], batchSize: number): Promise<RpcOutcome[]> {
  const outcomes: RpcOutcome[] = [];
  for (let i = 0; i < calls.length; i += batchSize)
    outcomes.push(...(await transport.batch(calls.slice(i, i + batchSize))));
  return outcomes;
}
