import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiFailure, api, trackerHistory } from './api.js';
import { type Step, Statechart } from './chart.js';
import { chains, confirmationsNow, machines, onTrackerBatch, resync, throttle, useStore } from './live.js';
import { StateBadge, shortHash } from './overview.js';
import type { MachineView, StateNodeView, Tracker, TrackerHistoryEntry } from './types.js';

/** Whether the state at `path` (or one of its ancestors) takes `event`, read from the machine. */
function accepts(machine: MachineView, path: string, event: string): boolean {
  const parts = path.split('.');
  let node: StateNodeView | undefined = machine.root;
  const chain: StateNodeView[] = [machine.root];
  for (const key of parts) {
    node = node?.states.find((s) => s.key === key);
    if (node) chain.push(node);
  }
  return chain.some((n) => n.transitions.some((t) => t.event === event));
}

const time = (at: string): string => {
  const d = new Date(at);
  return `${d.toLocaleTimeString()}.${String(d.getMilliseconds()).padStart(3, '0')}`;
};

function Timeline({ rows }: { rows: TrackerHistoryEntry[] }) {
  return (
    <ol class="timeline" aria-label="History">
      {rows.map((row, i) => {
        const before = rows[i - 1];
        const reorged = before !== undefined && row.reorgs > before.reorgs;
        const restarted = before !== undefined && row.restarts > before.restarts;
        const replacedBy = row.detail?.replacedBy ?? null;
        const failure = row.detail?.failure;
        return (
          <li data-event={row.event} class={reorged ? 'reorg' : restarted ? 'restart' : ''}>
            <time dateTime={row.at}>{time(row.at)}</time>
            <span class="event">{row.event}</span>
            <span class="move">
              {row.from ?? 'created'} → <StateBadge state={row.to} />
            </span>
            {row.blockNumber !== null && (
              <span class="block">
                block {row.blockNumber}
                {row.blockHash ? ` (${shortHash(row.blockHash)})` : ''}
              </span>
            )}
            {reorged && <span class="flag">reorg #{row.reorgs}</span>}
            {restarted && <span class="flag">restart #{row.restarts}</span>}
            {replacedBy && <span class="flag">replaced by {shortHash(replacedBy)}</span>}
            {row.detail?.confirmations !== undefined && (
              <span class="detail">
                {row.detail.confirmations} confirmation{row.detail.confirmations === 1 ? '' : 's'}
              </span>
            )}
            {failure && (
              <span class="flag">
                {failure.reason}: {failure.detail}
              </span>
            )}
          </li>
        );
      })}
    </ol>
  );
}

export function TrackerView({ id }: { id: string }) {
  const all = useStore(machines);
  const gap = useStore(resync);
  const heads = useStore(chains);
  const [tracker, setTracker] = useState<Tracker | null>(null);
  const [history, setHistory] = useState<TrackerHistoryEntry[] | undefined>(undefined);
  const [failure, setFailure] = useState<string | null>(null);
  const [message, setMessage] = useState('');
  const [busy, setBusy] = useState(false);
  const heading = useRef<HTMLHeadingElement>(null);

  const reloadHistory = useRef(throttle(() => {}, 0));
  useEffect(() => {
    let live = true;
    const load = async (): Promise<void> => {
      const entries = await trackerHistory(id);
      if (live) setHistory(entries);
    };
    reloadHistory.current = throttle(load, 300);
    setFailure(null);
    // A change streamed in while the read was in flight is as new as its answer or newer.
    let streamed = false;
    api<Tracker>('GET', `/trackers/${encodeURIComponent(id)}`).then(
      (t) => live && !streamed && setTracker(t),
      (error: unknown) =>
        live &&
        setFailure(
          error instanceof ApiFailure && error.status === 404 ? `No tracker ${id}.` : (error as Error).message,
        ),
    );
    void load().catch((error: unknown) => live && setMessage(`History: ${(error as Error).message}`));
    const stop = onTrackerBatch((changed) => {
      const next = changed.get(id);
      if (!next) return;
      streamed = true;
      setTracker(next.tracker);
      reloadHistory.current();
    });
    return () => {
      live = false;
      stop();
    };
  }, [id, gap]);
  useEffect(() => {
    // Another tracker: nothing of the previous one stays on screen.
    setTracker(null);
    setHistory(undefined);
    setMessage('');
    heading.current?.focus();
  }, [id]);

  const machine = all?.machines.find((m) => m.role === 'tracker');
  const rows = history ?? [];
  const lastTo = rows.at(-1)?.to;
  // The change log knows the sub-state (`pending.seen`); the tracker itself only its top state.
  const current = tracker ? (lastTo && lastTo.split('.')[0] === tracker.state ? lastTo : tracker.state) : undefined;
  const steps: Step[] = rows.map((row) => ({ from: row.from, to: row.to, event: row.event }));

  const send = async (label: string, action: () => Promise<Tracker>) => {
    setBusy(true);
    setMessage(`${label}…`);
    try {
      const t = await action();
      setTracker(t);
      setMessage(`${label}: done; the tracker is ${t.state}.`);
      reloadHistory.current();
    } catch (error) {
      setMessage(`${label} refused: ${(error as Error).message}`);
    } finally {
      setBusy(false);
    }
  };
  const event = (type: string) => () =>
    send(type, () => api<Tracker>('POST', `/trackers/${encodeURIComponent(id)}/events`, { type }));
  const offered = all?.clientEvents ?? [];
  const can = (type: string) => Boolean(machine && current && accepts(machine, current, type));

  return (
    <section aria-labelledby="tracker-title" class="panel tracker-view">
      <p>
        <a href="#/">← All trackers</a>
      </p>
      <h2 id="tracker-title" tabIndex={-1} ref={heading} class="mono">
        Tracker {id}
      </h2>
      {failure && <p role="alert">{failure}</p>}
      {tracker && (
        <>
          <dl class="facts">
            <div>
              <dt>State</dt>
              <dd data-field="state">
                <StateBadge state={current ?? tracker.state} />
              </dd>
            </div>
            <div>
              <dt>Tx hash</dt>
              <dd class="mono" title={tracker.txHash}>
                {shortHash(tracker.txHash)}
              </dd>
            </div>
            <div>
              <dt>Chain</dt>
              <dd>{tracker.chainId}</dd>
            </div>
            <div>
              <dt>Confirmations</dt>
              <dd data-field="confirmations">
                {confirmationsNow(tracker, heads)}
                {tracker.requiredConfirmations !== null
                  ? ` of ${tracker.requiredConfirmations}`
                  : ` (${tracker.finality ?? ''})`}
              </dd>
            </div>
            <div>
              <dt>Block</dt>
              <dd>
                {tracker.blockNumber ?? '—'} {tracker.blockHash ? `(${shortHash(tracker.blockHash)})` : ''}
              </dd>
            </div>
            <div>
              <dt>Reorgs</dt>
              <dd data-field="reorgs">{tracker.reorgs}</dd>
            </div>
            <div>
              <dt>Restarts</dt>
              <dd data-field="restarts">{tracker.restarts}</dd>
            </div>
            {tracker.replacedBy && (
              <div>
                <dt>Replaced by</dt>
                <dd class="mono">{shortHash(tracker.replacedBy)}</dd>
              </div>
            )}
            {tracker.failure && (
              <div>
                <dt>Failure</dt>
                <dd>
                  {tracker.failure.reason}: {tracker.failure.detail}
                </dd>
              </div>
            )}
            <div>
              <dt>Created</dt>
              <dd>{new Date(tracker.createdAt).toLocaleString()}</dd>
            </div>
          </dl>
          <div class="actions" role="group" aria-label="Drive this tracker">
            {offered.includes('RECHECK') && (
              <button type="button" disabled={busy || !can('RECHECK')} onClick={event('RECHECK')}>
                RECHECK
              </button>
            )}
            {offered.includes('REBROADCAST') && (
              <button type="button" disabled={busy || !can('REBROADCAST')} onClick={event('REBROADCAST')}>
                REBROADCAST
              </button>
            )}
            {offered.includes('CRASH') && (
              <button type="button" class="danger" disabled={busy || !can('CRASH')} onClick={event('CRASH')}>
                CRASH
              </button>
            )}
            <button
              type="button"
              class="danger"
              disabled={busy || !can('STOP')}
              onClick={() => {
                // Stopping is for good: asked once more.
                if (!window.confirm(`Stop tracking ${id}? It ends stopped; its history is kept.`)) return;
                void send('DELETE', () => api<Tracker>('DELETE', `/trackers/${encodeURIComponent(id)}`));
              }}
            >
              DELETE
            </button>
          </div>
          <p role="status" class="message" data-message>
            {message}
          </p>
          {machine && (
            <Statechart
              machine={machine}
              current={current}
              steps={steps}
              title={`Statechart of tracker ${id}: current state ${current ?? '?'}, its path marked`}
            />
          )}
          <h3>History</h3>
          {history === undefined && <p class="muted">Reading the history…</p>}
          {history && <Timeline rows={rows} />}
        </>
      )}
    </section>
  );
}
