/**
 * Base of every error the tracker system throws on purpose. `code` is stable (the HTTP API puts it
 * in `{error:{code}}`); `shortMessage` is for people; `details` and `cause` are for logs.
 */
export class TrackerSystemError extends Error {
  override name = 'TrackerSystemError';
  readonly code: string;
  readonly shortMessage: string;
  readonly details: string | undefined;

  constructor(code: string, shortMessage: string, options: { details?: string; cause?: unknown } = {}) {
    super(options.details ? `${shortMessage}: ${options.details}` : shortMessage, { cause: options.cause });
    this.code = code;
    this.shortMessage = shortMessage;
    this.details = options.details;
  }
}

/** The caller's input is wrong (the HTTP API answers 400). */
export class InvalidInputError extends TrackerSystemError {
  override name = 'InvalidInputError';
}

/** The id is taken by a tracker of another transaction, or of the same hash on another chain (409). */
export class IdConflictError extends TrackerSystemError {
  override name = 'IdConflictError';
  constructor(id: string, existingTxHash: string, existingChainId?: number) {
    super('id_conflict', `tracker ${id} already tracks another transaction`, {
      details: existingChainId === undefined ? existingTxHash : `${existingTxHash} on chain ${existingChainId}`,
    });
  }
}

/** The store could not make a write durable, or could not be read (503). */
export class StoreError extends TrackerSystemError {
  override name = 'StoreError';
  constructor(shortMessage: string, cause?: unknown) {
    super('store_unavailable', shortMessage, {
      cause,
      details: cause instanceof Error ? cause.message : undefined,
    });
  }
}

/** Another process (or another store in this one) holds the database's lock: the start is refused. */
export class DatabaseLockedError extends TrackerSystemError {
  override name = 'DatabaseLockedError';
  constructor(path: string, lockPath: string) {
    super(
      'database_locked',
      `database ${path} is in use by another tx-tracker process (it holds ${lockPath}); stop that one or set DATABASE_URL to another file`,
    );
  }
}

/** The system is shutting down and takes no new work (503). */
export class ShuttingDownError extends TrackerSystemError {
  override name = 'ShuttingDownError';
  constructor() {
    super('shutting_down', 'the tracker system is shutting down');
  }
}

/**
 * An error another instance answered with, for a tracker it owns (src/cluster): the status and code
 * are the owner's, so the answer means the same whichever instance was asked.
 */
export class ForwardedError extends TrackerSystemError {
  override name = 'ForwardedError';
  constructor(
    readonly status: number,
    code: string,
    shortMessage: string,
  ) {
    super(code, shortMessage);
  }
}

/** A failed store read as the `StoreError` callers get. */
export function storeReadError(error: unknown): StoreError {
  return error instanceof StoreError ? error : new StoreError('the store could not be read', error);
}

/** Any failure as a `TrackerSystemError` (an unexpected one is `internal`). */
export function asSystemError(error: unknown): TrackerSystemError {
  if (error instanceof TrackerSystemError) return error;
  return new TrackerSystemError('internal', 'unexpected error', { cause: error });
}
