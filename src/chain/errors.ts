/**
 * Errors of the chain layer. Callers branch on the class; people read `shortMessage`; logs get
 * `details` and `cause`.
 */
export class BaseError extends Error {
  override name = 'ChainError';
  readonly shortMessage: string;
  readonly details: string | undefined;

  constructor(shortMessage: string, options: { details?: string | undefined; cause?: unknown } = {}) {
    super(options.details ? `${shortMessage}: ${options.details}` : shortMessage, { cause: options.cause });
    this.shortMessage = shortMessage;
    this.details = options.details;
  }
}

/** The HTTP request failed (connection refused, reset, non-2xx status). */
export class HttpRequestError extends BaseError {
  override name = 'HttpRequestError';
  readonly status: number | undefined;
  constructor(url: string, options: { status?: number; cause?: unknown } = {}) {
    super(`request to ${redact(url)} failed`, {
      details: options.status !== undefined ? `HTTP ${options.status}` : errorMessage(options.cause),
      cause: options.cause,
    });
    this.status = options.status;
  }
}

/** The node did not answer within the timeout. */
export class RpcTimeoutError extends BaseError {
  override name = 'RpcTimeoutError';
  constructor(method: string, timeoutMs: number) {
    super(`${method} timed out`, { details: `no answer within ${timeoutMs} ms` });
  }
}

/** The node answered with a JSON-RPC error object. */
export class RpcRequestError extends BaseError {
  override name = 'RpcRequestError';
  readonly code: number;
  constructor(method: string, error: { code: number; message: string }) {
    super(`${method} failed`, { details: `${error.code} ${error.message}` });
    this.code = error.code;
  }
}

/** The node answered something that is not the JSON-RPC we asked for (truncated, wrong shape). */
export class InvalidRpcResponseError extends BaseError {
  override name = 'InvalidRpcResponseError';
  constructor(what: string, cause?: unknown) {
    super('malformed JSON-RPC response', { details: what, cause });
  }
}

/** The chain changed deeper than the watcher remembers; trackers are looked up again instead. */
export class ReorgTooDeepError extends BaseError {
  override name = 'ReorgTooDeepError';
  constructor(depth: number) {
    super('reorg deeper than the kept block history', { details: `more than ${depth} blocks` });
  }
}

/** The node is on another chain than the one it was configured for. */
export class ChainIdMismatchError extends BaseError {
  override name = 'ChainIdMismatchError';
  constructor(url: string, expected: number, actual: number) {
    super(`the node at ${redact(url)} is on chain ${actual}, not ${expected}`, { details: 'check the chain settings' });
  }
}

/** The watcher was stopped while a call was under way. */
export class WatcherStoppedError extends BaseError {
  override name = 'WatcherStoppedError';
  constructor() {
    super('the chain watcher was stopped');
  }
}

export function errorMessage(error: unknown): string {
  if (error instanceof Error) {
    const cause = error.cause instanceof Error ? ` (${error.cause.message})` : '';
    return `${error.message}${cause}`;
  }
  return String(error);
}

/** URLs of hosted nodes carry API keys in their path: keep only origin. */
export function redact(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return 'the node';
  }
}
