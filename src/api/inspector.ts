import { type StatelyInspectionEvent, createInspector, createWebSocketInspector } from '@statelyai/inspect';
import type { AnyActorRef, InspectionEvent } from 'xstate';

export interface InspectionOptions {
  /**
   * Which trackers to show: `'*'` for all, else an id prefix (`INSPECT=txn_01`). Supervisors always
   * appear, but only their events about shown trackers.
   */
  filter: string;
  /** The relay (`startInspectorRelay`) to stream to; none: only the offline view. */
  relayUrl?: string | undefined;
  /** The relay's token (`API_TOKEN`), sent as `access_token`: the Stately WebSocket client sets no headers. */
  relayToken?: string | undefined;
  /** Inspection events per second passed on at most; the rest are dropped and counted (default 2,000). */
  maxEventsPerSecond?: number;
  /** Trackers shown at most: the first that match are followed whole, later ones not at all (default 1,000). */
  maxTrackers?: number;
  /** Recent events the offline view keeps (default 500). */
  recent?: number;
}

interface ActorRow {
  sessionId: string;
  name: string;
  parentId: string | undefined;
  status: string | undefined;
  value: unknown;
}

/** Supervisors are told apart by their machine (a tracker may be called `root`), not by actor id. */
const isSupervisor = (ref: AnyActorRef): boolean => {
  const machineId = (ref as { logic?: { config?: { id?: unknown } } }).logic?.config?.id;
  return machineId === 'supervisor' || machineId === 'root';
};
/** The supervisors' restart and give-up tasks are named after their tracker. */
const HELPER = /^(?:restore|giveup)\/(.*)$/;

/** The tracker id an inspection event is about, or undefined when it is about no tracker. */
function trackerOf(event: InspectionEvent): string | undefined {
  const ref = event.actorRef as AnyActorRef;
  if (!isSupervisor(ref)) return HELPER.exec(ref.id)?.[1] ?? ref.id;
  if (event.type === '@xstate.actor') return undefined;
  if (!('event' in event)) return undefined;
  const raw = event.event as { type: string; id?: unknown };
  if (typeof raw.id === 'string') return raw.id;
  // xstate.done.actor.<id> / xstate.error.actor.<id> (and the helpers' prefixed ids).
  const match = /^xstate\.(?:done|error)\.actor\.(?:restore\/|giveup\/)?(.*)$/.exec(raw.type);
  return match ? match[1] : undefined;
}

/**
 * The `inspect` observer of the actor system: filters by tracker id prefix and rate-limits BEFORE
 * anything is serialized (so 100,000 trackers cost a string compare each), then feeds the Stately
 * WebSocket inspector (through the relay) and an offline view served at `/inspect`.
 *
 * @example
 * const inspection = createInspection({ filter: 'txn_', relayUrl: 'ws://127.0.0.1:8080', relayToken: config.API_TOKEN });
 * const system = await createTrackerSystem({ store, inspect: inspection.observe });
 */
