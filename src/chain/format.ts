import { InvalidRpcResponseError } from './errors.js';

/** A block as the watcher keeps it. Numbers are bigint; hashes and addresses lower-case hex. */
export interface ChainBlock {
  number: bigint;
  hash: string;
  parentHash: string;
  /** Hashes of its transactions, or the full transactions when asked for. */
  transactionHashes: string[];
  transactions: ChainTransaction[] | undefined;
  /** EIP-1559 base fee in wei; null before London (or on a chain without one). */
  baseFeePerGas: bigint | null;
}

export interface ChainTransaction {
  hash: string;
  from: string;
  nonce: bigint;
  /** null for a contract creation. */
  to: string | null;
  value: bigint;
  input: string;
  /** The most it pays per gas in wei: `maxFeePerGas` (EIP-1559), else `gasPrice`; null when the node gives neither. */
  maxFeePerGas: bigint | null;
  blockHash: string | null;
  blockNumber: bigint | null;
}

export interface ChainReceipt {
  transactionHash: string;
  from: string;
  blockHash: string;
  blockNumber: bigint;
  status: 'success' | 'reverted';
}

const HASH = /^0x[0-9a-f]{64}$/;
const ADDRESS = /^0x[0-9a-f]{40}$/;
const HEX = /^0x[0-9a-f]*$/;

type Json = Record<string, unknown>;

function object(value: unknown, what: string): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidRpcResponseError(`${what}: expected an object`);
  }
  return value as Json;
}

function hash(value: unknown, what: string): string {
  const text = typeof value === 'string' ? value.toLowerCase() : '';
  if (!HASH.test(text)) throw new InvalidRpcResponseError(`${what}: expected a 32-byte hash`);
  return text;
}

function address(value: unknown, what: string): string {
  const text = typeof value === 'string' ? value.toLowerCase() : '';
  if (!ADDRESS.test(text)) throw new InvalidRpcResponseError(`${what}: expected an address`);
  return text;
}

/** A hex quantity as bigint. */
export function quantity(value: unknown, what: string): bigint {
  const text = typeof value === 'string' ? value.toLowerCase() : '';
  if (!HEX.test(text) || text.length < 3) throw new InvalidRpcResponseError(`${what}: expected a hex quantity`);
  return BigInt(text);
}

function optionalQuantity(value: unknown, what: string): bigint | null {
  return value === null || value === undefined ? null : quantity(value, what);
}

export function toQuantity(value: bigint | number): string {
  return `0x${value.toString(16)}`;
}

/**
 * A block number as the tracker machine takes it (a JS number). Block numbers stay far below
 * 2^53 on every chain, so this edge conversion is exact.
 */
export function toBlockNumber(value: bigint): number {
  return Number(value);
}

export function parseBlock(value: unknown, what = 'block'): ChainBlock {
  const block = object(value, what);
  const list = block.transactions;
  if (!Array.isArray(list)) throw new InvalidRpcResponseError(`${what}: transactions missing`);
  const full = list.length > 0 && typeof list[0] === 'object';
  const transactions = full ? list.map((tx, i) => parseTransaction(tx, `${what}.transactions[${i}]`)) : undefined;
  return {
    number: quantity(block.number, `${what}.number`),
    hash: hash(block.hash, `${what}.hash`),
    parentHash: hash(block.parentHash, `${what}.parentHash`),
    transactionHashes: transactions
      ? transactions.map((tx) => tx.hash)
      : list.map((h, i) => hash(h, `${what}.transactions[${i}]`)),
    transactions: transactions ?? (list.length === 0 ? [] : undefined),
    baseFeePerGas:
      block.baseFeePerGas === null || block.baseFeePerGas === undefined
        ? null
        : quantity(block.baseFeePerGas, `${what}.baseFeePerGas`),
  };
}

export function parseTransaction(value: unknown, what = 'transaction'): ChainTransaction {
  const tx = object(value, what);
  const input = typeof tx.input === 'string' ? tx.input.toLowerCase() : typeof tx.data === 'string' ? tx.data : '';
  if (!HEX.test(input)) throw new InvalidRpcResponseError(`${what}.input: expected hex`);
  return {
    hash: hash(tx.hash, `${what}.hash`),
    from: address(tx.from, `${what}.from`),
    nonce: quantity(tx.nonce, `${what}.nonce`),
    to: tx.to === null || tx.to === undefined ? null : address(tx.to, `${what}.to`),
    value: quantity(tx.value, `${what}.value`),
    input,
    maxFeePerGas: optionalQuantity(tx.maxFeePerGas ?? tx.gasPrice, `${what}.maxFeePerGas`),
    blockHash: tx.blockHash === null || tx.blockHash === undefined ? null : hash(tx.blockHash, `${what}.blockHash`),
    blockNumber:
      tx.blockNumber === null || tx.blockNumber === undefined ? null : quantity(tx.blockNumber, `${what}.blockNumber`),
  };
}

export function parseReceipt(value: unknown, what = 'receipt'): ChainReceipt {
  const receipt = object(value, what);
  const status = quantity(receipt.status, `${what}.status`);
  return {
    transactionHash: hash(receipt.transactionHash, `${what}.transactionHash`),
    from: address(receipt.from, `${what}.from`),
    blockHash: hash(receipt.blockHash, `${what}.blockHash`),
    blockNumber: quantity(receipt.blockNumber, `${what}.blockNumber`),
    status: status === 1n ? 'success' : 'reverted',
  };
}

export function parseNullable<T>(value: unknown, parse: (value: unknown, what: string) => T, what: string): T | null {
  return value === null || value === undefined ? null : parse(value, what);
}
