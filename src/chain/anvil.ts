import { type ChildProcess, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { BaseError } from './errors.js';

export interface StartAnvilOptions {
  /** Seconds between blocks; omitted: a block per transaction (automine). */
  blockTime?: number;
  /** Port on 127.0.0.1 (default 0: a free one). */
  port?: number;
  /** More anvil flags. */
  args?: readonly string[];
  /** Give up waiting for anvil to answer after this long (default 30,000 ms). */
  timeoutMs?: number;
}

export interface Anvil {
  url: string;
  wsUrl: string;
  port: number;
  pid: number | undefined;
  /** Stop anvil and wait for it to exit. */
  stop(): Promise<void>;
}

export class AnvilError extends BaseError {
  override name = 'AnvilError';
}

const PLATFORM_PACKAGES: Record<string, string> = {
  'linux-x64': '@foundry-rs/anvil-linux-amd64',
  'linux-arm64': '@foundry-rs/anvil-linux-arm64',
  'darwin-x64': '@foundry-rs/anvil-darwin-amd64',
  'darwin-arm64': '@foundry-rs/anvil-darwin-arm64',
  'win32-x64': '@foundry-rs/anvil-win32-amd64',
};

/**
 * The anvil binary that npm installed with `@foundry-rs/anvil` (its platform package, an optional
 * dependency: no install script or download needed).
 *
 * @example
 * anvilBinary(); // '/…/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil'
 */
export function anvilBinary(): string {
  const pkg = PLATFORM_PACKAGES[`${process.platform}-${process.arch}`];
  if (!pkg) throw new AnvilError('anvil has no build for this platform', { details: `${process.platform}-${process.arch}` });
  const require = createRequire(import.meta.url);
  try {
    const dir = dirname(require.resolve(`${pkg}/package.json`));
    return join(dir, 'bin', process.platform === 'win32' ? 'anvil.exe' : 'anvil');
  } catch (error) {
    throw new AnvilError(`${pkg} is not installed`, { details: 'run npm install', cause: error });
  }
}

/**
 * Start a local anvil on 127.0.0.1 (a free port unless told), resolved once it answers JSON-RPC.
 *
 * @example
 * const anvil = await startAnvil({ blockTime: 2 });
 * console.log(anvil.url); // http://127.0.0.1:41873
 * await anvil.stop();
 */
export async function startAnvil(options: StartAnvilOptions = {}): Promise<Anvil> {
  const args = ['--host', '127.0.0.1', '--port', String(options.port ?? 0)];
  if (options.blockTime !== undefined) args.push('--block-time', String(options.blockTime));
  args.push(...(options.args ?? []));
  const child = spawn(anvilBinary(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let port: number;
  try {
    port = await listeningPort(child, options.timeoutMs ?? 30_000);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  // Keep draining output so a chatty anvil never blocks on a full pipe.
  child.stdout?.resume();
  child.stderr?.resume();
  const url = `http://127.0.0.1:${port}`;
  await waitUntilAnswering(url, options.timeoutMs ?? 30_000);
  return {
    url,
    wsUrl: `ws://127.0.0.1:${port}`,
    port,
    pid: child.pid,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
}

function listeningPort(child: ChildProcess, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => fail(new AnvilError('anvil did not start', { details: `no port within ${timeoutMs} ms` })), timeoutMs);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString('utf8');
      const match = /Listening on [^\s:]+:(\d+)/.exec(output);
      if (match) {
        cleanup();
        resolve(Number(match[1]));
      }
    };
    const onExit = (code: number | null): void =>
      fail(new AnvilError('anvil exited during start', { details: `code ${code}: ${output.slice(-500)}` }));
    const cleanup = (): void => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.off('exit', onExit);
      child.off('error', fail);
    };
    function fail(error: Error): void {
      cleanup();
      reject(error instanceof AnvilError ? error : new AnvilError('anvil could not be started', { cause: error }));
    }
    child.stdout?.on('data', onData);
    child.once('exit', onExit);
    child.once('error', fail);
  });
}

async function waitUntilAnswering(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
        signal: AbortSignal.timeout(2000),
      });
      if (response.ok) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new AnvilError('anvil did not answer', { details: url });
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
