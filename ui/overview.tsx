import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiFailure, api } from './api.js';
import { Statechart } from './chart.js';
import {
  type LiveChange,
  chains,
  confirmationsNow,
  machines,
  onTrackerBatch,
  resync,
  supervision,
  useStore,
} from './live.js';
import type { Tracker } from './types.js';

const PAGE = 50;

export const shortHash = (hash: string | null): string => (hash ? `${hash.slice(0, 10)}…${hash.slice(-6)}` : '—');

export function StateBadge({ state }: { state: string }) {
  return <span class={`badge badge-${state.split('.')[0]}`}>{state}</span>;
}

/** Trackers by state over all chains (from `GET /chains`, re-read as changes stream in). */
export function useCounts(): Record<string, number> | null {
  const list = useStore(chains);
  if (!list) return null;
  const counts: Record<string, number> = {};
  for (const chain of list)
    for (const [state, count] of Object.entries(chain.trackers)) counts[state] = (counts[state] ?? 0) + count;
  return counts;
}

export function Counts({ filter, setFilter }: { filter: string; setFilter: (state: string) => void }) {
  const counts = useCounts();
  const all = machines.get();
  const tracker = all?.machines.find((m) => m.role === 'tracker');
  if (!counts || !tracker) return <p class="muted">Counting…</p>;
  const states = tracker.root.states.map((s) => s.key);
  return (
    <section aria-labelledby="counts-title" class="panel">
      <h2 id="counts-title">Trackers by state</h2>
      <ul class="counts" aria-live="polite">
        {states.map((state) => (
          <li>
            <button
              type="button"
              class={`count badge-${state}`}
              aria-pressed={filter === state}
              onClick={() => setFilter(filter === state ? '' : state)}
              data-count={state}
            >
              <span class="count-value">{counts[state] ?? 0}</span> <span>{state}</span>
            </button>
          </li>
        ))}
      </ul>
      <Statechart
        machine={tracker}
        title="The tracker statechart, with the number of trackers in each state"
        badges={Object.fromEntries(states.map((s) => [s, `${counts[s] ?? 0} trackers`]))}
      />
    </section>
  );
}

export function SupervisorPanel() {
  const all = useStore(machines);
  const stats = useStore(supervision);
  const machine = all?.machines.find((m) => m.role === 'supervisor');
  if (!machine) return null;
  return (
    <section aria-labelledby="supervisor-title" class="panel">
      <h2 id="supervisor-title">Supervisors on this instance</h2>
      {/* Each instance of a cluster supervises its own shards' trackers: the counts above are cluster-wide, these are not. */}
      <p class="muted">The shards and trackers this server process supervises.</p>
      {stats && (
        <dl class="stats" aria-live="polite">
          <div>
            <dt>Shards</dt>
            <dd data-stat="shards">{stats.shards}</dd>
          </div>
          <div>
            <dt>Live trackers</dt>
            <dd data-stat="live">{stats.live}</dd>
          </div>
          <div>
            <dt>Restarting</dt>
            <dd data-stat="restarting">{stats.restarting}</dd>
          </div>
          <div>
            <dt>Crashes</dt>
            <dd data-stat="crashes">{stats.crashes}</dd>
          </div>
          <div>
            <dt>Restarts</dt>
            <dd data-stat="restarts">{stats.restarts}</dd>
          </div>
          <div>
            <dt>Crash loops</dt>
            <dd data-stat="crashLoops">{stats.crashLoops}</dd>
          </div>
        </dl>
      )}
      <Statechart
        machine={machine}
        title="A shard supervisor's statechart (each supervises about a hundred trackers)"
        badges={stats ? { running: `${stats.shards} shards, ${stats.live} trackers`, stopped: '0 shards' } : {}}
      />
    </section>
  );
}

