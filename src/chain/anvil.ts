import { type ChildProcess, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
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
  /** Anvil's own pid (it runs under a watchdog process, see `startAnvil`). */
  pid: number | undefined;
  /** Stop anvil and wait for it and its watchdog to exit. */
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
  if (!pkg)
    throw new AnvilError('anvil has no build for this platform', { details: `${process.platform}-${process.arch}` });
  const require = createRequire(import.meta.url);
  try {
    const dir = dirname(require.resolve(`${pkg}/package.json`));
    return join(dir, 'bin', process.platform === 'win32' ? 'anvil.exe' : 'anvil');
  } catch (error) {
    throw new AnvilError(`${pkg} is not installed`, { details: 'run npm install', cause: error });
  }
}

/**
 * Runs anvil (`argv`: binary, then its flags) and stops it when its stdin ends: the parent closed it
 * (`stop()`) or exited, however it died (a pipe's end closes with its process, even on SIGKILL).
 * It reports anvil's pid on fd 3 and exits when anvil does. Plain CommonJS source for `node -e`, so
 * it runs the same under tsx, vitest and a build.
 */
const WATCHDOG = `
process.title = 'anvil-watchdog';
const { spawn } = require('node:child_process');
const { writeSync } = require('node:fs');
const [binary, ...args] = process.argv.slice(1);
const anvil = spawn(binary, args, { stdio: ['ignore', 'inherit', 'inherit'] });
let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  anvil.kill('SIGTERM');
  setTimeout(() => anvil.kill('SIGKILL'), 5000).unref();
};
if (anvil.pid !== undefined) writeSync(3, anvil.pid + '\\n');
anvil.once('error', (error) => {
  process.stderr.write('anvil could not be started: ' + error.message + '\\n');
  process.exit(1);
});
anvil.once('exit', (code, signal) => process.exit(code ?? (signal === 'SIGTERM' ? 0 : 1)));
process.stdin.once('end', stop).once('error', stop).resume();
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(signal, stop);
`;

/**
 * Start a local anvil on 127.0.0.1 (a free port unless told), resolved once it answers JSON-RPC.
 * Anvil runs under a small watchdog process that stops it when this process exits, so it is never
 * left behind, also when this process is killed with SIGKILL.
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
  // Its own process group (POSIX): a Ctrl-C in the terminal reaches the service, which stops anvil
  // last, after the watcher; on Windows `detached` would open a console window instead.
  const child = spawn(process.execPath, ['-e', WATCHDOG, '--', anvilBinary(), ...args], {
    stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
    detached: process.platform !== 'win32',
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // Its stdin is only ever closed, and a watchdog already gone makes that an EPIPE: nothing to do.
  child.stdin?.on('error', () => {});
  let anvilPid: number | undefined;
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.stdin?.end();
    // A watchdog that does not stop anvil in time (it waits 5 s for a SIGTERM): both are killed.
    const timer = setTimeout(() => {
      if (anvilPid !== undefined) killQuietly(anvilPid);
      child.kill('SIGKILL');
    }, 7000);
    await exited;
    clearTimeout(timer);
  };
  let port: number;
  try {
    [anvilPid, port] = await Promise.all([reportedPid(child), listeningPort(child, options.timeoutMs ?? 30_000)]);
  } catch (error) {
    await stop();
    throw error;
  }
  // Keep draining output so a chatty anvil never blocks on a full pipe.
  child.stdout?.resume();
  child.stderr?.resume();
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitUntilAnswering(url, options.timeoutMs ?? 30_000);
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    url,
    wsUrl: `ws://127.0.0.1:${port}`,
    port,
    pid: anvilPid,
    stop,
  };
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/**
 * The pid of anvil itself, which the watchdog writes on fd 3 once it has started it; undefined if it
 * exits first (the wait for anvil's port then fails with anvil's own output).
 */
function reportedPid(child: ChildProcess): Promise<number | undefined> {
  return new Promise((resolve) => {
    const report = child.stdio[3] as Readable | null | undefined;
    let text = '';
    report?.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
      const match = /^(\d+)\n/.exec(text);
      if (match) resolve(Number(match[1]));
    });
    report?.once('close', () => resolve(undefined));
  });
}

function listeningPort(child: ChildProcess, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(
      () => fail(new AnvilError('anvil did not start', { details: `no port within ${timeoutMs} ms` })),
      timeoutMs,
    );
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
