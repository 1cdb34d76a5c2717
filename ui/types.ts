// The API's shapes as the page reads them: the same types the server builds its answers from.
export type { Tracker } from '../src/runtime/tracker-view.js';
export type { TrackerHistoryEntry, TrackerHistoryPage } from '../src/runtime/types.js';
export type { MachineView, MachinesResponse, StateNodeView, TransitionView } from '../src/api/machines.routes.js';

export interface ChainView {
  name: string;
  id: number;
  default: boolean;
  head: number | null;
  lag: number | null;
  rpc: { status: 'ok' | 'degraded' | 'down'; url: string | null; fallback: boolean; lastError: string | null };
  trackers: Record<string, number>;
}

export interface Supervision {
  shards: number;
  live: number;
  restarting: number;
  crashes: number;
  restarts: number;
  crashLoops: number;
}
