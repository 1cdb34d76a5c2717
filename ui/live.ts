import { useEffect, useReducer } from 'preact/hooks';
import { ApiFailure, api } from './api.js';
import type { ChainView, MachinesResponse, Supervision, Tracker } from './types.js';

export interface Store<T> {
  get(): T;
  set(value: T): void;
  subscribe(listener: () => void): () => void;
}

export function createStore<T>(initial: T): Store<T> {
  let value = initial;
  const listeners = new Set<() => void>();
  return {
    get: () => value,
    set(next) {
      value = next;
      for (const listener of listeners) listener();
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}

/** Re-render the calling component whenever `store` changes. */
export function useStore<T>(store: Store<T>): T {
  const [, bump] = useReducer((n: number, _action: undefined) => n + 1, 0);
  useEffect(() => store.subscribe(() => bump(undefined)), [store]);
  return store.get();
}

/** At most one call of `fn` per `ms`, the last request always served. */
export function throttle(fn: () => Promise<unknown> | void, ms: number): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let last = 0;
  return () => {
    if (timer) return;
    const wait = Math.max(0, last + ms - Date.now());
    timer = setTimeout(() => {
      timer = undefined;
      last = Date.now();
      void Promise.resolve(fn()).catch(() => {});
    }, wait);
  };
}

export const machines = createStore<MachinesResponse | null>(null);
export const chains = createStore<ChainView[] | null>(null);
/** Whether the store answered the last read of `/chains` (its tracker counts); null before one. */
export const storeUp = createStore<boolean | null>(null);
export const supervision = createStore<Supervision | null>(null);
export const connected = createStore(false);
/** Bumped when changes were missed (an SSE gap): lists re-read themselves. */
export const resync = createStore(0);

// The store's health comes from this read too, not from polling `/readyz`: that answers 503 while
// a node is down, and the browser logs every such answer as a console error.
export const refreshChains = throttle(async () => {
  try {
    chains.set((await api<{ chains: ChainView[] }>('GET', '/chains')).chains);
    storeUp.set(true);
  } catch (error) {
    if (error instanceof ApiFailure && error.code === 'store_unavailable') storeUp.set(false);
    throw error;
  }
}, 1000);
export const refreshSupervision = throttle(
  async () => supervision.set(await api<Supervision>('GET', '/supervision')),
  1000,
);

/** A tracker change from the stream, with its event id (to compare with a list's `eventId`). */
export interface LiveChange {
  tracker: Tracker;
  eventId: number;
}

type BatchListener = (changed: ReadonlyMap<string, LiveChange>) => void;
const batchListeners = new Set<BatchListener>();
let pending = new Map<string, LiveChange>();
let frameScheduled = false;

/**
 * Tracker changes from the stream, handed to the views once per animation frame: at a thousand
 * changes a second the page renders a frame's worth at once, and keeps only the newest per id.
 */
export function trackerChanged(tracker: Tracker, eventId: number): void {
  pending.set(tracker.id, { tracker, eventId });
  if (frameScheduled) return;
  frameScheduled = true;
  const flush = () => {
    frameScheduled = false;
    const batch = pending;
    pending = new Map();
    for (const listener of batchListeners) listener(batch);
  };
  // A hidden tab gets no animation frames; a timer keeps the batches bounded there too.
  if (document.hidden) setTimeout(flush, 250);
  else requestAnimationFrame(flush);
}

export function onTrackerBatch(listener: BatchListener): () => void {
  batchListeners.add(listener);
  return () => batchListeners.delete(listener);
}

/** The chain's head moved: shown at once, without re-reading /chains. */
export function headMoved(head: { blockNumber: number; chain: number }): void {
  const list = chains.get();
  if (!list) return;
  chains.set(list.map((c) => (c.id === head.chain ? { ...c, head: head.blockNumber } : c)));
}

/**
 * A confirming tracker's confirmations at its chain's head as the page last heard it: the stream
 * sends a `head` event per block rather than every confirming tracker again (as the server does).
 */
export function confirmationsNow(tracker: Tracker, list: ChainView[] | null): number {
  if (tracker.state !== 'confirming' || tracker.blockNumber === null) return tracker.confirmations;
  const head = list?.find((c) => c.id === tracker.chainId)?.head;
  return head == null ? tracker.confirmations : Math.max(tracker.confirmations, head - tracker.blockNumber + 1);
}
