import type { ReplacementReason } from '../../machines/tracker.machine.js';

/** The fields that tell a replacement's intent. */
export interface TransactionIntent {
  from: string;
  to: string | null;
  value: bigint;
  input: string;
}

/**
 * Why a mined tx with the tracked tx's sender and nonce took its place, as ethers v6 classifies it:
 * `repriced` when to, value and data are equal (the same call at another fee), `cancelled` for a
 * 0-value transfer to oneself with empty data, `replaced` for anything else.
 *
 * @example
 * classifyReplacement(tracked, { from: a, to: a, value: 0n, input: '0x' }); // 'cancelled'
 */
export function classifyReplacement(tracked: TransactionIntent, replacement: TransactionIntent): ReplacementReason {
  const input = (s: string): string => (s === '' ? '0x' : s.toLowerCase());
  if (
    replacement.to === tracked.to &&
    replacement.value === tracked.value &&
    input(replacement.input) === input(tracked.input)
  ) {
    return 'repriced';
  }
  if (replacement.to === replacement.from && replacement.value === 0n && input(replacement.input) === '0x') {
    return 'cancelled';
  }
  return 'replaced';
}
