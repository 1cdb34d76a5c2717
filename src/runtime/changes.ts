import type { AnyActorScope, AnyMachineSnapshot, AnyStateMachine, EventObject } from 'xstate';
import type { TrackerContext } from '../../machines/tracker.machine.js';
import type { TrackerChange, TrackerChangeDetail } from '../store/types.js';

/** What the history needs of a tracker snapshot. */
export interface ChangedSnapshot {
  value: unknown;
  context: TrackerContext;
}

/**
 * Which event made which tracker snapshot: the logic's `transition` is wrapped, so every event that
 * reaches a tracker, by whatever path (the runtime's `send`, a supervisor's `sendTo`, held events
 * handed over, a give-up), is known to the observer that persists the snapshot it made. Snapshots
 * are the keys (weakly held), so an event queued behind another cannot be mistaken for it.
 *
 * @example
 * const causes = new ChangeCauses();
 * const logic = causes.track(trackerLogic);
 * causes.of(ref.getSnapshot()); // 'TX_MINED'
 */
export class ChangeCauses {
  private readonly causes = new WeakMap<object, string>();

  /** The logic with its transitions recorded; everything else is the logic's own. */
  track<TLogic extends AnyStateMachine>(logic: TLogic): TLogic {
    const tracked = Object.create(logic) as TLogic;
    const transition = logic.transition.bind(logic) as (
      snapshot: AnyMachineSnapshot,
      event: EventObject,
      scope: AnyActorScope,
    ) => AnyMachineSnapshot;
    const causes = this.causes;
    (tracked as unknown as { transition: typeof transition }).transition = (snapshot, event, scope) => {
      const next = transition(snapshot, event, scope);
      if (next !== snapshot) causes.set(next, event.type);
      return next;
    };
    return tracked;
  }

  /** The type of the event that made this snapshot; undefined for one no transition made. */
  of(snapshot: object): string | undefined {
    return this.causes.get(snapshot);
  }
}

/** A state value as a dotted path: `{ pending: 'seen' }` → `pending.seen`. */
export function statePath(value: unknown): string {
  if (typeof value === 'string') return value;
  const [key] = Object.keys(value as object);
  return key === undefined ? '' : `${key}.${statePath((value as Record<string, unknown>)[key])}`;
}

/**
 * The change from `before` to `after` caused by `event`; null when nothing a history shows
 * changed (the same state and the same context, as after a RECHECK). `before` without a context:
 * the tracker came back in that state (a restart).
 *
 * @example
 * trackerChange(before, after, 'TX_MINED', Date.now()); // { from: 'pending.seen', to: 'confirming', … }
 */
export function trackerChange(
  before: { value: unknown; context: TrackerContext | null } | null,
  after: ChangedSnapshot,
  event: string,
  at: number,
): TrackerChange | null {
  const from = before === null ? null : statePath(before.value);
  const to = statePath(after.value);
  if (before !== null && before.context === after.context && from === to) return null;
  const context = after.context;
  const detail: TrackerChangeDetail = {};
  if (context.failure !== null) detail.failure = context.failure;
  if (context.replacedBy !== null && context.replacedBy !== before?.context?.replacedBy) {
    detail.replacedBy = context.replacedBy;
  }
  if (context.blockNumber !== null) detail.confirmations = context.confirmations;
  return {
    from,
    to,
    event,
    at,
    blockNumber: context.blockNumber,
    blockHash: context.blockHash,
    restarts: context.restarts,
    reorgs: context.reorgs,
    detail: Object.keys(detail).length === 0 ? null : detail,
  };
}
