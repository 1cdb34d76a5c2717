import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TransactionRequest, Wallet, keccak256 } from 'ethers';
import { parseConfig } from '../../src/config.js';
import type { Logger } from '../../src/runtime/logger.js';
import type { Tracker } from '../../src/runtime/tracker-view.js';
import { type Service, startService } from '../../src/service.js';
import { httpCaller } from '../helpers/api.js';
import { DEV_KEYS } from './chain.js';
import { waitUntil } from './wait.js';

/** Keeps every log line, so that a test can look for one. */
export function recordingLogger(): Logger & {
  lines: Array<{ level: string; obj: Record<string, unknown>; msg: string | undefined }>;
} {
  const lines: Array<{ level: string; obj: Record<string, unknown>; msg: string | undefined }> = [];
  const at = (level: string) => (obj: object, msg?: string) =>
    void lines.push({ level, obj: obj as Record<string, unknown>, msg });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

export interface ServiceUnderTest {
  service: Service;
  url: string;
  logger: ReturnType<typeof recordingLogger>;
  call(
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<{ status: number; json: unknown; text: string }>;
  tracker(id: string): Promise<Tracker>;
  /** Wait until the tracker (over HTTP) satisfies `check`. */
  waitForTracker(id: string, what: string, check: (tracker: Tracker) => boolean, timeoutMs?: number): Promise<Tracker>;
  stop(): Promise<void>;
}

/**
 * The whole service (`startService`, as `npm start` runs it) on a temp SQLite file and a free port,
 * configured by `env` as the environment would (e.g. `CHAIN_<NAME>_RPC_URL`).
 */
export async function startServiceUnderTest(env: Record<string, string>, dir?: string): Promise<ServiceUnderTest> {
  const ownDir = dir ?? mkdtempSync(join(tmpdir(), 'tx-tracker-chains-'));
  const config = parseConfig({ PORT: '0', DATABASE_URL: `sqlite:${join(ownDir, 'trackers.db')}`, ...env });
  const logger = recordingLogger();
  const service = await startService(config, logger).catch((error: unknown) => {
    if (!dir) rmSync(ownDir, { recursive: true, force: true });
    throw error;
  });
  const url = service.server.url;
  const call = httpCaller(url);
  const tracker = async (id: string) => (await call('GET', `/trackers/${id}`)).json as Tracker;
  return {
    service,
    url,
    logger,
    call,
    tracker,
    waitForTracker: (id, what, check, timeoutMs = 20_000) =>
      waitUntil(
        async () => {
          const t = await tracker(id);
          return t && 'state' in t && check(t) ? t : undefined;
        },
        `${id} ${what}`,
        timeoutMs,
      ),
    async stop() {
      await service.stop();
      if (!dir) rmSync(ownDir, { recursive: true, force: true });
    },
  };
}

/** A signed transfer from dev account `from` on `chainId` (EIP-1559), not sent: its hash is known first. */
export async function signTransfer(
  chainId: number,
  from: number,
  tx: Partial<TransactionRequest> & { nonce: number },
): Promise<{ raw: string; hash: string }> {
  const wallet = new Wallet(DEV_KEYS[from]!);
  const raw = await wallet.signTransaction({
    chainId: BigInt(chainId),
    type: 2,
    to: new Wallet(DEV_KEYS[(from + 1) % DEV_KEYS.length]!).address,
    gasLimit: 21_000n,
    maxFeePerGas: 10_000_000_000n,
    maxPriorityFeePerGas: 1_000_000_000n,
    value: 1n,
    ...tx,
  });
  return { raw, hash: keccak256(raw) };
}

/** A legacy transfer signed without a chain id (pre-EIP-155): the same raw tx, and hash, on every chain. */
export async function signUnprotectedTransfer(from: number, nonce: number): Promise<{ raw: string; hash: string }> {
  const wallet = new Wallet(DEV_KEYS[from]!);
  const raw = await wallet.signTransaction({
    type: 0,
    chainId: 0n,
    to: new Wallet(DEV_KEYS[(from + 1) % DEV_KEYS.length]!).address,
    gasLimit: 21_000n,
    gasPrice: 10_000_000_000n,
    value: 1n,
    nonce,
  });
  return { raw, hash: keccak256(raw) };
}
