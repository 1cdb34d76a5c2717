import { WebhookDispatcher, type DispatcherOptions } from '../../src/webhooks/dispatcher.js';
import { parseAllowList } from '../../src/webhooks/ssrf.js';
import { hashOf, startTestApi, type TestApi } from './api.js';

export interface WebhookApi extends TestApi {
  dispatcher: WebhookDispatcher;
  /** Start a tracker (its creation is a change: a `tracker.state_changed` delivery). */
  startTracker(n: number, id?: string): Promise<void>;
}

/**
 * The API on a real SQLite file with the webhook routes and a dispatcher on its store; the API
 * allows `allow` (default 127.0.0.1), the dispatcher `dispatcher.allow` if given.
 */
export async function startWebhookApi(
  options: { allow?: string; dispatcher?: Partial<Omit<DispatcherOptions, 'store'>>; databaseUrl?: string } = {},
): Promise<WebhookApi> {
  const allow = parseAllowList(options.allow ?? '127.0.0.1');
  let dispatcher: WebhookDispatcher | undefined;
  const api = await startTestApi({
    ...(options.databaseUrl ? { databaseUrl: options.databaseUrl } : {}),
    onStore: (store) => {
      dispatcher = new WebhookDispatcher({
        store: store.webhooks!,
        allow,
        retryScheduleMs: [0, 50, 100],
        pollMs: 20,
        ...options.dispatcher,
      });
    },
    server: {
      get webhooks() {
        return { allow, dispatcher };
      },
    },
  });
  dispatcher!.start();
  return {
    ...api,
    dispatcher: dispatcher!,
    async startTracker(n, id) {
      const res = await api.call('POST', '/trackers', { txHash: hashOf(n), ...(id ? { id } : {}) });
      if (res.status !== 201) throw new Error(`POST /trackers: ${res.status} ${res.text}`);
    },
    async stop() {
      await dispatcher!.stop();
      await api.stop();
    },
  };
}
