import { afterAll, beforeAll, expect, it } from 'vitest';
import { type ClusterHarness, call, startClusterHarness, waitForBalance } from './support/cluster.js';
import { openStream } from './helpers/sse.js';
import { describeWithPostgres } from './support/postgres.js';
import { waitUntil } from './support/wait.js';

const hashOf = (i: number): string => `0x${(0xe7e7000 + i).toString(16).padStart(64, '0')}`;
const idOf = (frame: { data?: unknown }): string => (frame.data as { id: string }).id;

describeWithPostgres('GET /events on a cluster', () => {
  let cluster: ClusterHarness;

  beforeAll(async () => {
    cluster = await startClusterHarness({ instances: 3 });
    await waitForBalance(cluster);
  }, 180_000);
  afterAll(async () => {
    await cluster?.close();
  });

  it('any instance streams every instance’s changes; a Last-Event-ID from one instance resumes on another with nothing missed or repeated', async () => {
    const [a, b, c] = cluster.instances as [
      (typeof cluster.instances)[0],
      (typeof cluster.instances)[0],
      (typeof cluster.instances)[0],
    ];
    const first = await openStream(`${a.api}/events`);
    const ids = Array.from({ length: 30 }, (_, i) => `events-${i}`);
    // Started through b: their owners are all three instances.
    const { status } = await call(b.api, 'POST', '/trackers/batch', {
      trackers: ids.slice(0, 15).map((id, i) => ({ id, txHash: hashOf(i) })),
    });
    expect(status).toBe(200);
    const seen = await waitUntil(
      () => (first.trackerFrames().length >= 15 ? first.trackerFrames() : undefined),
      'a to stream every creation',
      20_000,
    );
    expect(seen.map(idOf).sort()).toEqual(ids.slice(0, 15).sort());
    const seqs = seen.map((frame) => frame.id!);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    expect(new Set(seqs).size).toBe(seqs.length);
    const last = seqs.at(-1)!;
    await first.close();

    // Changes made while no stream is open, through c and a.
    await call(c.api, 'POST', '/trackers/batch', {
      trackers: ids.slice(15).map((id, i) => ({ id, txHash: hashOf(15 + i) })),
    });
    expect((await call(a.api, 'DELETE', `/trackers/${ids[0]}`)).status).toBe(200);

    // Resumed on another instance with the id the first gave.
    const resumed = await openStream(`${c.api}/events`, { 'Last-Event-ID': String(last) });
    const replayed = await waitUntil(
      () => (resumed.trackerFrames().length >= 16 ? resumed.trackerFrames() : undefined),
      'c to replay what was missed',
      20_000,
    );
    await new Promise((resolve) => setTimeout(resolve, 500));
    const after = resumed.trackerFrames();
    expect(resumed.frames.filter((frame) => frame.event === 'gap')).toEqual([]);
    expect(after.every((frame) => frame.id! > last)).toBe(true);
    expect(after.map(idOf).sort()).toEqual([...ids.slice(15), ids[0]!].sort());
    expect(replayed.at(-1)!.data).toMatchObject({ id: ids[0], state: 'stopped' });
    await resumed.close();
  }, 120_000);
});
