import { randomBytes } from 'node:crypto';
import { Router } from 'express';
import { TX_HASH_PATTERN } from '../../machines/tracker.machine.js';
import { messageIdOf } from '../webhooks/dispatcher.js';
import { type AllowList, WebhookUrlError, checkWebhookUrl } from '../webhooks/ssrf.js';
import {
  DEFAULT_EVENT_TYPES,
  type WebhookAttempt,
  type WebhookDelivery,
  type WebhookEndpoint,
  type WebhookStore,
} from '../webhooks/types.js';
import { ApiError, fromZodError } from './errors.js';
import type { RouteDoc } from './openapi.js';
import { CreateWebhookBody, DeliveriesQuery, UpdateWebhookBody } from './webhook-schemas.js';

const err = (description: string) => ({ description, schema: 'Error' });
const idParam = ['id'];

/** `/openapi.json` entries of the routes below. */
export const webhookRouteDocs: RouteDoc[] = [
  {
    method: 'post',
    path: '/webhooks',
    summary: 'Add an endpoint; the answer carries its signing secret, shown this once',
    body: 'CreateWebhookBody',
    responses: {
      201: { description: 'Created, with secret', schema: 'WebhookEndpoint' },
      400: err('invalid_body, invalid_url, forbidden_address (loopback/private/link-local), unresolvable_host'),
    },
  },
  {
    method: 'get',
    path: '/webhooks',
    summary: 'Every endpoint (without secrets)',
    responses: { 200: { description: 'Endpoints', schema: 'WebhookEndpointList' } },
  },
  {
    method: 'get',
    path: '/webhooks/{id}',
    summary: 'One endpoint',
    pathParams: idParam,
    responses: { 200: { description: 'The endpoint', schema: 'WebhookEndpoint' }, 404: err('not_found') },
  },
  {
    method: 'patch',
    path: '/webhooks/{id}',
    summary: 'Change url, filters, enabled; rotate the secret (the new one is answered once)',
    pathParams: idParam,
    body: 'UpdateWebhookBody',
    responses: {
      200: { description: 'The endpoint (with secret after a rotation)', schema: 'WebhookEndpoint' },
      400: err('invalid_body, invalid_url, forbidden_address, unresolvable_host'),
      404: err('not_found'),
    },
  },
  {
    method: 'delete',
    path: '/webhooks/{id}',
    summary: 'Remove an endpoint and its deliveries',
    pathParams: idParam,
    responses: { 204: { description: 'Removed' }, 404: err('not_found') },
  },
  {
    method: 'get',
    path: '/webhooks/{id}/deliveries',
    summary: "An endpoint's deliveries, newest first, each with its attempts",
    pathParams: idParam,
    query: DeliveriesQuery,
    responses: {
      200: { description: 'A page', schema: 'WebhookDeliveryPage' },
      400: err('invalid_query'),
      404: err('not_found'),
    },
  },
  {
    method: 'post',
    path: '/webhooks/{id}/deliveries/{deliveryId}/retry',
    summary: 'Send a delivery again (a failed one gets a new schedule)',
    pathParams: ['id', 'deliveryId'],
    responses: {
      202: { description: 'Pending again', schema: 'WebhookDelivery' },
      404: err('not_found'),
      409: err('endpoint_disabled: enable it first'),
    },
  },
];

