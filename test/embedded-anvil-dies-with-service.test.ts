import { createServer } from 'node:net';
import { once } from 'node:events';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { startAnvil } from '../src/chain/anvil.js';
import { tempDir, waitFor } from './helpers.js';
import { type ServiceProcess, answers, isRunning, spawnFromSource } from './support/service-process.js';

describe('the embedded anvil never outlives the service', () => {
  const dir = tempDir('tx-tracker-anvil-');
  const running: ServiceProcess[] = [];
  const anvilPids: number[] = [];
  afterEach(() => {
    for (const service of running.splice(0)) service.child.kill('SIGKILL');
    // A failing run must not leave its anvil behind either.
    for (const pid of anvilPids.splice(0)) if (isRunning(pid)) process.kill(pid, 'SIGKILL');
  });
  afterAll(() => dir.remove());

  it('regression: kill -9 of the service stops its embedded anvil', async () => {
    const service = spawnFromSource({ PORT: '0', DATABASE_URL: `sqlite:${join(dir.path, 'killed.db')}` });
    running.push(service);
    await service.started();
    const anvil = await service.anvil();
    anvilPids.push(anvil.pid);
    expect(isRunning(anvil.pid)).toBe(true);
    expect(await answers(anvil.url)).toBe(true);

    service.child.kill('SIGKILL');
    await service.exited;
    await waitFor(() => !isRunning(anvil.pid), `anvil (pid ${anvil.pid}) to exit after its service was killed`, 15_000);
    expect(await answers(anvil.url)).toBe(false);
  });

  it('regression: a start that fails because PORT is taken leaves no anvil behind', async () => {
    const taken = createServer().listen(0, '127.0.0.1');
    await once(taken, 'listening');
    const port = (taken.address() as { port: number }).port;
    try {
      const service = spawnFromSource({
        PORT: String(port),
        DATABASE_URL: `sqlite:${join(dir.path, 'port-taken.db')}`,
      });
      running.push(service);
      const anvil = await service.anvil();
      anvilPids.push(anvil.pid);
      expect(await service.exited).toBe(1);
      expect(service.stdout()).toMatch(/"msg":"start failed"/);
      expect(service.stdout()).toContain('EADDRINUSE');
      await waitFor(() => !isRunning(anvil.pid), `anvil (pid ${anvil.pid}) to exit after the failed start`, 15_000);
      expect(await answers(anvil.url)).toBe(false);
    } finally {
      taken.close();
    }
  });

  it('startAnvil: stop() resolves once anvil, run under its watchdog, has exited', async () => {
    const anvil = await startAnvil();
    anvilPids.push(anvil.pid!);
    expect(isRunning(anvil.pid!)).toBe(true);
    await anvil.stop();
    expect(isRunning(anvil.pid!)).toBe(false);
    expect(await answers(anvil.url)).toBe(false);
  });
});
