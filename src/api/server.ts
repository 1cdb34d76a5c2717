import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import express, { type RequestHandler, Router } from 'express';
import type { TrackerSystem } from '../runtime/system.js';
import { type Logger, silentLogger } from '../runtime/logger.js';
import { clientErrorResponse, errorHandler, notFoundHandler } from './errors.js';
import { type DashboardAssets, dashboardRoutes } from './dashboard.js';
import { INSPECT_PAGE, type Inspection } from './inspector.js';
import { machineRouteDocs, machineRoutes } from './machines.routes.js';
import { type MetricsSources, createMetrics } from './metrics.js';
import { bearerAuth, refuseWhile, requestBookkeeping, requestContext, tokenMatcher } from './middleware.js';
import { BODY_LIMIT, fastPath } from './fast-path.js';
import { type RouteDoc, buildOpenApi } from './openapi.js';
import { type ChainHealthSource, type RpcStatus, chainRouteDocs, chainRoutes } from './chains.routes.js';
import { ChangeFeed, type ChangeFeedOptions } from './sse.js';
import { trackerRouteDocs, trackerRoutes } from './trackers.routes.js';
import type { SnapshotStore } from '../store/types.js';
import type { WebhookDispatcher } from '../webhooks/dispatcher.js';
import type { AllowList } from '../webhooks/ssrf.js';
import { webhookRouteDocs, webhookRoutes } from './webhooks.routes.js';

export interface Readiness {
  store: boolean;
  /** At least one chain follows its node. */
  chain: boolean;
  /** Each chain's RPC health, by name (when the service follows chains). */
  chains?: Record<string, RpcStatus>;
}

export interface ServerOptions {
  system: TrackerSystem;
  port: number;
  host?: string;
  /** When set, every route but /healthz and /readyz needs `Authorization: Bearer <apiToken>`. */
  apiToken?: string | undefined;
  /** Whether CRASH goes through (the system decides; `GET /machines` tells clients such as the page). */
  faultInjection?: boolean;
  /** The dashboard's files (`buildDashboard`), served at `/`; undefined until built, an Error if the build failed. No option: no page. */
  dashboard?: () => DashboardAssets | Error | undefined;
  logger?: Logger;
  /** Store and chain reachability; default: a store read, and no chain (reported reachable). */
  readiness?: () => Promise<Readiness>;
  metricsSources?: MetricsSources;
  /** Each chain's watcher health, for `GET /chains` (default: none; chains show as ok). */
  chainHealth?: ChainHealthSource;
  /** The live actor system view served at /inspect (see `createInspection`). */
  inspection?: Inspection | undefined;
  sse?: ChangeFeedOptions;
  /**
   * The webhook routes, on the store's webhook tables (`store.webhooks`); without it, or with a
   * store that has none, there are no /webhooks routes. The dispatcher, when given, is woken by a
   * retry and counted in `/metrics`.
   */
  webhooks?: { allow: AllowList; dispatcher?: WebhookDispatcher | undefined };
  /** How long `close()` waits for in-flight requests before cutting connections (default 10 s). */
  closeTimeoutMs?: number;
  /** This instance's part in a cluster, for `GET /cluster` (unset: a single instance, 404). */
  cluster?: () => object;
}

export interface RunningServer {
  url: string;
  port: number;
  /** Stop accepting, end SSE streams, let in-flight requests finish (bounded), close. */
  close(): Promise<void>;
}

/** Open without the token: probes, and the inspector page and dashboard (static; they send the token themselves). */
const OPEN_PATHS = ['/healthz', '/readyz', '/inspect/ui'];
/** The paths Express could match to an open route (any case, one trailing slash). */
const OPEN_PATH_CANDIDATE = /^\/(?:healthz|readyz|inspect\/ui)\/?$/i;
/** The paths Express could match to the dashboard's routes (`/`, `/ui/:file`). */
const DASHBOARD_PATH_CANDIDATE = /^\/(?:ui\/[^/]+\/?)?$/i;

