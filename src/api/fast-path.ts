import type { IncomingMessage, ServerResponse } from 'node:http';
import { TRACKER_ID_PATTERN } from '../../machines/tracker.machine.js';
import type { TrackerSystem } from '../runtime/system.js';
import { normalizeId } from '../runtime/validate.js';
import type { Logger } from '../runtime/logger.js';
import { answerError, sendJsonText } from './errors.js';
import type { BeginRequest } from './middleware.js';
import { bearerToken } from './middleware.js';
import { createTracker } from './trackers.routes.js';

/** The largest JSON body either path reads (1 MB; `express.json` in server.ts has the same limit). */
export const BODY_LIMIT = 1024 * 1024;
/** `GET /trackers/:id` with an id as `TRACKER_ID_PATTERN` has it (nothing to decode), the query ignored as Express does. */
const GET_TRACKER = new RegExp(`^/trackers/(${TRACKER_ID_PATTERN.source.slice(1, -1)})(?:\\?|$)`);
const POST_TRACKERS = /^\/trackers(?:\?|$)/;
/** A charset Express's JSON parser would decode as UTF-8 (RFC 8259 section 8.1). */
const UTF8_CONTENT_TYPE = /^[^;]*(?:;\s*charset="?utf-8"?\s*)?$/i;

export interface FastPathOptions {
  system: TrackerSystem;
  logger: Logger;
  begin: BeginRequest;
  /** Whether the server is shutting down: then Express answers (503). */
  closing: () => boolean;
  /** The bearer token check, when the API has a token: a request that fails it goes to Express (401). */
  authorized?: ((token: string) => boolean) | undefined;
}

/**
 * The two routes that carry the traffic, `GET /trackers/:id` of a live tracker and `POST
 * /trackers`, answered before Express: Express's per-request work (its request and response
 * objects, the router's walk over every layer) is most of such a request's cost beside ours.
 *
 * A request is taken only when Express would answer it the same way: the exact lower-case path,
 * an authorized caller, a body with a length, no content encoding and a UTF-8 charset. Anything
 * else (a stored tracker, `HEAD`, `/TRACKERS/…`, a chunked or gzipped body, a missing token, a
 * shutdown) returns false and goes to Express. Both share the routes' logic (`createTracker`,
 * `peekText`), the bookkeeping (`begin`) and the error answers (`answerError`); a test holds the
 * two paths' answers equal.
 *
 * @example
 * const fast = fastPath({ system, logger, begin, closing: () => closing });
 * createServer((req, res) => fast(req, res) || app(req, res));
 */
export function fastPath(options: FastPathOptions): (req: IncomingMessage, res: ServerResponse) => boolean {
  const { system, logger, begin, closing, authorized } = options;
  const allowed = (req: IncomingMessage): boolean => {
    if (closing()) return false;
    if (!authorized) return true;
    const token = bearerToken(req.headers.authorization);
    return token !== undefined && authorized(token);
  };
  const getRoute = () => '/trackers/:id';
  const postRoute = () => '/trackers';

  const take = (req: IncomingMessage, res: ServerResponse): boolean => {
    const url = req.url!;
    if (req.method === 'GET') {
      const match = GET_TRACKER.exec(url);
      if (match === null || !allowed(req)) return false;
      const text = system.peekText(normalizeId(match[1]));
      if (text === undefined) return false;
      begin(req, res, getRoute);
      sendJsonText(res, 200, text);
      return true;
    }
    if (req.method !== 'POST' || !POST_TRACKERS.test(url)) return false;
    const length = Number(req.headers['content-length']);
    const encoding = req.headers['content-encoding'];
    const type = req.headers['content-type'];
    if (
      !(length > 0 && length <= BODY_LIMIT) ||
      req.headers['transfer-encoding'] !== undefined ||
      (encoding !== undefined && encoding.toLowerCase() !== 'identity') ||
      (type !== undefined && !UTF8_CONTENT_TYPE.test(type)) ||
      !allowed(req)
    ) {
      return false;
    }
    const reqId = begin(req, res, postRoute);
    readBody(req, length)
      .then((text) => createTracker(system, parseJson(text)))
      .then(({ status, tracker }) => sendJsonText(res, status, JSON.stringify(tracker)))
      .catch((error: unknown) => answerError(logger, error, res, reqId));
    return true;
  };
  // A throw here would escape the server's request listener: nothing has been sent, so Express
  // answers the request, as it answers a throw of its own route.
  return (req, res) => {
    try {
      return take(req, res);
    } catch (error) {
      logger.error({ err: error }, 'fast path failed; Express answers');
      return false;
    }
  };
}

/** The request's body as text, `length` bytes by its header (Node's parser holds it to that). */
function readBody(req: IncomingMessage, length: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve((chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, length)).toString('utf8')));
    req.on('error', () => reject(parserError('request.aborted', 400)));
    req.on('aborted', () => reject(parserError('request.aborted', 400)));
  });
}

/** JSON as `express.json({ strict: false })` reads it: a leading BOM dropped, an empty body `{}`. */
function parseJson(text: string): unknown {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  if (body.length === 0) return {};
  try {
    return JSON.parse(body);
  } catch {
    throw parserError('entity.parse.failed', 400);
  }
}

/** An error shaped as body-parser signals it, so `toHttpError` answers it as it answers Express's. */
function parserError(type: string, status: number): Error {
  return Object.assign(new Error(type), { type, status });
}
