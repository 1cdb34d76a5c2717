import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type RunningServer, type ServerOptions, startServer } from '../../src/api/server.js';
import { type TrackerSystem, type TrackerSystemOptions, createTrackerSystem } from '../../src/runtime/system.js';
import { createStoreFromConfig } from '../../src/service.js';
import type { SnapshotStore } from '../../src/store/types.js';
import { waitUntil } from '../support/wait.js';

export interface TestApi {
  url: string;
  system: TrackerSystem;
  /** The store as the service made it (`createStoreFromConfig`), the one the system runs on. */
  store: SnapshotStore;
  server: RunningServer;
  call(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<ApiResponse>;
  stop(): Promise<void>;
}

export interface ApiResponse {
  status: number;
  headers: Headers;
  text: string;
  json: unknown;
}

/**
 * A request to `baseUrl` as the tests make it: a body that is not a string is sent as JSON; the
 * answer's text is parsed as JSON when it is JSON.
 */
export function httpCaller(baseUrl: string) {
  return async (
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<ApiResponse> => {
    const init: RequestInit = { method, headers: { ...headers } };
    if (body !== undefined) {
      init.body = typeof body === 'string' ? body : JSON.stringify(body);
      (init.headers as Record<string, string>)['content-type'] ??= 'application/json';
    }
    const res = await fetch(`${baseUrl}${path}`, init);
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, headers: res.headers, text, json };
  };
}

/** `0x` + 64 hex digits made from `n`. */
export const hashOf = (n: number | bigint): string => `0x${n.toString(16).padStart(64, '0')}`;

export interface TestApiOptions {
  system?: Partial<TrackerSystemOptions>;
  server?: Partial<Omit<ServerOptions, 'system'>>;
  /** The folder of `trackers.db`, kept on stop (to start again on the same file); default: a temp one, removed. */
  dir?: string;
  /** Another DATABASE_URL than the temp SQLite file (e.g. `memory:`). */
  databaseUrl?: string;
  /** Called with the store before the system is made on it (e.g. to spy on its methods). */
  onStore?: (store: SnapshotStore) => void;
}

/**
 * The service's assembly — its store from `createStoreFromConfig` (SQLite on a temp file), the
 * tracker system on it, the HTTP server — on a free port, without a chain.
 */
export async function startTestApi(options: TestApiOptions = {}): Promise<TestApi> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'tx-tracker-api-'));
  const { store } = await createStoreFromConfig({
    DATABASE_URL: options.databaseUrl ?? `sqlite:${join(dir, 'trackers.db')}`,
  });
  options.onStore?.(store);
  const system = await createTrackerSystem({ store, ...options.system });
  const server = await startServer({ system, port: 0, ...options.server });
  const call = httpCaller(server.url);
  return {
    url: server.url,
    system,
    store,
    server,
    call,
    async stop() {
      await server.close();
      await system.shutdown();
      await store.close();
      if (options.dir === undefined) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Poll `check` until it returns a value that is not undefined, or fail after `timeoutMs`. */
export const waitFor = <T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 10_000,
): Promise<T> => waitUntil(check, what, timeoutMs);