/** Whether `tracker` belongs on the page whose rows are `rows` (id order), as the server would list it. */
function belongsOnPage(tracker: Tracker, rows: Tracker[], firstPage: boolean, full: boolean): boolean {
  const last = rows.at(-1);
  const first = rows[0];
  if (firstPage) return !full || (last !== undefined && tracker.id < last.id);
  return first !== undefined && last !== undefined && tracker.id > first.id && tracker.id < last.id;
}

/**
 * `rows` with the `changes` newer than `eventId` (the list's) applied: a row changed in place, a
 * tracker new to the page inserted in id order when it belongs there. The same array when nothing
 * changed.
 */
function applyChanges(
  rows: Tracker[],
  changes: ReadonlyMap<string, LiveChange>,
  eventId: number,
  page: { filter: string; firstPage: boolean },
): Tracker[] {
  let next = rows;
  const byId = new Map(rows.map((row, i) => [row.id, i]));
  for (const { tracker, eventId: changeId } of changes.values()) {
    // Already on the rows (a stream replaying from before the list), or older than them.
    if (changeId <= eventId) continue;
    const at = byId.get(tracker.id);
    if (at !== undefined) {
      if (next === rows) next = [...rows];
      next[at] = tracker;
    } else if (
      (!page.filter || tracker.state === page.filter) &&
      belongsOnPage(tracker, next, page.firstPage, next.length >= PAGE)
    ) {
      next = [...next, tracker].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).slice(0, PAGE);
      byId.clear();
      next.forEach((row, i) => byId.set(row.id, i));
    }
  }
  return next;
}

