import { Router } from 'express';
import { TRACKER_STATE_NAMES } from '../../machines/tracker.machine.js';
import type { TrackerSystem } from '../runtime/system.js';
import { cached } from './metrics.js';
import type { RouteDoc } from './openapi.js';

/** A chain's RPC health as people read it: `ok`; `degraded` (failing lately, or on its fallback node); `down`. */
export type RpcStatus = 'ok' | 'degraded' | 'down';

/** What a chain's watcher knows that the tracker system does not. */
export interface ChainHealth {
  rpc: { status: RpcStatus; url: string | null; fallback: boolean; lastError: string | null };
  /** Blocks between the node's head and the newest block replayed; null before the first head. */
  lag: number | null;
}

/** Each chain's watcher health by chain id; undefined: a chain without a watcher (shown as ok). */
export type ChainHealthSource = (chainId: number) => ChainHealth | undefined;

/** Counting trackers reads every row: requests close together share one count. */
const COUNT_TTL_MS = 1_000;

/** `/openapi.json` entries of the routes below. */
export const chainRouteDocs: RouteDoc[] = [
  {
    method: 'get',
    path: '/chains',
    summary: 'Each configured chain: its id, head, safe and finalized block, lag, RPC health and trackers by state',
    responses: {
      200: { description: 'The chains, the default one marked', schema: 'ChainList' },
      503: { description: 'store_unavailable (the tracker counts)', schema: 'Error' },
    },
  },
];

/**
 * `GET /chains`: the runtime's view of each chain (its head, safe and finalized block, default
 * confirmations), its watcher's (RPC health, lag), and its trackers by state from the store.
 *
 * @example
 * app.use(chainRoutes(system, (chainId) => health(chainId)));
 */
export function chainRoutes(system: TrackerSystem, health?: ChainHealthSource): Router {
  const router = Router();
  const counts = cached(() => system.countTrackers(), COUNT_TTL_MS);
  router.get('/chains', async (_req, res) => {
    const all = await counts();
    const chains = system.chainViews().map((chain) => {
      const trackers: Record<string, number> = Object.fromEntries(TRACKER_STATE_NAMES.map((state) => [state, 0]));
      for (const { chainId, state, count } of all)
        if (chainId === chain.id && state in trackers) trackers[state]! += count;
      const watcher = health?.(chain.id);
      return {
        name: chain.name,
        id: chain.id,
        default: chain.isDefault,
        confirmations: chain.confirmations,
        head: chain.head,
        safe: chain.safe,
        finalized: chain.finalized,
        lag: watcher?.lag ?? null,
        rpc: watcher?.rpc ?? { status: 'ok', url: null, fallback: false, lastError: null },
        trackers,
      };
    });
    res.json({ chains });
  });
  return router;
}