export interface WebhookRoutesOptions {
  store: WebhookStore;
  allow: AllowList;
  /** Look at the outbox now (after a retry or an enable). */
  wake?: () => void;
  /** How long a rotated-out secret still signs by default (24 h). */
  secretOverlapMs?: number;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
const newSecret = (): string => `whsec_${randomBytes(24).toString('base64')}`;
const newId = (): string => `ep_${randomBytes(12).toString('hex')}`;

function endpointJson(endpoint: WebhookEndpoint, secret?: string) {
  const now = Date.now();
  const previous = endpoint.secrets
    .slice(1)
    .map((s) => s.expiresAt ?? 0)
    .filter((at) => at > now);
  return {
    id: endpoint.id,
    url: endpoint.url,
    events: endpoint.events,
    trackers: endpoint.trackers,
    enabled: endpoint.enabled,
    disabledReason: endpoint.disabledReason,
    failingSince: iso(endpoint.failingSince),
    concurrency: endpoint.concurrency,
    timeoutMs: endpoint.timeoutMs,
    previousSecretExpiresAt: previous.length > 0 ? iso(Math.max(...previous)) : null,
    ...(secret ? { secret } : {}),
    createdAt: iso(endpoint.createdAt)!,
    updatedAt: iso(endpoint.updatedAt)!,
  };
}

function deliveryJson(delivery: WebhookDelivery & { attemptLog?: WebhookAttempt[] }) {
  return {
    id: String(delivery.id),
    webhookId: messageIdOf(delivery),
    type: delivery.type,
    trackerId: delivery.trackerId,
    seq: delivery.seq,
    status: delivery.status,
    attempts: (delivery.attemptLog ?? []).map((a) => ({ ...a, at: iso(a.at)! })),
    nextAttemptAt: delivery.status === 'pending' ? iso(delivery.nextAttemptAt) : null,
    createdAt: iso(delivery.createdAt)!,
    updatedAt: iso(delivery.updatedAt)!,
  };
}

/** Ids that look like a hash match lower-cased, as trackers' ids do (prefixes too). */
const normalizeFilter = (entries: readonly string[] | null | undefined): string[] | null =>
  entries
    ? entries.map((e) =>
        /^(\d+:)?0x/i.test(e) && (e.endsWith('*') || TX_HASH_PATTERN.test(e.replace(/^\d+:/, '')))
          ? e.toLowerCase()
          : e,
      )
    : null;

async function checkedUrl(url: string, allow: AllowList): Promise<string> {
  try {
    return (await checkWebhookUrl(url, allow)).href;
  } catch (error) {
    if (error instanceof WebhookUrlError) throw new ApiError(400, error.code, error.message);
    throw error;
  }
}

/**
 * The webhook routes: endpoints (with their signing secrets), their deliveries, a manual retry.
 *
 * @example
 * app.use(webhookRoutes({ store: store.webhooks, allow: parseAllowList('127.0.0.1'), wake: () => dispatcher.wake() }));
 */
export function webhookRoutes(options: WebhookRoutesOptions): Router {
  const { store, allow } = options;
  const router = Router();
  const found = async (id: string): Promise<WebhookEndpoint> => {
    const endpoint = await store.getEndpoint(id);
    if (!endpoint) throw new ApiError(404, 'not_found', `no webhook endpoint ${id.slice(0, 64)}`);
    return endpoint;
  };

  router.post('/webhooks', async (req, res) => {
    const parsed = CreateWebhookBody.safeParse(req.body);
    if (!parsed.success) throw fromZodError(parsed.error, 'invalid_body');
    const url = await checkedUrl(parsed.data.url, allow);
    const now = Date.now();
    const secret = newSecret();
    const endpoint: WebhookEndpoint = {
      id: newId(),
      url,
      events: [...new Set(parsed.data.events ?? DEFAULT_EVENT_TYPES)],
      trackers: normalizeFilter(parsed.data.trackers),
      secrets: [{ secret, expiresAt: null }],
      enabled: true,
      disabledReason: null,
      failingSince: null,
      concurrency: parsed.data.concurrency ?? null,
      timeoutMs: parsed.data.timeoutMs ?? null,
      createdAt: now,
      updatedAt: now,
    };
    await store.createEndpoint(endpoint);
    options.wake?.();
    res.status(201).json(endpointJson(endpoint, secret));
  });

  router.get('/webhooks', async (_req, res) => {
    res.json({ items: (await store.listEndpoints()).map((e) => endpointJson(e)) });
  });

  router.get('/webhooks/:id', async (req, res) => {
    res.json(endpointJson(await found(req.params.id)));
  });

  router.patch('/webhooks/:id', async (req, res) => {
    const endpoint = await found(req.params.id);
    const parsed = UpdateWebhookBody.safeParse(req.body);
    if (!parsed.success) throw fromZodError(parsed.error, 'invalid_body');
    const body = parsed.data;
    if (body.previousSecretExpiresIn !== undefined && !body.rotateSecret) {
      throw new ApiError(400, 'invalid_body', 'previousSecretExpiresIn goes with rotateSecret: true');
    }
    const now = Date.now();
    if (body.url !== undefined) endpoint.url = await checkedUrl(body.url, allow);
    if (body.events !== undefined) endpoint.events = [...new Set(body.events)];
    if (body.trackers !== undefined) endpoint.trackers = normalizeFilter(body.trackers);
    if (body.concurrency !== undefined) endpoint.concurrency = body.concurrency;
    if (body.timeoutMs !== undefined) endpoint.timeoutMs = body.timeoutMs;
    if (body.enabled !== undefined) {
      endpoint.enabled = body.enabled;
      if (body.enabled) {
        endpoint.disabledReason = null;
        endpoint.failingSince = null;
      } else endpoint.disabledReason = 'disabled by PATCH';
    }
    let secret: string | undefined;
    if (body.rotateSecret) {
      secret = newSecret();
      const overlapMs =
        body.previousSecretExpiresIn !== undefined
          ? body.previousSecretExpiresIn * 1000
          : (options.secretOverlapMs ?? 86_400_000);
      const previous = endpoint.secrets
        .map((s) => ({ secret: s.secret, expiresAt: s.expiresAt ?? now + overlapMs }))
        .filter((s) => s.expiresAt > now);
      endpoint.secrets = [{ secret, expiresAt: null }, ...previous];
    }
    endpoint.updatedAt = now;
    await store.updateEndpoint(endpoint);
    options.wake?.();
    res.json(endpointJson(endpoint, secret));
  });

  router.delete('/webhooks/:id', async (req, res) => {
    if (!(await store.deleteEndpoint(req.params.id))) {
      throw new ApiError(404, 'not_found', `no webhook endpoint ${req.params.id.slice(0, 64)}`);
    }
    options.wake?.();
    res.status(204).end();
  });

  router.get('/webhooks/:id/deliveries', async (req, res) => {
    const endpoint = await found(req.params.id);
    const parsed = DeliveriesQuery.safeParse(req.query);
    if (!parsed.success) throw fromZodError(parsed.error, 'invalid_query');
    const { status, limit, cursor } = parsed.data;
    const page = await store.listDeliveries(endpoint.id, {
      limit,
      ...(status ? { status } : {}),
      ...(cursor ? { cursor } : {}),
    });
    res.json({ items: page.items.map(deliveryJson), nextCursor: page.nextCursor });
  });

  router.post('/webhooks/:id/deliveries/:deliveryId/retry', async (req, res) => {
    const endpoint = await found(req.params.id);
    const deliveryId = /^\d{1,16}$/.test(req.params.deliveryId) ? Number(req.params.deliveryId) : undefined;
    const delivery = deliveryId === undefined ? undefined : await store.getDelivery(endpoint.id, deliveryId);
    if (!delivery)
      throw new ApiError(
        404,
        'not_found',
        `endpoint ${endpoint.id} has no delivery ${req.params.deliveryId.slice(0, 32)}`,
      );
    if (!endpoint.enabled) {
      throw new ApiError(
        409,
        'endpoint_disabled',
        `endpoint ${endpoint.id} is disabled (${endpoint.disabledReason ?? 'by PATCH'}); enable it first`,
      );
    }
    const now = Date.now();
    await store.retryDelivery(delivery.id, now);
    options.wake?.();
    res
      .status(202)
      .json(deliveryJson({ ...delivery, status: 'pending', tries: 0, nextAttemptAt: now, updatedAt: now }));
  });

  return router;
}