export function TrackerTable({ filter, setFilter }: { filter: string; setFilter: (state: string) => void }) {
  const [cursors, setCursors] = useState<string[]>([]);
  const [rows, setRows] = useState<Tracker[]>([]);
  const [nextCursor, setNextCursor] = useState<string | null>(null);
  // The query the rows on screen answer: busy from the render that changes the query, not an effect later.
  const [loadedQuery, setLoadedQuery] = useState<string | null>(null);
  const [message, setMessage] = useState('');
  const [query, setQuery] = useState('');
  const gap = useStore(resync);
  const heads = useStore(chains);
  const view = useRef({ rows, cursors, filter });
  view.current = { rows, cursors, filter };
  /**
   * The rows' `eventId` (changes up to it are in them), and the changes that came while a list was
   * in flight: applied on top of its answer when newer, else that answer would hide them.
   */
  const listed = useRef<{ eventId: number; inFlight: Map<string, LiveChange> | null }>({
    eventId: -1,
    inFlight: null,
  });

  const cursor = cursors.at(-1) ?? null;
  const pageKey = `${filter}/${cursor ?? ''}/${gap}`;
  const loading = loadedQuery !== pageKey;
  useEffect(() => {
    let live = true;
    const params = new URLSearchParams({ limit: String(PAGE) });
    if (filter) params.set('state', filter);
    if (cursor) params.set('cursor', cursor);
    const inFlight = new Map<string, LiveChange>();
    listed.current.inFlight = inFlight;
    api<{ items: Tracker[]; nextCursor: string | null; eventId: number }>('GET', `/trackers?${params}`).then(
      (page) => {
        if (!live) return;
        listed.current = { eventId: page.eventId, inFlight: null };
        setRows(applyChanges(page.items, inFlight, page.eventId, { filter, firstPage: !cursor }));
        setNextCursor(page.nextCursor);
        setLoadedQuery(pageKey);
      },
      (error: unknown) => {
        if (!live) return;
        listed.current.inFlight = null;
        setMessage(`Could not list trackers: ${(error as Error).message}`);
      },
    );
    return () => {
      live = false;
    };
  }, [filter, cursor, gap]);

  useEffect(
    () =>
      onTrackerBatch((changed) => {
        const { rows: current, cursors: stack, filter: state } = view.current;
        const { inFlight, eventId } = listed.current;
        if (inFlight) for (const [id, change] of changed) inFlight.set(id, change);
        const next = applyChanges(current, changed, eventId, { filter: state, firstPage: stack.length === 0 });
        if (next !== current) setRows(next);
      }),
    [],
  );

  const find = async (event: Event) => {
    event.preventDefault();
    const q = query.trim();
    if (!q) return;
    const candidates = [q];
    if (/^0x[0-9a-fA-F]{64}$/.test(q))
      for (const chain of chains.get() ?? []) if (!chain.default) candidates.push(`${chain.id}:${q.toLowerCase()}`);
    for (const id of candidates) {
      try {
        const tracker = await api<Tracker>('GET', `/trackers/${encodeURIComponent(id)}`);
        location.hash = `#/trackers/${encodeURIComponent(tracker.id)}`;
        return;
      } catch (error) {
        if (!(error instanceof ApiFailure) || (error.status !== 404 && error.status !== 400)) {
          setMessage(`Search failed: ${(error as Error).message}`);
          return;
        }
      }
    }
    setMessage(`No tracker has the id or hash ${q}.`);
  };

  return (
    <section aria-labelledby="trackers-title" class="panel">
      <h2 id="trackers-title">Trackers</h2>
      <div class="controls">
        <div class="filter">
          <label for="state-filter">Filter by state</label>
          <select
            id="state-filter"
            value={filter}
            onChange={(e) => {
              setCursors([]);
              setFilter((e.target as HTMLSelectElement).value);
            }}
          >
            <option value="">all</option>
            {(machines.get()?.machines.find((m) => m.role === 'tracker')?.root.states ?? []).map((s) => (
              <option value={s.key}>{s.key}</option>
            ))}
          </select>
        </div>
        <form onSubmit={find} role="search" class="search">
          <label for="search">Find by id or tx hash</label>
          <input
            id="search"
            type="search"
            value={query}
            onInput={(e) => setQuery((e.target as HTMLInputElement).value)}
            spellcheck={false}
            autocomplete="off"
          />
          <button type="submit">Find</button>
        </form>
      </div>
      <p role="status" class="message">
        {message}
      </p>
      <div class="table-wrap">
        <table aria-busy={loading} aria-describedby="trackers-title">
          <thead>
            <tr>
              <th scope="col">Tracker</th>
              <th scope="col">State</th>
              <th scope="col">Confirmations</th>
              <th scope="col">Block</th>
              <th scope="col">Reorgs</th>
              <th scope="col">Restarts</th>
              <th scope="col">Chain</th>
              <th scope="col">Updated</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((t) => (
              <tr data-id={t.id} data-state={t.state}>
                <td class="mono">
                  <a href={`#/trackers/${encodeURIComponent(t.id)}`} title={t.id}>
                    {t.id.length > 24 ? shortHash(t.id) : t.id}
                  </a>
                </td>
                <td>
                  <StateBadge state={t.state} />
                </td>
                <td>
                  {confirmationsNow(t, heads)}
                  {t.requiredConfirmations !== null ? ` / ${t.requiredConfirmations}` : ` (${t.finality ?? ''})`}
                </td>
                <td>{t.blockNumber ?? '—'}</td>
                <td data-col="reorgs">{t.reorgs}</td>
                <td data-col="restarts">{t.restarts}</td>
                <td>{t.chainId}</td>
                <td>{new Date(t.updatedAt).toLocaleTimeString()}</td>
              </tr>
            ))}
            {!loading && rows.length === 0 && (
              <tr>
                <td colSpan={8}>No trackers{filter ? ` in state ${filter}` : ''}.</td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      <nav class="pager" aria-label="Tracker pages">
        <button type="button" disabled={cursors.length === 0} onClick={() => setCursors([])}>
          First page
        </button>
        <button type="button" disabled={cursors.length === 0} onClick={() => setCursors(cursors.slice(0, -1))}>
          Previous page
        </button>
        <span>Page {cursors.length + 1}</span>
        <button type="button" disabled={!nextCursor} onClick={() => nextCursor && setCursors([...cursors, nextCursor])}>
          Next page
        </button>
      </nav>
    </section>
  );
}
