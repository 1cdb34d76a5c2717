import { z } from 'zod';
import { TRACKER_ID_PATTERN } from '../../machines/tracker.machine.js';
import { DELIVERY_STATUSES, WEBHOOK_EVENT_TYPES } from '../webhooks/types.js';
import { apiSchemas } from './schemas.js';

const EventType = z.enum(WEBHOOK_EVENT_TYPES);
/** A tracker id, or an id prefix followed by `*` (`order-*`; `*` alone: every tracker). */
const TrackerFilter = z
  .string()
  .refine(
    (v) => v === '*' || TRACKER_ID_PATTERN.test(v.endsWith('*') ? v.slice(0, -1) : v),
    'must be a tracker id, or an id prefix followed by *',
  );
const Url = z
  .string()
  .min(1)
  .max(2048)
  .describe('http(s) URL; private and loopback addresses need WEBHOOK_ALLOW_HOSTS');
const Events = z
  .array(EventType)
  .min(1)
  .describe(
    'Event types to receive; default: tracker.state_changed and tracker.stuck (tracker.updated is every head-only change)',
  );
const Trackers = z
  .array(TrackerFilter)
  .min(1)
  .max(1000)
  .describe('Tracker ids, or prefixes ending in *; default (or null): every tracker');

const Concurrency = z
  .number()
  .int()
  .min(1)
  .max(1000)
  .describe("Requests in flight to this endpoint at most; null: the service's WEBHOOK_CONCURRENCY");
const TimeoutMs = z
  .number()
  .int()
  .min(100)
  .max(600_000)
  .describe("One attempt, connection to last byte read (ms); null: the service's WEBHOOK_TIMEOUT_MS");

export const CreateWebhookBody = z
  .object({
    url: Url,
    events: Events.optional(),
    trackers: Trackers.nullable().optional(),
    concurrency: Concurrency.nullable().optional(),
    timeoutMs: TimeoutMs.nullable().optional(),
  })
  .strict();
export type CreateWebhookBody = z.infer<typeof CreateWebhookBody>;
apiSchemas.add(CreateWebhookBody, { id: 'CreateWebhookBody' });

export const MAX_SECRET_OVERLAP_SECONDS = 7 * 24 * 3600;
export const UpdateWebhookBody = z
  .object({
    url: Url.optional(),
    events: Events.optional(),
    trackers: Trackers.nullable().optional(),
    concurrency: Concurrency.nullable().optional(),
    timeoutMs: TimeoutMs.nullable().optional(),
    enabled: z.boolean().optional().describe('true enables a disabled endpoint again (and clears why it was disabled)'),
    rotateSecret: z
      .boolean()
      .optional()
      .describe('A new signing secret, answered once; the old one signs too until it expires'),
    previousSecretExpiresIn: z
      .number()
      .int()
      .min(0)
      .max(MAX_SECRET_OVERLAP_SECONDS)
      .optional()
      .describe('With rotateSecret: seconds the old secret still signs (default 86400)'),
  })
  .strict()
  .refine((body) => Object.keys(body).length > 0, 'give at least one field to change');
export type UpdateWebhookBody = z.infer<typeof UpdateWebhookBody>;
apiSchemas.add(UpdateWebhookBody, { id: 'UpdateWebhookBody' });

export const DeliveriesQuery = z
  .object({
    status: z.enum(DELIVERY_STATUSES).optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
    cursor: z
      .string()
      .regex(/^\d{1,16}$/)
      .optional(),
  })
  .strict();

export const WebhookEndpointJson = z.object({
  id: z.string(),
  url: z.string(),
  events: z.array(EventType),
  trackers: z.array(z.string()).nullable(),
  enabled: z.boolean(),
  disabledReason: z.string().nullable().describe('Why it was disabled: 410 Gone, or failing for days'),
  failingSince: z.iso.datetime().nullable().describe('First failed attempt since the last success'),
  previousSecretExpiresAt: z.iso.datetime().nullable().describe('While a rotated-out secret still signs'),
  secret: z.string().optional().describe('whsec_…: only in the answer that creates it'),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
});
apiSchemas.add(WebhookEndpointJson, { id: 'WebhookEndpoint' });
apiSchemas.add(z.object({ items: z.array(WebhookEndpointJson) }), { id: 'WebhookEndpointList' });

export const WebhookDeliveryJson = z.object({
  id: z.string(),
  webhookId: z.string().describe('The webhook-id header: the same on every attempt'),
  type: EventType,
  trackerId: z.string(),
  seq: z.number().int().describe('The change-log row it announces'),
  status: z.enum(DELIVERY_STATUSES),
  attempts: z.array(
    z.object({
      attempt: z.number().int(),
      at: z.iso.datetime(),
      statusCode: z.number().int().nullable(),
      latencyMs: z.number().int(),
      error: z.string().nullable(),
    }),
  ),
  nextAttemptAt: z.iso.datetime().nullable(),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
});
apiSchemas.add(WebhookDeliveryJson, { id: 'WebhookDelivery' });
apiSchemas.add(z.object({ items: z.array(WebhookDeliveryJson), nextCursor: z.string().nullable() }), {
  id: 'WebhookDeliveryPage',
});
