import { Router } from 'express';
import { TRACKER_EVENT_TYPES } from '../../machines/tracker.machine.js';
import { InvalidInputError } from '../errors.js';
import type { StartManyResult, TrackerSystem } from '../runtime/system.js';
import type { Tracker } from '../runtime/tracker-view.js';
import { normalizeId } from '../runtime/validate.js';
import { ApiError, fromZodError, toHttpError } from './errors.js';
import type { RouteDoc } from './openapi.js';
import { BatchBody, ClientEvent, CreateTrackerBody, HistoryQuery, ListQuery } from './schemas.js';

const err = (description: string) => ({ description, schema: 'Error' });

/** `/openapi.json` entries of the routes below. */
export const trackerRouteDocs: RouteDoc[] = [
  {
    method: 'post',
    path: '/trackers',
    summary: 'Start tracking a transaction (acknowledged once durable)',
    body: 'CreateTrackerBody',
    responses: {
      201: { description: 'Started', schema: 'Tracker' },
      200: { description: 'That id already tracks this txHash', schema: 'Tracker' },
      400: err(
        'invalid_body, invalid_json, invalid_tx_hash, invalid_id, invalid_confirmations, invalid_chain, unknown_chain',
      ),
      409: err('id_conflict: the id tracks another txHash (or the same one on another chain)'),
      503: err('store_unavailable, shutting_down'),
    },
  },
  {
    method: 'post',
    path: '/trackers/batch',
    summary: 'Start 1 to 1,000 trackers with one durable commit; a result per item, in order',
    body: 'BatchBody',
    responses: {
      200: { description: 'Per-item results', schema: 'BatchResponse' },
      400: err('invalid_body, invalid_batch'),
    },
  },
  {
    method: 'get',
    path: '/trackers',
    summary: 'List trackers in id order, with stable cursor paging',
    query: ListQuery,
    responses: {
      200: { description: 'A page', schema: 'TrackerPage' },
      400: err('invalid_query, invalid_state, invalid_limit, invalid_cursor, invalid_chain, unknown_chain'),
    },
  },
  {
    method: 'get',
    path: '/trackers/{id}',
    summary: 'A tracker, live or final (0x ids are matched lower-cased)',
    pathParams: ['id'],
    responses: {
      200: { description: 'The tracker', schema: 'Tracker' },
      400: err('invalid_id'),
      404: err('not_found'),
    },
  },
  {
    method: 'get',
    path: '/trackers/{id}/history',
    summary: "A tracker's changes, oldest first, with cursor paging (also once it ended)",
    pathParams: ['id'],
    query: HistoryQuery,
    responses: {
      200: { description: 'A page of changes', schema: 'TrackerHistoryPage' },
      400: err('invalid_id, invalid_query, invalid_limit, invalid_cursor'),
      404: err('not_found'),
    },
  },
  {
    method: 'post',
    path: '/trackers/{id}/events',
    summary: 'Send a client event (RECHECK, REBROADCAST; CRASH with fault injection)',
    pathParams: ['id'],
    body: 'ClientEvent',
    responses: {
      202: { description: 'Accepted; the tracker after the event', schema: 'Tracker' },
      400: err('unknown_event, event_not_allowed, invalid_event, fault_injection_disabled, invalid_id'),
      404: err('not_found'),
      409: err(
        'event_not_accepted: the current state does not take it; nothing_to_rebroadcast: no signed form of the tx is kept',
      ),
    },
  },
  {
    method: 'delete',
    path: '/trackers/{id}',
    summary: 'Stop tracking: the tracker ends stopped, its final snapshot is kept',
    pathParams: ['id'],
    responses: { 200: { description: 'The stopped tracker', schema: 'Tracker' }, 404: err('not_found') },
  },
];

const CLIENT_EVENT_TYPES = new Set(['RECHECK', 'REBROADCAST', 'CRASH']);

/** A batch item that failed validation before reaching the system. */
function itemError(error: unknown): StartManyResult {
  const { body } = toHttpError(error);
  const wrapped = new InvalidInputError(body.error.code, body.error.message);
  return { status: 'error', error: wrapped };
}

function toBatchItem(result: StartManyResult) {
  if (result.status === 'started') return { status: 201, tracker: result.tracker };
  if (result.status === 'error') {
    const { status, body } = toHttpError(result.error);
    return { status, error: body.error };
  }
  return { status: 200, tracker: result.tracker };
}

/**
 * `POST /trackers` on its parsed body: 201 and the tracker when this call started it, 200 and the
 * tracker when it was already tracked (same id, same hash).
 *
 * @example
 * const { status, tracker } = await createTracker(system, { txHash });
 */
export async function createTracker(
  system: TrackerSystem,
  body: unknown,
): Promise<{ status: 201 | 200; tracker: Tracker }> {
  const parsed = CreateTrackerBody.safeParse(body);
  if (!parsed.success) throw fromZodError(parsed.error, 'invalid_body');
  const result = await system.start(parsed.data.id, parsed.data);
  return { status: result.status === 'started' ? 201 : 200, tracker: result.tracker };
}