const opsDocs: RouteDoc[] = [
  {
    method: 'get',
    path: '/healthz',
    summary: 'The process is up',
    responses: { 200: { description: '{"status":"ok"}' } },
  },
  {
    method: 'get',
    path: '/readyz',
    summary: 'The store is reachable and at least one chain follows its node; each chain listed',
    responses: {
      200: { description: 'Ready', schema: 'Readiness' },
      503: { description: 'not_ready', schema: 'Error' },
    },
  },
  {
    method: 'get',
    path: '/metrics',
    summary: 'Prometheus metrics',
    responses: { 200: { description: 'text exposition', contentType: 'text/plain' } },
  },
  {
    method: 'get',
    path: '/events',
    summary:
      'Server-Sent Events: one per tracker change (id: global, increasing; ?id= one tracker; Last-Event-ID replay)',
    responses: {
      200: { description: 'event stream', contentType: 'text/event-stream' },
      400: { description: 'invalid_last_event_id, invalid_id', schema: 'Error' },
      503: { description: 'too_many_streams: SSE_MAX_CLIENTS streams are open (Retry-After)', schema: 'Error' },
    },
  },
  {
    method: 'get',
    path: '/openapi.json',
    summary: 'This document',
    responses: { 200: { description: 'OpenAPI 3.1' } },
  },
  {
    method: 'get',
    path: '/cluster',
    summary: 'This instance in a cluster (DATABASE_URL postgres://): its id, shards held, live instances',
    responses: {
      200: { description: 'instanceId, instances, share, shards, liveShards, live' },
      404: { description: 'cluster_disabled: a single instance', schema: 'Error' },
    },
  },
  {
    method: 'get',
    path: '/inspect',
    summary: 'The live actor system (with INSPECT set)',
    responses: {
      200: { description: 'actors and recent inspection events' },
      404: { description: 'INSPECT is not set', schema: 'Error' },
    },
  },
];

/** OPTIONS: 204 with the route's methods in `Allow` (Express would answer text), 404 JSON for no route. */
function optionsHandler(docs: readonly RouteDoc[]): RequestHandler {
  const routes = docs.map((doc) => ({
    // Case-insensitive, as Express routes.
    pattern: new RegExp(`^${doc.path.replace(/\{[^}]+\}/g, '[^/]+')}$`, 'i'),
    method: doc.method.toUpperCase(),
  }));
  return (req, res, next) => {
    const path = req.path.length > 1 ? req.path.replace(/\/+$/, '') : req.path; // Express ignores a trailing slash
    const methods = routes.filter((route) => route.pattern.test(path)).map((route) => route.method);
    if (methods.length === 0) return notFoundHandler(req, res, next);
    res
      .set('Allow', [...new Set([...methods, 'OPTIONS'])].join(', '))
      .status(204)
      .end();
  };
}

/**
 * Whether the store answers a read (the `/readyz` store check).
 *
 * @example
 * const ok = await storeIsReachable(system.store);
 */
export function storeIsReachable(store: SnapshotStore): Promise<boolean> {
  if (store.reachable) return store.reachable();
  return store.get('readyz-probe').then(
    () => true,
    () => false,
  );
}

async function defaultReadiness(system: TrackerSystem): Promise<Readiness> {
  return { store: await storeIsReachable(system.store), chain: true };
}

