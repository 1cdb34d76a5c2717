import {
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

/** Ids that look like a hash are matched lower-cased, so `0xABC…` and `0xabc…` are one tracker. */
export function normalizeId(id: unknown): string {
  if (typeof id !== 'string' || !TRACKER_ID_PATTERN.test(id)) {
    throw new InvalidInputError('invalid_id', `id must match ${TRACKER_ID_PATTERN.source}`);
  }
  return TX_HASH_PATTERN.test(id) ? id.toLowerCase() : id;
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