/**
 * The tracker routes: each validates with a schema from `schemas.ts`, calls one function of the
 * tracker system, maps its result. Errors go to the central handler.
 *
 * `lastEventId` gives the id of the newest change on `GET /events`, read before a list so that the
 * page can resume the stream after it.
 *
 * @example
 * app.use(trackerRoutes(system, () => feed.lastEventId));
 */
export function trackerRoutes(system: TrackerSystem, lastEventId: () => number): Router {
  const router = Router();

  router.post('/trackers', async (req, res) => {
    const { status, tracker } = await createTracker(system, req.body);
    res.status(status).json(tracker);
  });

  router.post('/trackers/batch', async (req, res) => {
    const parsed = BatchBody.safeParse(req.body);
    if (!parsed.success) {
      const tooMany = parsed.error.issues.some((issue) => issue.path[0] === 'trackers');
      throw tooMany
        ? new ApiError(400, 'invalid_batch', 'trackers must be an array of 1 to 1,000 POST /trackers bodies')
        : fromZodError(parsed.error, 'invalid_body');
    }
    // Validate each item with the POST /trackers schema; only valid ones reach the system.
    const results: Array<StartManyResult | undefined> = [];
    const valid: CreateTrackerBody[] = [];
    const slots: number[] = [];
    for (const item of parsed.data.trackers) {
      const one = CreateTrackerBody.safeParse(item);
      if (one.success) {
        slots.push(results.length);
        valid.push(one.data);
        results.push(undefined);
      } else {
        results.push(itemError(fromZodError(one.error, 'invalid_body')));
      }
    }
    const started = valid.length ? await system.startMany(valid) : [];
    started.forEach((result, i) => (results[slots[i]!] = result));
    res.status(200).json({ results: results.map((result) => toBatchItem(result!)) });
  });

  router.get('/trackers', async (req, res) => {
    const parsed = ListQuery.safeParse(req.query);
    if (!parsed.success) throw fromZodError(parsed.error, 'invalid_query');
    const { state, chain, limit, cursor } = parsed.data;
    // Taken before the read: every change up to it is on the page, later ones come on the stream.
    const eventId = lastEventId();
    const page = await system.list({ state: state as ListQueryState, chain, limit, cursor });
    res.json({ ...page, eventId });
  });

  router.get('/trackers/:id', (req, res) => {
    const id = normalizeId(req.params.id);
    // A live tracker answers in this turn, without a promise; one that is not live is read from the store.
    const live = system.peekText(id);
    if (live !== undefined) {
      res.set('Content-Type', 'application/json; charset=utf-8').send(live);
      return;
    }
    return system.get(id).then((tracker) => {
      if (!tracker) throw new ApiError(404, 'not_found', `no tracker ${id}`);
      res.json(tracker);
    });
  });

  router.get('/trackers/:id/history', async (req, res) => {
    const id = normalizeId(req.params.id);
    const parsed = HistoryQuery.safeParse(req.query);
    if (!parsed.success) throw fromZodError(parsed.error, 'invalid_query');
    const page = await system.history(id, parsed.data);
    if (!page) throw new ApiError(404, 'not_found', `no tracker ${id}`);
    res.json(page);
  });

  router.post('/trackers/:id/events', async (req, res) => {
    const id = normalizeId(req.params.id);
    const body: unknown = req.body;
    const type =
      typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as { type?: unknown }).type : undefined;
    if (typeof type !== 'string')
      throw new ApiError(400, 'invalid_event', 'the body must be an object with a string type');
    if (!(TRACKER_EVENT_TYPES as readonly string[]).includes(type)) {
      throw new ApiError(400, 'unknown_event', `trackers define no event ${type.slice(0, 64)}`);
    }
    if (!CLIENT_EVENT_TYPES.has(type)) {
      throw new ApiError(400, 'event_not_allowed', `${type} comes from the chain watcher, not from clients`);
    }
    const parsed = ClientEvent.safeParse(body);
    if (!parsed.success) throw fromZodError(parsed.error, 'invalid_event');
    const result = await system.send(id, parsed.data);
    if (result.status === 'not_found') throw new ApiError(404, 'not_found', `no tracker ${id}`);
    if (result.status === 'not_accepted') {
      throw new ApiError(
        409,
        'event_not_accepted',
        `tracker ${id} in state ${result.tracker.state} does not accept ${type}`,
      );
    }
    if (result.status === 'nothing_to_rebroadcast') {
      throw new ApiError(
        409,
        'nothing_to_rebroadcast',
        `tracker ${id}: the node never gave its transaction in signed form, so there is nothing to send again; ` +
          'send the signed transaction to the node yourself',
      );
    }
    res.status(202).json(result.tracker);
  });

  router.delete('/trackers/:id', async (req, res) => {
    const id = normalizeId(req.params.id);
    const tracker = await system.stop(id);
    if (!tracker) throw new ApiError(404, 'not_found', `no tracker ${id}`);
    res.json(tracker);
  });

  return router;
}

type ListQueryState = Parameters<TrackerSystem['list']>[0]['state'];