/**
 * Serve the tracker system over HTTP on `port` (0: a free one). Resolves once listening.
 *
 * @example
 * const server = await startServer({ system, port: 0 });
 * await fetch(`${server.url}/trackers/txn_01dp371w0fnjhf9z2tjebx4vr4`);
 * await server.close();
 */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const { system } = options;
  const logger = options.logger ?? silentLogger;
  let closing = false;

  const feed = new ChangeFeed(system, options.sse);
  const webhookStore = options.webhooks ? system.store.webhooks : undefined;
  const dispatcher = options.webhooks?.dispatcher;
  const metrics = createMetrics(system, options.metricsSources ?? {}, {
    sse: () => feed.stats(),
    ...(webhookStore ? { webhooks: { store: webhookStore, dispatcher } } : {}),
  });
  const routeDocs = [
    ...trackerRouteDocs,
    ...chainRouteDocs,
    ...machineRouteDocs,
    ...(webhookStore ? webhookRouteDocs : []),
    ...opsDocs,
  ];
  const openapi = buildOpenApi(routeDocs, { auth: Boolean(options.apiToken) });
  const readiness = options.readiness ?? (() => defaultReadiness(system));

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');
  // Sockets with a request in flight, and its response; the others may be closed at once when
  // closing (Node's closeIdleConnections skips connections that never carried a request).
  const busy = new Map<Socket, ServerResponse>();
  const begin = requestBookkeeping(logger, metrics, (req, res) => {
    if (busy.get(req.socket) === res) busy.delete(req.socket);
  });
  app.use(requestContext(begin));
  app.use(refuseWhile(() => closing));
  // The open routes come before the token check, so Express's own matching (any case, one trailing
  // slash) decides what is open, the same way it decides which handler runs.
  const open = Router();
  open.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  open.get('/readyz', async (_req, res) => {
    const checks = await readiness().catch(() => ({ store: false, chain: false }));
    if (checks.store && checks.chain && !closing) {
      res.json({ status: 'ready', checks });
      return;
    }
    const down = (['store', 'chain'] as const).filter((name) => !checks[name]);
    res
      .status(503)
      .json({ error: { code: 'not_ready', message: `not reachable: ${down.join(', ') || 'shutting down'}` }, checks });
  });
  open.get('/inspect/ui', (_req, res) => {
    res.type('html').send(INSPECT_PAGE);
  });
  open.options(OPEN_PATHS, optionsHandler(routeDocs));
  // Only a path they could match goes through them: other requests are not matched against each.
  app.use((req, res, next) => (OPEN_PATH_CANDIDATE.test(req.path) ? open(req, res, next) : next()));
  if (options.dashboard) {
    const dashboard = dashboardRoutes(options.dashboard, { auth: Boolean(options.apiToken) });
    app.use((req, res, next) => (DASHBOARD_PATH_CANDIDATE.test(req.path) ? dashboard(req, res, next) : next()));
  }
  if (options.apiToken) app.use(bearerAuth(options.apiToken));
  // Any content type is read as JSON: clients that forget the header still get precise errors.
  app.use(express.json({ limit: BODY_LIMIT, type: () => true, strict: false }));

  // Before any router: a router answers OPTIONS for its own paths in text.
  const options204 = optionsHandler(routeDocs);
  app.use((req, res, next) => (req.method === 'OPTIONS' ? options204(req, res, next) : next()));
  // The tracker routes carry the traffic: they come before the operations routes, so that a
  // tracker request is not matched against each of those first.
  app.use(trackerRoutes(system, () => feed.lastEventId));
  app.use(chainRoutes(system, options.chainHealth));
  app.get('/metrics', async (_req, res) => {
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  app.get('/openapi.json', (_req, res) => {
    res.json(openapi);
  });
  app.get('/events', feed.handler());
  app.get('/cluster', (_req, res) => {
    if (!options.cluster) {
      res
        .status(404)
        .json({ error: { code: 'cluster_disabled', message: 'a single instance (DATABASE_URL is not postgres://)' } });
      return;
    }
    res.json(options.cluster());
  });
  app.get('/inspect', (_req, res) => {
    if (!options.inspection) {
      res.status(404).json({ error: { code: 'inspect_disabled', message: 'start the server with INSPECT set' } });
      return;
    }
    res.json(options.inspection.view());
  });
  app.use(machineRoutes(system, { faultInjection: options.faultInjection ?? false }));
  if (webhookStore) {
    app.use(
      webhookRoutes({
        store: webhookStore,
        allow: options.webhooks!.allow,
        ...(dispatcher ? { wake: () => dispatcher.wake() } : {}),
      }),
    );
  }
  app.use(notFoundHandler);
  app.use(errorHandler(logger));

  const fast = fastPath({
    system,
    logger,
    begin,
    closing: () => closing,
    authorized: options.apiToken ? tokenMatcher(options.apiToken) : undefined,
  });
  const server = createServer((req, res) => {
    if (!fast(req, res)) void app(req, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.keepAliveTimeout = 5_000;
  const sockets = new Set<Socket>();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => {
      sockets.delete(socket);
      busy.delete(socket);
    });
  });
  // Out of `busy` when its response finishes (requestContext), or when its socket closes.
  server.on('request', (req: IncomingMessage, res: ServerResponse) => busy.set(req.socket, res));
  // Requests Node's parser rejects never reach Express: answer them with the same JSON errors.
  server.on('clientError', (error: Error & { code?: string }, socket: Socket) => {
    logger.debug({ err: error, code: error.code }, 'unparsable request');
    const inFlight = busy.get(socket);
    // Like Node's own answer: never into a response that has started, nor on a connection gone.
    if (error.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent) {
      socket.destroy();
      return;
    }
    socket.end(clientErrorResponse(error), () => socket.destroy());
  });
  const closeIdle = () => {
    for (const socket of sockets) if (!busy.has(socket)) socket.destroy();
  };

  const { port } = server.address() as AddressInfo;
  const host = options.host ?? '127.0.0.1';
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  let closed: Promise<void> | undefined;

  return {
    url,
    port,
    close() {
      closed ??= (async () => {
        closing = true;
        feed.close();
        metrics.close();
        const done = new Promise<void>((resolve) => server.close(() => resolve()));
        // Keep-alive connections go idle as their in-flight requests finish: close them as they do.
        closeIdle();
        const sweeper = setInterval(closeIdle, 50);
        void done.then(() => clearInterval(sweeper));
        const timeout = new Promise<'timeout'>((resolve) =>
          setTimeout(() => resolve('timeout'), options.closeTimeoutMs ?? 10_000).unref(),
        );
        if ((await Promise.race([done, timeout])) === 'timeout') {
          logger.warn({ open: sockets.size }, 'in-flight requests did not finish in time; closing their connections');
          server.closeAllConnections();
          await done;
        }
        clearInterval(sweeper);
      })();
      return closed;
    },
  };
}

/**
 * Stop a server started by `startServer` (the same as `server.close()`).
 *
 * @example
 * afterAll(() => stopServer(server));
 */
export function stopServer(server: RunningServer): Promise<void> {
  return server.close();
}
