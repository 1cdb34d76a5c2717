import { type AnyStateNode, createActor } from 'xstate';
import type { PersistedTracker } from '../../machines/supervisor.machine.js';
import {
  FINALITY_TAGS,
  STUCK_REASONS,
  TRACKER_MACHINE_VERSION,
  TX_HASH_PATTERN,
  type TrackerContext,
  trackerMachine,
} from '../../machines/tracker.machine.js';
import type { TrackerRecord } from '../store/types.js';
import { topState } from './tracker-view.js';

/**
 * One step per machine version: `migrations[n]` turns a snapshot written by version `n` into one
 * that version `n + 1` can run. A snapshot is taken up step by step to `TRACKER_MACHINE_VERSION`.
 */
export type SnapshotMigrations = Readonly<Record<number, (snapshot: unknown) => unknown>>;

export type SnapshotCheck = { ok: true; snapshot: PersistedTracker } | { ok: false; reason: string };

type FieldCheck = (value: unknown) => boolean;
const isInt: FieldCheck = (v) => Number.isSafeInteger(v);
const isNum: FieldCheck = (v) => typeof v === 'number' && Number.isFinite(v);
const isStr: FieldCheck = (v) => typeof v === 'string';
const orNull =
  (check: FieldCheck): FieldCheck =>
  (v) =>
    v === null || check(v);
const isFailure: FieldCheck = (v) =>
  typeof v === 'object' &&
  v !== null &&
  isStr((v as { reason?: unknown }).reason) &&
  isStr((v as { detail?: unknown }).detail);

const isStuck: FieldCheck = (v) =>
  typeof v === 'object' &&
  v !== null &&
  (STUCK_REASONS as readonly unknown[]).includes((v as { reason?: unknown }).reason) &&
  isInt((v as { since?: unknown }).since) &&
  isStr((v as { detail?: unknown }).detail);

// Every field the machine reads, with its type: a snapshot missing one would run into undefined.
const CONTEXT_FIELDS: Record<keyof TrackerContext, FieldCheck> = {
  id: isStr,
  txHash: (v) => isStr(v) && TX_HASH_PATTERN.test(v as string),
  chainId: (v) => isInt(v) && (v as number) > 0,
  requiredConfirmations: isInt,
  finality: (v) => v === null || (FINALITY_TAGS as readonly unknown[]).includes(v),
  blockNumber: orNull(isInt),
  blockHash: orNull(isStr),
  confirmations: isInt,
  reorgs: isInt,
  restarts: isInt,
  replacedBy: orNull(isStr),
  failure: orNull(isFailure),
  stuck: orNull(isStuck),
  createdAt: isNum,
  updatedAt: isNum,
};
const STATUSES = ['active', 'done', 'error'];

/**
 * The migrations this build brings, for a service whose default chain is `defaultChainId`:
 * 1 → 2 puts every tracker on the default chain (trackers had no chain before), confirmed by its
 * count as before; 2 → 3 adds `stuck` (null: version 2 had no stuck state, so no tracker is).
 * Context keys keep the order the machine writes them in (the store packs by it).
 *
 * @example
 * const system = await createTrackerSystem({ store, migrations: trackerMigrations(8453) });
 */
export function trackerMigrations(defaultChainId: number): SnapshotMigrations {
  return { 1: (snapshot) => onChain(snapshot, defaultChainId), 2: notStuck };
}

function notStuck(snapshot: unknown): unknown {
  if (typeof snapshot !== 'object' || snapshot === null) return snapshot;
  const { context } = snapshot as { context?: unknown };
  if (typeof context !== 'object' || context === null) return snapshot;
  // `stuck` goes where the machine writes it: just before createdAt.
  const { createdAt, updatedAt, ...rest } = context as Record<string, unknown>;
  return { ...snapshot, context: { ...rest, stuck: null, createdAt, updatedAt } };
}

function onChain(snapshot: unknown, chainId: number): unknown {
  if (typeof snapshot !== 'object' || snapshot === null) return snapshot;
  const { context } = snapshot as { context?: unknown };
  // Anything else is left for the shape check to name.
  if (typeof context !== 'object' || context === null) return snapshot;
  const { id, txHash, requiredConfirmations, ...rest } = context as Record<string, unknown>;
  return { ...snapshot, context: { id, txHash, chainId, requiredConfirmations, finality: null, ...rest } };
}

/**
 * Whether a stored record can run on this machine: migrated up to `TRACKER_MACHINE_VERSION`, then
 * checked state by state and field by field. Never throws; says why when it does not fit.
 *
 * @example
 * const check = checkSnapshot(record, { 1: (s) => addReorgs(s) });
 * if (!check.ok) quarantine(record, check.reason);
 */
