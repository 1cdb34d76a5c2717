import { STATUS_CODES, type ServerResponse, maxHeaderSize } from 'node:http';
import type { ErrorRequestHandler, RequestHandler } from 'express';
import type { z } from 'zod';
import {
  ForwardedError,
  IdConflictError,
  InvalidInputError,
  ShuttingDownError,
  StoreError,
  TrackerSystemError,
} from '../errors.js';
import type { Logger } from '../runtime/logger.js';

/**
 * An error the API answers with on purpose: an HTTP status and a stable `code`. Routes throw it; the
 * central error handler turns it (and every library error) into `{"error":{"code","message"}}`.
 *
 * @example
 * throw new ApiError(404, 'not_found', `no tracker ${id}`);
 */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface ErrorBody {
  error: { code: string; message: string };
}

/** Which input field a zod issue is about decides the precise code. */
const FIELD_CODES: Record<string, string> = {
  txHash: 'invalid_tx_hash',
  id: 'invalid_id',
  confirmations: 'invalid_confirmations',
  chain: 'invalid_chain',
  state: 'invalid_state',
  limit: 'invalid_limit',
  cursor: 'invalid_cursor',
};

/**
 * The `ApiError` for a failed zod parse: the first issue names the code (`invalid_tx_hash`, …),
 * falling back to `fallback` (`invalid_body`, `invalid_query`).
 *
 * @example
 * const parsed = CreateTrackerBody.safeParse(req.body);
 * if (!parsed.success) throw fromZodError(parsed.error, 'invalid_body');
 */
export function fromZodError(error: z.ZodError, fallback: string): ApiError {
  const issue = error.issues[0];
  const field = issue?.path.length === 1 ? String(issue.path[0]) : undefined;
  const code = (field && FIELD_CODES[field]) ?? fallback;
  const where = issue && issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
  return new ApiError(400, code, `${where}${issue?.message ?? 'invalid input'}`);
}

/**
 * Status and body for any error; unexpected ones become a bare 500 without details.
 *
 * @example
 * toHttpError(new IdConflictError('order-1', '0x…')); // { status: 409, body: { error: { code: 'id_conflict', … } } }
 */
export function toHttpError(error: unknown): { status: number; body: ErrorBody } {
  const make = (status: number, code: string, message: string) => ({ status, body: { error: { code, message } } });
  if (error instanceof ApiError) return make(error.status, error.code, error.message);
  if (error instanceof ForwardedError) return make(error.status, error.code, error.shortMessage);
  if (error instanceof InvalidInputError) return make(400, error.code, error.shortMessage);
  if (error instanceof IdConflictError) return make(409, error.code, error.shortMessage);
  if (error instanceof StoreError || error instanceof ShuttingDownError)
    return make(503, error.code, error.shortMessage);
  if (error instanceof TrackerSystemError) return make(500, 'internal', 'internal error');
  const parserError = bodyParserError(error);
  if (parserError) return make(parserError.status, parserError.code, parserError.message);
  return make(500, 'internal', 'internal error');
}

/** body-parser signals with `type` and `status`; map them to our codes. */
function bodyParserError(error: unknown): { status: number; code: string; message: string } | undefined {
  if (typeof error !== 'object' || error === null || !('type' in error || 'status' in error)) return undefined;
  const { type, status } = error as { type?: unknown; status?: unknown };
  switch (type) {
    case 'entity.too.large':
      return { status: 413, code: 'payload_too_large', message: 'the body is larger than 1 MB' };
    case 'entity.parse.failed':
      return { status: 400, code: 'invalid_json', message: 'the body is not valid JSON' };
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return { status: 415, code: 'unsupported_encoding', message: 'unsupported content encoding or charset' };
    case 'request.aborted':
      return { status: 400, code: 'request_aborted', message: 'the request was aborted' };
    default:
      if (typeof status === 'number' && status >= 400 && status < 500) {
        return { status, code: 'bad_request', message: 'the request could not be read' };
      }
      return undefined;
  }
}

/**
 * The one place where errors become HTTP responses. Never HTML, never a stack trace.
 *
 * @example
 * app.use(errorHandler(logger));
 */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (error: unknown, _req, res, _next) => answerError(logger, error, res, res.locals.reqId);
}

/**
 * Answer `error` as `{"error":{"code","message"}}` with its status and log it: the central error
 * handler's answer, also given by the routes answered before Express (`fast-path.ts`).
 *
 * @example
 * answerError(logger, new ApiError(404, 'not_found', 'no tracker x'), res, reqId);
 */
export function answerError(logger: Logger, error: unknown, res: ServerResponse, reqId: unknown): void {
  const { status, body } = toHttpError(error);
  const log = { reqId, code: body.error.code, err: error };
  if (status >= 500) logger.error(log, 'request failed');
  else logger.debug(log, 'request rejected');
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJsonText(res, status, JSON.stringify(body));
}

/**
 * Send a JSON text with the headers Express's `res.json` gives it (no ETag: the app disables it).
 *
 * @example
 * sendJsonText(res, 200, '{"status":"ok"}');
 */
export function sendJsonText(res: ServerResponse, status: number, text: string): void {
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(text));
  res.end(text);
}

/** Unknown routes and methods: 404 JSON. */
export const notFoundHandler: RequestHandler = (req, res) => {
  res.status(404).json({ error: { code: 'not_found', message: `no route ${req.method} ${req.path}` } });
};

/**
 * The raw HTTP response for a request Node's parser rejected before Express saw it (the server's
 * `clientError`): 431 for headers over the limit, 408 for a request not received in time, 400 for
 * anything else, each with the usual JSON error body and `Connection: close`.
 *
 * @example
 * server.on('clientError', (error, socket) => socket.end(clientErrorResponse(error)));
 */
export function clientErrorResponse(error: Error & { code?: string }): string {
  const [status, code, message]: [number, string, string] =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'headers_too_large', `the request headers are larger than ${maxHeaderSize} bytes`]
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'request_timeout', 'the request was not received in time']
        : [400, 'bad_request', 'the request is not valid HTTP/1.1'];
  return rawErrorResponse(status, code, message);
}

/**
 * A whole HTTP/1.1 error response with the JSON error body and `Connection: close`, for a socket
 * no Express response owns (a parse error, a refused WebSocket upgrade).
 *
 * @example
 * socket.end(rawErrorResponse(401, 'unauthorized', 'a valid bearer token is required', { 'WWW-Authenticate': 'Bearer' }));
 */
export function rawErrorResponse(
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
): string {
  const body = JSON.stringify({ error: { code, message } } satisfies ErrorBody);
  const extra = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`);
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n` +
    'Content-Type: application/json; charset=utf-8\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    extra.join('') +
    'Connection: close\r\n\r\n' +
    body
  );
}