export function createInspection(options: InspectionOptions) {
  const maxPerSecond = options.maxEventsPerSecond ?? 2000;
  const recentMax = options.recent ?? 500;
  const prefix = options.filter === '*' ? '' : options.filter;
  const maxTrackers = options.maxTrackers ?? 1000;
  const shown = new Set<string>();
  /** A tracker is shown whole or not at all, so the inspector never gets events of unknown actors. */
  const isShown = (tracker: string): boolean => {
    if (shown.has(tracker)) return true;
    if (!tracker.startsWith(prefix) || shown.size >= maxTrackers) return false;
    shown.add(tracker);
    return true;
  };
  const actors = new Map<string, ActorRow>();
  const recent: StatelyInspectionEvent[] = [];
  const counts = { passed: 0, filtered: 0, dropped: 0 };
  let windowStart = 0;
  let inWindow = 0;

  const offline = createInspector({
    send(event: StatelyInspectionEvent) {
      if (event.type === '@xstate.actor') {
        actors.set(event.sessionId, {
          sessionId: event.sessionId,
          name: event.name,
          parentId: event.parentId,
          status: event.snapshot.status,
          value: event.snapshot.value,
        });
      } else if (event.type === '@xstate.snapshot') {
        const row = actors.get(event.sessionId);
        const snapshot = event.snapshot as { status?: string; value?: unknown };
        if (row) Object.assign(row, { status: snapshot.status, value: snapshot.value });
      }
      // Keep the offline view light: no snapshots' contexts in the recent list.
      const light = event.type === '@xstate.event' ? event : { ...event, snapshot: undefined, definition: undefined };
      recent.push(light as StatelyInspectionEvent);
      if (recent.length > recentMax) recent.splice(0, recent.length - recentMax);
    },
  });
  const remote = options.relayUrl
    ? createWebSocketInspector({ url: withAccessToken(options.relayUrl, options.relayToken), maxDeferredEvents: 1000 })
    : undefined;

  const observe = (event: InspectionEvent): void => {
    if (event.type !== '@xstate.actor' && event.type !== '@xstate.event' && event.type !== '@xstate.snapshot') return;
    const tracker = trackerOf(event);
    const supervisorOwn = tracker === undefined && isSupervisor(event.actorRef as AnyActorRef);
    if (!supervisorOwn && (tracker === undefined || !isShown(tracker))) {
      counts.filtered++;
      return;
    }
    const now = Date.now();
    if (now - windowStart >= 1000) {
      windowStart = now;
      inWindow = 0;
    }
    // Actor registrations of shown trackers always pass; the rate limit sheds events and snapshots.
    if (event.type !== '@xstate.actor' && ++inWindow > maxPerSecond) {
      counts.dropped++;
      return;
    }
    counts.passed++;
    offline.inspect.next?.(event);
    remote?.inspect.next?.(event);
  };

  return {
    observe,
    /** The offline view: actors (supervisors and shown trackers) and the latest inspection events. */
    view() {
      return {
        filter: options.filter,
        relayUrl: options.relayUrl ?? null,
        counts: { ...counts, shownTrackers: shown.size, maxTrackers },
        actors: [...actors.values()],
        recent: [...recent],
      };
    },
    stop(): void {
      remote?.stop();
    },
  };
}

export type Inspection = ReturnType<typeof createInspection>;

function withAccessToken(url: string, token: string | undefined): string {
  if (!token) return url;
  const withToken = new URL(url);
  withToken.searchParams.set('access_token', token);
  return withToken.href;
}

/** A page that polls `/inspect` (token from `#token=…` when API_TOKEN is set). No external assets. */
export const INSPECT_PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>tx-tracker inspector</title>
<style>body{font:13px system-ui;margin:1em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}pre{margin:0}</style>
</head><body><h1>tx-tracker: live actor system</h1><p id="meta"></p>
<h2>Actors</h2><table id="actors"></table><h2>Recent inspection events</h2><table id="events"></table>
<script>
const token = new URLSearchParams(location.hash.slice(1)).get('token');
const esc = (s) => String(s).replace(/[&<>]/g, (c) => ({'&':'&amp;','<':'&lt;','>':'&gt;'}[c]));
async function tick() {
  const res = await fetch('/inspect', { headers: token ? { authorization: 'Bearer ' + token } : {} });
  const view = await res.json();
  if (!res.ok) { document.getElementById('meta').textContent = JSON.stringify(view); return; }
  document.getElementById('meta').textContent = 'filter: ' + view.filter + ' · ' + JSON.stringify(view.counts);
  document.getElementById('actors').innerHTML = '<tr><th>name</th><th>session</th><th>parent</th><th>status</th><th>value</th></tr>' +
    view.actors.map((a) => '<tr><td>' + esc(a.name) + '</td><td>' + esc(a.sessionId) + '</td><td>' + esc(a.parentId ?? '') + '</td><td>' + esc(a.status ?? '') + '</td><td><pre>' + esc(JSON.stringify(a.value)) + '</pre></td></tr>').join('');
  document.getElementById('events').innerHTML = '<tr><th>type</th><th>session</th><th>event</th></tr>' +
    view.recent.slice(-100).reverse().map((e) => '<tr><td>' + esc(e.type) + '</td><td>' + esc(e.sessionId) + '</td><td>' + esc(e.event ? e.event.type : '') + '</td></tr>').join('');
}
tick(); setInterval(tick, 1000);
</script></body></html>`;
