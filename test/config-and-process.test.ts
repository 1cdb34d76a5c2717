import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../src/config.js';
import { hashOf } from './helpers/api.js';

describe('parseConfig', () => {
  it('has a default for every variable', () => {
    expect(parseConfig({})).toMatchObject({
      PORT: 3000,
      HOST: '127.0.0.1',
      DATABASE_URL: 'sqlite:./data/trackers.db',
      REQUIRED_CONFIRMATIONS: 12,
      inspectFilter: undefined,
      INSPECT_PORT: 8080,
      FAULT_INJECTION: false,
      DROPPED_AFTER_MS: 600_000,
      POLL_INTERVAL_MS: 1000,
      MAX_RESTARTS: 5,
      RESTART_WINDOW_MS: 60_000,
      LOG_LEVEL: 'info',
      SSE_MAX_CLIENTS: 100,
      SSE_REPLAY_EVENTS: 10_000,
      SSE_REPLAY_BYTES: 8 * 1024 * 1024,
      SSE_STALL_TIMEOUT_MS: 30_000,
    });
    const config = parseConfig({});
    expect([config.ETH_RPC_URL, config.API_TOKEN, config.INSPECT]).toEqual([undefined, undefined, undefined]);
  });

  it('reads values and treats INSPECT=1 as every tracker, anything else as an id prefix', () => {
    const config = parseConfig({
      PORT: '0',
      FAULT_INJECTION: '1',
      INSPECT: '1',
      ETH_RPC_URL: 'http://127.0.0.1:8545',
      REQUIRED_CONFIRMATIONS: '3',
    });
    expect(config).toMatchObject({
      PORT: 0,
      FAULT_INJECTION: true,
      inspectFilter: '*',
      ETH_RPC_URL: 'http://127.0.0.1:8545',
      REQUIRED_CONFIRMATIONS: 3,
    });
    expect(parseConfig({ INSPECT: 'txn_01' }).inspectFilter).toBe('txn_01');
  });

  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['REQUIRED_CONFIRMATIONS', '0'],
    ['REQUIRED_CONFIRMATIONS', '1001'],
    ['ETH_RPC_URL', 'not a url'],
    ['DATABASE_URL', 'mysql://localhost/db'],
    ['FAULT_INJECTION', 'yes'],
    ['LOG_LEVEL', 'loud'],
    ['API_TOKEN', 'short'],
    ['POLL_INTERVAL_MS', '-5'],
    ['MAX_RESTARTS', '1.5'],
    ['SSE_MAX_CLIENTS', '0'],
    ['SSE_REPLAY_BYTES', '10'],
  ])('refuses %s=%s with one line naming the variable', (name, value) => {
    let error: unknown;
    try {
      parseConfig({ [name]: value });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).toMatch(new RegExp(`^invalid configuration: ${name} `));
    expect(message).not.toContain('\n');
    if (name === 'API_TOKEN') expect(message).not.toContain(value);
  });
});

function startMain(env: Record<string, string>): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

function collect(stream: NodeJS.ReadableStream | null): { text: string } {
  const out = { text: '' };
  stream?.on('data', (chunk: Buffer) => (out.text += chunk.toString()));
  return out;
}

describe('npm start (src/main.ts)', () => {
  it('fails the start on bad configuration with one line naming the variable, exit 1', async () => {
    const child = startMain({ PORT: 'abc' });
    const stderr = collect(child.stderr);
    const [code] = (await once(child, 'exit')) as [number];
    expect(code).toBe(1);
    expect(stderr.text.trim().split('\n')).toHaveLength(1);
    expect(stderr.text).toMatch(/^invalid configuration: PORT /);
  });

  it('logs where the API, chain and database are on one line, serves, and exits 0 on SIGTERM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tx-tracker-main-'));
    const child = startMain({ PORT: '0', DATABASE_URL: `sqlite:${join(dir, 'trackers.db')}` });
    const stdout = collect(child.stdout);
    const exited = once(child, 'exit');
    const deadline = Date.now() + 30_000;
    let started: { api: string; chain: string; database: string } | undefined;
    while (!started && Date.now() < deadline) {
      const line = stdout.text.split('\n').find((l) => l.includes('"api"'));
      if (line) started = JSON.parse(line) as { api: string; chain: string; database: string };
      else await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(started).toBeDefined();
    expect(started!.chain).toBeTruthy();
    expect(started!.database).toBeTruthy();
    const created = await fetch(`${started!.api}/trackers`, {
      method: 'POST',
      body: JSON.stringify({ txHash: hashOf(1) }),
    });
    expect(created.status).toBe(201);
    child.kill('SIGTERM');
    const [code] = (await exited) as [number];
    expect(code).toBe(0);
    expect(stdout.text).toContain('"msg":"stopped"');
    expect(started!.database).toContain(dir);
    rmSync(dir, { recursive: true, force: true });
  });
});
