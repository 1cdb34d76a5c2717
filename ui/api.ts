import type { TrackerHistoryEntry, TrackerHistoryPage } from './types.js';

const TOKEN_KEY = 'tx-tracker-token';

/** The API token for this tab (sessionStorage: gone when the tab closes). */
export const token = {
  get: (): string | null => sessionStorage.getItem(TOKEN_KEY),
  set: (value: string): void => sessionStorage.setItem(TOKEN_KEY, value),
  clear: (): void => sessionStorage.removeItem(TOKEN_KEY),
};

/** The server wants a (valid) token: the page asks for one. */
export class Unauthorized extends Error {
  override name = 'Unauthorized';
}

/** An API error answer, with its code and message. */
export class ApiFailure extends Error {
  override name = 'ApiFailure';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function headers(extra: Record<string, string> = {}): Record<string, string> {
  const value = token.get();
  return value ? { ...extra, authorization: `Bearer ${value}` } : extra;
}

let onUnauthorized: () => void = () => {};
/** Called whenever the server answers 401, so that the page asks for the token again. */
export function whenUnauthorized(callback: () => void): void {
  onUnauthorized = callback;
}

/** A JSON request to this server (never another host), with the token when there is one. */
export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(path, {
    method,
    headers: headers(body === undefined ? {} : { 'content-type': 'application/json' }),
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (res.status === 401) {
    onUnauthorized();
    throw new Unauthorized('the API token is missing or wrong');
  }
  if (!res.ok) {
    const error = (json as { error?: { code?: string; message?: string } } | undefined)?.error;
    throw new ApiFailure(res.status, error?.code ?? `http_${res.status}`, error?.message ?? text.slice(0, 200));
  }
  return json as T;
}

/**
 * The id of the newest change on `GET /events` now: every read made after this reflects the changes
 * up to it, and a stream started after it gives every later one.
 */
export async function currentEventId(): Promise<number> {
  return (await api<{ eventId: number }>('GET', '/trackers?limit=1')).eventId;
}

/** A tracker's whole change log, oldest first (a few pages at most: tens of changes each). */
export async function trackerHistory(id: string): Promise<TrackerHistoryEntry[]> {
  const entries: TrackerHistoryEntry[] = [];
  let cursor: string | null = null;
  do {
    const query: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : '';
    const page: TrackerHistoryPage = await api<TrackerHistoryPage>(
      'GET',
      `/trackers/${encodeURIComponent(id)}/history?limit=1000${query}`,
    );
    entries.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor);
  return entries;
}

export interface StreamHandlers {
  /** A tracker change, with its event id (ids grow with every change). */
  tracker(data: unknown, eventId: number): void;
  head(data: unknown): void;
  /** Changes were missed (the server no longer keeps them): re-read what is shown. */
  gap(): void;
  status(connected: boolean): void;
}

/**
 * `GET /events` read with fetch and a stream reader, since EventSource cannot send the
 * Authorization header. Starts after `after` (an `eventId` from `GET /trackers`): the changes made
 * since that read come first, however late the stream opens. Reconnects with Last-Event-ID after a
 * drop. Returns a stop function.
 */
export function streamEvents(handlers: StreamHandlers, after?: number): () => void {
  let lastEventId: string | undefined = after === undefined ? undefined : String(after);
  let stopped = false;
  let controller: AbortController | undefined;
  let retryMs = 2000;

  const dispatch = (frame: string): void => {
    let event = 'message';
    let data = '';
    for (const line of frame.split('\n')) {
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'id') lastEventId = value;
      else if (field === 'event') event = value;
      else if (field === 'data') data += (data ? '\n' : '') + value;
      else if (field === 'retry' && /^\d+$/.test(value)) retryMs = Number(value);
    }
    if (event === 'gap') handlers.gap();
    else if (data && event === 'tracker') handlers.tracker(JSON.parse(data), Number(lastEventId));
    else if (data && event === 'head') handlers.head(JSON.parse(data));
  };

  const connect = async (): Promise<void> => {
    controller = new AbortController();
    try {
      const res = await fetch('/events', {
        headers: headers(lastEventId ? { 'last-event-id': lastEventId } : {}),
        signal: controller.signal,
      });
      if (res.status === 401) {
        onUnauthorized();
        return;
      }
      if (!res.ok || !res.body) throw new Error(`GET /events: ${res.status}`);
      handlers.status(true);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, '\n');
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          dispatch(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch (error) {
      if (stopped) return;
      console.warn('event stream interrupted', error);
    }
    handlers.status(false);
    if (!stopped) setTimeout(() => void connect(), retryMs);
  };
  void connect();
  return () => {
    stopped = true;
    controller?.abort();
  };
}
