import { execFile, execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { describe } from 'vitest';

const run = promisify(execFile);

/** A throwaway PostgreSQL server for one test file: its own temp dir and port, trust auth. */
export interface PostgresServer {
  /** `postgres://postgres@127.0.0.1:<port>/postgres` */
  url: string;
  port: number;
  /** Create a fresh empty database on this server (a fresh name each call); its URL. */
  createDatabase(): Promise<string>;
  /** Stop the server (fast shutdown), keeping its data: `start()` brings it back on the same port. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** `stop()` then `start()`. */
  restart(): Promise<void>;
  /** SIGKILL the postmaster, as a crash would; `start()` recovers it. */
  kill(): Promise<void>;
  /** Whether the postmaster is up. */
  running(): boolean;
  /** Stop the server and remove its directory. */
  close(): Promise<void>;
}

interface Found {
  bindir: string;
  /** Run the server's programs as this user (root may not run PostgreSQL). */
  asUser?: { name: string; uid: number; gid: number };
}

function findPostgres(): Found | string {
  let bindir: string;
  try {
    bindir = execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();
  } catch {
    return 'pg_config is not on PATH (install the postgresql package)';
  }
  for (const program of ['initdb', 'pg_ctl', 'postgres']) {
    if (!existsSync(join(bindir, program))) return `${program} is missing from ${bindir}`;
  }
  if (process.getuid?.() !== 0) return { bindir };
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    return { bindir, asUser: { name: 'postgres', uid, gid } };
  } catch {
    return 'running as root and there is no postgres user to run PostgreSQL as';
  }
}

const found = findPostgres();

/** Why PostgreSQL tests cannot run here, or undefined when they can. */
export const postgresUnavailable: string | undefined = typeof found === 'string' ? found : undefined;

/**
 * `describe` for tests that need a real PostgreSQL: skipped, loudly, on a machine without one; in CI
 * (`CI` set) a missing PostgreSQL fails the file instead, since CI must never skip them.
 *
 * @example
 * describeWithPostgres('the store on PostgreSQL', () => { ... });
 */
export function describeWithPostgres(name: string, body: () => void): void {
  if (postgresUnavailable !== undefined) {
    if (process.env.CI) throw new Error(`PostgreSQL tests cannot run in CI: ${postgresUnavailable}`);
    console.warn(`SKIPPED "${name}": no PostgreSQL here: ${postgresUnavailable}`);
  }
  describe.skipIf(postgresUnavailable !== undefined)(name, body);
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/**
 * Start a fresh PostgreSQL in a temp dir on a free 127.0.0.1 port (unix socket in the same dir).
 *
 * @example
 * const pg = await startPostgres();
 * const store = await PostgresStore.open({ url: pg.url });
 * // ...
 * await pg.close();
 */
export async function startPostgres(): Promise<PostgresServer> {
  if (typeof found === 'string') throw new Error(`no PostgreSQL: ${found}`);
  const { bindir, asUser } = found;
  const dir = mkdtempSync(join(tmpdir(), 'tx-tracker-pg-'));
  const data = join(dir, 'data');
  const socketDir = join(dir, 'sock');
  mkdirSync(socketDir);
  if (asUser) {
    chownSync(dir, asUser.uid, asUser.gid);
    chownSync(socketDir, asUser.uid, asUser.gid);
  }
  const exec = (program: string, args: string[]) =>
    asUser
      ? run('runuser', ['-u', asUser.name, '--', join(bindir, program), ...args])
      : run(join(bindir, program), args);

  await exec('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-sync', '--no-instructions']);

  let port = 0;
  let up = false;
  const launch = () =>
    exec('pg_ctl', [
      'start',
      '-D',
      data,
      '-w',
      '-t',
      '60',
      '-l',
      join(dir, 'server.log'),
      '-o',
      // fsync off: a crash of the test box is not a case these servers need to survive.
      `-p ${port} -k ${socketDir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`,
    ]);
  /** Start on `port`, or on a fresh free port each attempt when `newPort` (another process may take a probed port). */
  const start = async (newPort: boolean): Promise<void> => {
    let lastError: unknown;
    for (let attempt = 0; attempt < 10; attempt++) {
      if (newPort) port = await freePort();
      try {
        await launch();
        up = true;
        return;
      } catch (error) {
        // After a kill, the old server's children may still hold its shared memory for a moment.
        lastError = error;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
    throw new Error(`PostgreSQL did not start: ${String(lastError)}\n${readLog()}`);
  };
  const readLog = (): string => {
    try {
      return readFileSync(join(dir, 'server.log'), 'utf8').slice(-4000);
    } catch {
      return '';
    }
  };
  const stop = async (): Promise<void> => {
    if (!up) return;
    await exec('pg_ctl', ['stop', '-D', data, '-w', '-t', '60', '-m', 'fast']);
    up = false;
  };
  const postmasterPid = (): number | undefined => {
    try {
      return Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
    } catch {
      return undefined;
    }
  };
  const alive = (pid: number): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };

  await start(true);
  let databases = 0;
  const server: PostgresServer = {
    get url() {
      return `postgres://postgres@127.0.0.1:${port}/postgres`;
    },
    get port() {
      return port;
    },
    stop,
    createDatabase: async () => {
      const name = `db_${++databases}`;
      const client = new pg.Client({ connectionString: server.url });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE ${name}`);
      } finally {
        await client.end();
      }
      return server.url.replace(/\/postgres$/, `/${name}`);
    },
    // The same port: clients reconnect to the same URL.
    start: () => start(false),
    restart: async () => {
      await stop();
      await start(false);
    },
    kill: async () => {
      const pid = postmasterPid();
      if (pid === undefined) return;
      process.kill(pid, 'SIGKILL');
      const deadline = Date.now() + 30_000;
      while (alive(pid) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      up = false;
    },
    running: () => up,
    close: async () => {
      try {
        await stop();
      } catch {
        const pid = postmasterPid();
        if (pid !== undefined && alive(pid)) process.kill(pid, 'SIGKILL');
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return server;
}
