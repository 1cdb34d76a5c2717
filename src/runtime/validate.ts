import {
  FINALITY_TAGS,
  type Finality,
  MAX_CONFIRMATIONS,
  MIN_CONFIRMATIONS,
  TRACKER_ID_PATTERN,
  TX_HASH_PATTERN,
} from '../../machines/tracker.machine.js';
import { InvalidInputError } from '../errors.js';

/** A tx hash in canonical form (lower-case), or an `invalid_tx_hash` error. */
export function normalizeTxHash(txHash: unknown): string {
  if (typeof txHash !== 'string' || !TX_HASH_PATTERN.test(txHash)) {
    throw new InvalidInputError('invalid_tx_hash', 'txHash must be 0x followed by 64 hex digits');
  }
  return txHash.toLowerCase();
}

/** The default id of a tracker on a chain other than the default one: `<chainId>:<txHash>`. */
const CHAIN_HASH_ID = /^\d+:0x[0-9a-fA-F]{64}$/;

/**
 * Ids that look like a hash (or a chain id and a hash, the default id on another chain than the
 * default one) are matched lower-cased, so `0xABC…` and `0xabc…` are one tracker.
 */
export function normalizeId(id: unknown): string {
  if (typeof id !== 'string' || !TRACKER_ID_PATTERN.test(id)) {
    throw new InvalidInputError('invalid_id', `id must match ${TRACKER_ID_PATTERN.source}`);
  }
  return TX_HASH_PATTERN.test(id) || CHAIN_HASH_ID.test(id) ? id.toLowerCase() : id;
}

/**
 * What a tracker waits for, from `confirmations` as a caller gives it: a count (1–1000), or
 * `safe` / `finalized` (the chain's block of that tag reaches the tracker's block).
 *
 * @example
 * parseConfirmations('finalized'); // { requiredConfirmations: 0, finality: 'finalized' }
 */
export function parseConfirmations(value: unknown): { requiredConfirmations: number; finality: Finality | null } {
  if ((FINALITY_TAGS as readonly unknown[]).includes(value))
    return { requiredConfirmations: 0, finality: value as Finality };
  if (
    typeof value === 'number' &&
    Number.isInteger(value) &&
    value >= MIN_CONFIRMATIONS &&
    value <= MAX_CONFIRMATIONS
  ) {
    return { requiredConfirmations: value, finality: null };
  }
  throw new InvalidInputError(
    'invalid_confirmations',
    `confirmations must be an integer from ${MIN_CONFIRMATIONS} to ${MAX_CONFIRMATIONS}, "safe" or "finalized"`,
  );
}

export function validateConfirmations(value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < MIN_CONFIRMATIONS || value > MAX_CONFIRMATIONS) {
    throw new InvalidInputError(
      'invalid_confirmations',
      `confirmations must be an integer from ${MIN_CONFIRMATIONS} to ${MAX_CONFIRMATIONS}`,
    );
  }
  return value;
}
