import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Request, RequestHandler } from 'express';
import type { Logger } from '../runtime/logger.js';
import { ApiError } from './errors.js';
import type { Metrics } from './metrics.js';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const digest = (value: string) => createHash('sha256').update(value).digest();

/**
 * Every request gets an id (the caller's `X-Request-Id` when it is sane), echoed in the response
 * and in one structured log line when the response is sent.
 *
 * @example
 * app.use(requestContext(begin));
 */
export function requestContext(begin: BeginRequest): RequestHandler {
  return (req, res, next) => {
    res.locals.reqId = begin(req, res, () => (req.route as { path?: string } | undefined)?.path ?? 'unmatched');
    next();
  };
}

/** Starts a request's bookkeeping; `route` names its route once matched. Returns the request's id. */
export type BeginRequest = (req: IncomingMessage, res: ServerResponse, route: () => string) => string;

/**
 * The bookkeeping of every request, whether Express or the fast path answers it: its id echoed in
 * the response, and when the response is sent, the metrics, one log line and `finished`.
 *
 * @example
 * const begin = requestBookkeeping(logger, metrics);
 * begin(req, res, () => '/trackers/:id');
 */
export function requestBookkeeping(
  logger: Logger,
  metrics: Metrics,
  finished?: (req: IncomingMessage, res: ServerResponse) => void,
): BeginRequest {
  return (req, res, route) => {
    const given = req.headers['x-request-id'];
    const reqId = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    res.setHeader('X-Request-Id', reqId);
    const t0 = performance.now();
    // One listener per request does all the bookkeeping of its end.
    res.once('finish', () => {
      finished?.(req, res);
      metrics.httpRequests.inc({ method: req.method!, route: route(), status: res.statusCode });
      if (logger.isLevelEnabled?.('info') === false) return;
      const ms = Math.round((performance.now() - t0) * 100) / 100;
      const url = (req as Partial<Request>).originalUrl ?? req.url!;
      logger.info({ reqId, method: req.method, url: url.slice(0, 512), status: res.statusCode, ms }, 'request');
    });
    return reqId;
  };
}

/**
 * `Authorization: Bearer <token>` on every route registered after it; compared in constant time
 * (both sides hashed first so their lengths match). Open routes are registered before it.
 *
 * @example
 * app.get('/healthz', healthz);
 * app.use(bearerAuth(process.env.API_TOKEN));
 */
export function bearerAuth(token: string | undefined): RequestHandler {
  if (!token) return (_req, _res, next) => next();
  const matches = tokenMatcher(token);
  return (req, res, next) => {
    const given = bearerToken(req.get('authorization'));
    if (given === undefined || !matches(given)) {
      res.setHeader('WWW-Authenticate', 'Bearer');
      throw new ApiError(401, 'unauthorized', 'a valid Authorization: Bearer token is required');
    }
    next();
  };
}

/**
 * A check of a presented token against `token`, in constant time: both sides are hashed first so
 * their lengths match.
 *
 * @example
 * const matches = tokenMatcher(config.API_TOKEN);
 * matches(bearerToken(req.headers.authorization) ?? ''); // true or false
 */
export function tokenMatcher(token: string): (given: string) => boolean {
  const expected = digest(token);
  return (given) => timingSafeEqual(digest(given), expected);
}

/** The token of an `Authorization: Bearer <token>` header (scheme case-insensitive, RFC 9110 section 11.1). */
export function bearerToken(header: string | undefined): string | undefined {
  return /^Bearer (.+)$/i.exec(header ?? '')?.[1];
}

/**
 * While shutting down, new requests get 503 and their connection is closed.
 *
 * @example
 * app.use(refuseWhile(() => closing));
 */
export function refuseWhile(isClosing: () => boolean): RequestHandler {
  return (_req, res, next) => {
    if (!isClosing()) return next();
    res.setHeader('Connection', 'close');
    throw new ApiError(503, 'shutting_down', 'the server is shutting down');
  };
}
