import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { hashOf, tempDir, waitFor } from './helpers.js';
import { ROOT, type ServiceProcess, answers, isRunning, spawnService } from './support/service-process.js';

/**
 * `npm run build`'s two steps into a folder of its own under .tmp/ (inside the repository, so
 * node_modules resolve): npm appends `-- args` to the script's last command, not to tsc.
 */
const BUILD = join(ROOT, '.tmp', `build-${process.pid}-${Date.now()}`);

describe('production start and signals', () => {
  const dir = tempDir('tx-tracker-signals-');
  const running: ServiceProcess[] = [];
  const pids: number[] = [];

  beforeAll(async () => {
    for (const [command, args] of [
      ['npx', ['tsc', '-p', 'tsconfig.build.json', '--outDir', BUILD]],
      [process.execPath, [join(BUILD, 'src', 'ui-build.js')]],
    ] as const) {
      const build = spawn(command, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      build.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
      build.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
      const [code] = (await once(build, 'exit')) as [number | null];
      if (code !== 0) throw new Error(`${command} ${args.join(' ')} failed (${code}): ${output}`);
    }
  });
  afterEach(() => {
    for (const service of running.splice(0)) service.child.kill('SIGKILL');
    for (const pid of pids.splice(0)) if (isRunning(pid)) process.kill(pid, 'SIGKILL');
  });
  afterAll(() => {
    dir.remove();
    rmSync(BUILD, { recursive: true, force: true });
  });

  /** Start it, check it serves, and note the pids that must be gone at the end. */
  async function startServing(
    service: ServiceProcess,
  ): Promise<{ api: string; pid: number; anvil: { pid: number; url: string } }> {
    running.push(service);
    const { api, pid } = await service.started();
    const anvil = await service.anvil();
    pids.push(pid, anvil.pid);
    const created = await fetch(`${api}/trackers`, { method: 'POST', body: JSON.stringify({ txHash: hashOf(1) }) });
    expect(created.status).toBe(201);
    return { api, pid, anvil };
  }

  async function expectNothingLeft(
    service: ServiceProcess,
    started: { api: string; pid: number; anvil: { pid: number; url: string } },
  ) {
    await waitFor(() => !isRunning(started.pid), `the service (pid ${started.pid}) to exit`, 20_000);
    await waitFor(() => !isRunning(started.anvil.pid), `its anvil (pid ${started.anvil.pid}) to exit`, 10_000);
    expect(await answers(`${started.api}/healthz`)).toBe(false);
    expect(await answers(started.anvil.url)).toBe(false);
    expect(service.stdout()).toContain('"msg":"stopped"');
  }

  it('the production start (node <build>/src/main.js) stops on SIGTERM: exit 0, the API stops answering, nothing left', async () => {
    const service = spawnService(process.execPath, [join(BUILD, 'src', 'main.js')], {
      PORT: '0',
      DATABASE_URL: `sqlite:${join(dir.path, 'prod.db')}`,
    });
    const started = await startServing(service);
    expect(started.pid).toBe(service.child.pid);
    service.child.kill('SIGTERM');
    expect(await service.exited).toBe(0);
    await expectNothingLeft(service, started);
  });

  it('regression: SIGTERM to `npm start` stops the service (npm passes it on), instead of leaving it serving', async () => {
    const npm = spawnService('npm', ['start'], { PORT: '0', DATABASE_URL: `sqlite:${join(dir.path, 'npm-term.db')}` });
    const started = await startServing(npm);
    npm.child.kill('SIGTERM');
    expect(await npm.exited).toBe(0);
    await expectNothingLeft(npm, started);
  });

  it('regression: SIGKILL of `npm start` stops the service too (it exits with its parent), instead of leaving an orphan serving', async () => {
    const npm = spawnService('npm', ['start'], { PORT: '0', DATABASE_URL: `sqlite:${join(dir.path, 'npm-kill.db')}` });
    const started = await startServing(npm);
    npm.child.kill('SIGKILL');
    await npm.exited;
    await expectNothingLeft(npm, started);
  });
});