export function checkSnapshot(record: TrackerRecord, migrations: SnapshotMigrations = {}): SnapshotCheck {
  if (typeof record.snapshot === 'string') return { ok: false, reason: 'the stored snapshot is not valid JSON' };
  let version = record.version;
  if (!Number.isSafeInteger(version))
    return { ok: false, reason: `machine version ${String(version)} is not a version` };
  if (version > TRACKER_MACHINE_VERSION) {
    return {
      ok: false,
      reason: `written by machine version ${version}, newer than this one (${TRACKER_MACHINE_VERSION})`,
    };
  }
  let snapshot = record.snapshot;
  for (; version < TRACKER_MACHINE_VERSION; version++) {
    const migrate = migrations[version];
    if (!migrate) return { ok: false, reason: `no migration from machine version ${version} to ${version + 1}` };
    try {
      snapshot = migrate(snapshot);
    } catch (error) {
      return { ok: false, reason: `migration from machine version ${version} failed: ${(error as Error).message}` };
    }
  }
  const reason = shapeProblem(snapshot, record);
  return reason ? { ok: false, reason } : { ok: true, snapshot: snapshot as PersistedTracker };
}

function shapeProblem(snapshot: unknown, record: TrackerRecord): string | undefined {
  if (typeof snapshot !== 'object' || snapshot === null) return 'the snapshot is not an object';
  const { value, context, status } = snapshot as { value?: unknown; context?: unknown; status?: unknown };
  if (!STATUSES.includes(status as string)) return `unknown snapshot status ${JSON.stringify(status)}`;
  const badState = stateProblem(trackerMachine.root, value);
  if (badState) return badState;
  if (typeof context !== 'object' || context === null) return 'the snapshot has no context';
  for (const [field, check] of Object.entries(CONTEXT_FIELDS)) {
    const v = (context as Record<string, unknown>)[field];
    if (v === undefined) return `context field ${field} is missing`;
    if (!check(v)) return `context field ${field} has a wrong value ${JSON.stringify(v)}`;
  }
  if ((context as TrackerContext).id !== record.id) return `the snapshot belongs to ${(context as TrackerContext).id}`;
  if (topState(value) !== record.state) return `the row says ${record.state}, the snapshot ${topState(value)}`;
  return undefined;
}

/** A state value names states that exist, one child per compound level. */
function stateProblem(node: AnyStateNode, value: unknown): string | undefined {
  if (typeof value === 'string') {
    return value in node.states ? undefined : `unknown state ${JSON.stringify(value)}`;
  }
  if (typeof value !== 'object' || value === null) return `unknown state value ${JSON.stringify(value)}`;
  const keys = Object.keys(value);
  if (keys.length !== 1 || !(keys[0]! in node.states)) return `unknown state ${JSON.stringify(value)}`;
  return stateProblem(node.states[keys[0]!]!, (value as Record<string, unknown>)[keys[0]!]);
}

/**
 * The record a quarantined row becomes: the tracker `failed` with reason `incompatible_snapshot`
 * (made by the machine's own `GIVE_UP`), with the row as it was found kept in `quarantined`.
 *
 * @example
 * store.write(quarantinedRecord(record, 'unknown state "mined"', Date.now(), 12, 1));
 */
export function quarantinedRecord(
  record: TrackerRecord,
  reason: string,
  now: number,
  defaultConfirmations: number,
  defaultChainId: number,
): TrackerRecord {
  const original = record.quarantined?.original ?? withoutQuarantine(record);
  // Keep what can be trusted from the old snapshot; anything else from the row's own columns.
  const old =
    (typeof record.snapshot === 'object' && record.snapshot !== null
      ? (record.snapshot as { context?: Partial<TrackerContext> }).context
      : undefined) ?? {};
  const required = Number.isSafeInteger(old.requiredConfirmations) ? old.requiredConfirmations! : defaultConfirmations;
  const chainId = Number.isSafeInteger(record.chainId) ? record.chainId! : defaultChainId;
  const createdAt = Number.isFinite(record.createdAt) ? record.createdAt : now;
  const actor = createActor(trackerMachine, {
    input: { id: record.id, txHash: record.txHash, chainId, requiredConfirmations: required, createdAt },
  }).start();
  actor.send({ type: 'GIVE_UP', reason: 'incompatible_snapshot', detail: reason, at: now });
  const persisted = trackerMachine.getPersistedSnapshot(actor.getSnapshot()) as PersistedTracker;
  actor.stop();
  const restarts = Number.isSafeInteger(record.restarts) ? record.restarts : 0;
  return {
    id: record.id,
    txHash: record.txHash,
    chainId,
    state: 'failed',
    version: TRACKER_MACHINE_VERSION,
    snapshot: { ...persisted, context: { ...persisted.context, restarts } },
    restarts,
    createdAt,
    updatedAt: now,
    quarantined: { reason, at: now, original },
  };
}

function withoutQuarantine(record: TrackerRecord): Omit<TrackerRecord, 'quarantined'> {
  const { quarantined: _q, ...rest } = record;
  return rest;
}
