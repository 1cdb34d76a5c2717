import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { Unauthorized, api, currentEventId, streamEvents, token, whenUnauthorized } from './api.js';
import {
  chains,
  connected,
  headMoved,
  machines,
  refreshChains,
  refreshSupervision,
  resync,
  storeUp,
  trackerChanged,
  useStore,
} from './live.js';
import { Counts, SupervisorPanel, TrackerTable } from './overview.js';
import { TrackerView } from './tracker-view.js';
import type { MachinesResponse, Tracker } from './types.js';
import './styles.css';

function TokenForm({ onDone, retry }: { onDone: () => void; retry: boolean }) {
  const [value, setValue] = useState('');
  return (
    <main class="token">
      <h1>tx-tracker</h1>
      <form
        onSubmit={(event) => {
          event.preventDefault();
          token.set(value.trim());
          onDone();
        }}
      >
        <p>
          {retry
            ? 'That token was refused. Enter the API token again.'
            : 'This server needs its API token (API_TOKEN). It is kept for this tab only.'}
        </p>
        <label for="token">API token</label>
        <input
          id="token"
          type="password"
          autocomplete="off"
          required
          minLength={1}
          value={value}
          onInput={(e) => setValue((e.target as HTMLInputElement).value)}
          autoFocus
        />
        <button type="submit">Open the dashboard</button>
      </form>
    </main>
  );
}

function Health() {
  const list = useStore(chains);
  const store = useStore(storeUp);
  const live = useStore(connected);
  return (
    <div class="health" aria-live="polite">
      <span class={`pill ${live ? 'ok' : 'down'}`} data-health="stream">
        {live ? 'live' : 'reconnecting'}
      </span>
      <span class={`pill ${store ? 'ok' : 'down'}`} data-health="store">
        store {store === null ? '…' : store ? 'ok' : 'down'}
      </span>
      {(list ?? []).map((chain) => (
        <span class={`pill ${chain.rpc.status}`} data-chain={chain.name}>
          {chain.name} ({chain.id}): head <span data-head>{chain.head ?? '—'}</span>, lag {chain.lag ?? '—'}, RPC{' '}
          {chain.rpc.status}
          {chain.rpc.fallback ? ' (fallback)' : ''}
        </span>
      ))}
    </div>
  );
}

function useRoute(): string {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const onChange = () => setHash(location.hash);
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
  return hash;
}

function Dashboard() {
  const route = useRoute();
  const [filter, setFilter] = useState('');
  const match = /^#\/trackers\/(.+)$/.exec(route);
  return (
    <>
      <header>
        <h1>
          <a href="#/">tx-tracker</a>
        </h1>
        <Health />
      </header>
      <main>
        {match ? (
          <TrackerView id={decodeURIComponent(match[1]!)} />
        ) : (
          <>
            <Counts filter={filter} setFilter={setFilter} />
            <TrackerTable filter={filter} setFilter={setFilter} />
            <SupervisorPanel />
          </>
        )}
      </main>
    </>
  );
}

type Phase = 'loading' | 'token' | 'retry' | 'ready' | 'error';

/** The server marks its page when it wants a token (`API_TOKEN`): asked before any request. */
const needsToken = document.documentElement.dataset.auth === 'bearer';

function App() {
  const [phase, setPhase] = useState<Phase>(needsToken && !token.get() ? 'token' : 'loading');
  const [error, setError] = useState('');
  const [session, setSession] = useState(0);

  useEffect(() => {
    whenUnauthorized(() => setPhase(token.get() ? 'retry' : 'token'));
  }, []);

  useEffect(() => {
    if (phase === 'token') return;
    let stop: (() => void) | undefined;
    let poll: ReturnType<typeof setInterval> | undefined;
    let live = true;
    // Where the stream starts, taken before any view reads anything: whatever changes between a
    // view's read and the stream opening is replayed, however long the stream takes to open.
    // A store that cannot answer now leaves it fresh: the page still starts.
    Promise.all([api<MachinesResponse>('GET', '/machines'), currentEventId().catch(() => undefined)]).then(
      ([body, after]) => {
        if (!live) return;
        machines.set(body);
        setPhase('ready');
        refreshChains();
        refreshSupervision();
        stop = streamEvents(
          {
            tracker: (data, eventId) => {
              trackerChanged(data as Tracker, eventId);
              refreshChains();
              refreshSupervision();
            },
            head: (data) => headMoved(data as { blockNumber: number; chain: number }),
            gap: () => resync.set(resync.get() + 1),
            status: (up) => connected.set(up),
          },
          after,
        );
        // Lag, RPC and store health change without any tracker change.
        poll = setInterval(() => {
          refreshChains();
          refreshSupervision();
        }, 5000);
      },
      (failure: unknown) => {
        if (failure instanceof Unauthorized) return;
        setError((failure as Error).message);
        setPhase('error');
      },
    );
    return () => {
      live = false;
      stop?.();
      clearInterval(poll);
    };
  }, [session]);

  if (phase === 'token' || phase === 'retry')
    return (
      <TokenForm
        retry={phase === 'retry'}
        onDone={() => {
          setPhase('loading');
          setSession(session + 1);
        }}
      />
    );
  if (phase === 'error')
    return (
      <main>
        <h1>tx-tracker</h1>
        <p role="alert">The dashboard could not start: {error}</p>
      </main>
    );
  if (phase === 'loading')
    return (
      <main>
        <h1>tx-tracker</h1>
        <p class="muted">Loading…</p>
      </main>
    );
  return <Dashboard />;
}

render(<App />, document.getElementById('app')!);
