import { z } from 'zod';
import {
  FINALITY_TAGS,
  type Finality,
  MAX_CONFIRMATIONS,
  MIN_CONFIRMATIONS,
  STUCK_REASONS,
  type StuckReason,
  TRACKER_ID_PATTERN,
  TRACKER_STATE_NAMES,
  TX_HASH_PATTERN,
} from '../../machines/tracker.machine.js';

/**
 * The HTTP contract in one place: every schema here validates requests, yields the TypeScript type
 * of what a route receives, and is an entry of `/openapi.json` (through `apiSchemas`).
 */
export const apiSchemas = z.registry<{ id: string; description?: string }>();

const TxHash = z.string().regex(TX_HASH_PATTERN).describe('0x followed by 64 hex digits, any case; stored lower-case');
const TrackerId = z
  .string()
  .regex(TRACKER_ID_PATTERN)
  .describe(
    'Caller-chosen id, unique across all chains; defaults to the lower-case txHash on the default chain, <chainId>:<txHash> on another',
  );
export const TrackerState = z.enum(TRACKER_STATE_NAMES as [string, ...string[]]);
const FinalityTag = z.enum(FINALITY_TAGS as [Finality, ...Finality[]]);
/** A chain as a client names it: its id, or its configured name. */
const ChainRef = z
  .union([z.number().int().positive(), z.string().regex(/^[A-Za-z0-9_-]{1,64}$/)])
  .describe('Chain id or configured name; default: the default chain (400 unknown_chain for another)');

export const CreateTrackerBody = z
  .object({
    txHash: TxHash,
    id: TrackerId.optional(),
    chain: ChainRef.optional(),
    confirmations: z
      .union([z.number().int().min(MIN_CONFIRMATIONS).max(MAX_CONFIRMATIONS), FinalityTag])
      .optional()
      .describe(
        `${MIN_CONFIRMATIONS}–${MAX_CONFIRMATIONS}, or "safe" / "finalized": confirmed when the chain's block of that tag reaches the tracker's; default: the chain's`,
      ),
  })
  .strict();
export type CreateTrackerBody = z.infer<typeof CreateTrackerBody>;
apiSchemas.add(CreateTrackerBody, { id: 'CreateTrackerBody' });

export const MAX_BATCH = 1000;
export const BatchBody = z
  .object({
    trackers: z
      .array(z.unknown().meta({ $ref: '#/components/schemas/CreateTrackerBody' }))
      .min(1)
      .max(MAX_BATCH),
  })
  .strict();
apiSchemas.add(BatchBody, { id: 'BatchBody', description: '1 to 1,000 POST /trackers bodies' });

export const ListQuery = z
  .object({
    state: TrackerState.optional(),
    chain: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/)
      .optional()
      .describe('Only the trackers of this chain (id or name)'),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
    cursor: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,512}$/)
      .optional(),
  })
  .strict();
export type ListQuery = z.infer<typeof ListQuery>;

export const HistoryQuery = z
  .object({
    limit: z.coerce.number().int().min(1).max(1000).default(100),
    cursor: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/)
      .optional(),
  })
  .strict();
export type HistoryQuery = z.infer<typeof HistoryQuery>;

export const EventsQuery = z.object({ id: z.string().optional(), lastEventId: z.string().optional() }).strict();

/** The events a client may send; chain facts come from the chain watcher only. */
export const ClientEvent = z.discriminatedUnion('type', [
  z
    .object({ type: z.literal('RECHECK') })
    .strict()
    .describe('Look the transaction up now (pending or confirming)'),
  z
    .object({ type: z.literal('REBROADCAST') })
    .strict()
    .describe('Send the signed transaction to the node again, e.g. after a reorg dropped it (pending)'),
  z
    .object({ type: z.literal('CRASH') })
    .strict()
    .describe('Make the tracker throw (only with FAULT_INJECTION=1)'),
]);
export type ClientEvent = z.infer<typeof ClientEvent>;
apiSchemas.add(ClientEvent, { id: 'ClientEvent' });

export const Failure = z.object({ reason: z.string(), detail: z.string() });

export const Stuck = z
  .object({
    reason: z
      .enum(STUCK_REASONS as [StuckReason, ...StuckReason[]])
      .describe(
        'fee_below_base_fee: its max fee is below the latest base fee; nonce_gap: an earlier nonce of its sender is missing; not_included: neither',
      ),
    since: z
      .number()
      .int()
      .describe("The block number (of the tracker's chain) at which it was found stuck; kept while the reason changes"),
    detail: z.string(),
  })
  .describe(
    'Only while a pending tx the node holds has been left out of STUCK_AFTER_BLOCKS new blocks (state stays pending)',
  );

export const Tracker = z.object({
  id: z.string(),
  txHash: z.string(),
  chainId: z.number().int().describe('EIP-155 id of the chain the transaction is on'),
  state: TrackerState,
  confirmations: z.number().int(),
  requiredConfirmations: z.number().int().nullable().describe('null when the tracker is confirmed by finality'),
  finality: FinalityTag.optional().describe("Only on a tracker confirmed by the chain's safe or finalized block"),
  blockNumber: z.number().int().nullable(),
  blockHash: z.string().nullable(),
  reorgs: z.number().int(),
  restarts: z.number().int(),
  replacedBy: z.string().nullable(),
  failure: Failure.nullable(),
  stuck: Stuck.optional(),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
});
apiSchemas.add(Tracker, { id: 'Tracker' });

export const ApiErrorBody = z.object({
  error: z.object({ code: z.string(), message: z.string() }),
});
apiSchemas.add(ApiErrorBody, { id: 'Error' });

export const BatchResult = z.object({
  status: z.union([z.literal(200), z.literal(201), z.literal(400), z.literal(409), z.literal(503)]),
  tracker: Tracker.optional(),
  error: ApiErrorBody.shape.error.optional(),
});
export const BatchResponse = z.object({ results: z.array(BatchResult) });
apiSchemas.add(BatchResponse, { id: 'BatchResponse' });

export const TrackerPage = z.object({
  items: z.array(Tracker),
  nextCursor: z.string().nullable(),
  eventId: z
    .number()
    .int()
    .describe(
      'The id of the newest change on GET /events when the page was read: every change up to it is on the page; stream with Last-Event-ID set to it to miss none after',
    ),
});
apiSchemas.add(TrackerPage, { id: 'TrackerPage' });

export const TrackerHistoryEntry = z.object({
  seq: z.number().int().describe("Grows with every change of every tracker: orders this tracker's changes"),
  at: z.iso.datetime(),
  from: z.string().nullable().describe('State path before (pending.seen); null when the tracker was created'),
  to: z.string().describe('State path after'),
  event: z
    .string()
    .describe(
      'What caused it: the tracker event (TX_SEEN, TX_MINED, NEW_HEAD, FINALITY, BLOCK_REORGED, TX_REPLACED, TX_DROPPED, STOP, GIVE_UP); START when created; RESTART when it came back from its stored snapshot after a crash',
    ),
  blockNumber: z.number().int().nullable(),
  blockHash: z.string().nullable(),
  restarts: z.number().int(),
  reorgs: z.number().int(),
  detail: z
    .object({
      failure: Failure.optional(),
      replacedBy: z.string().optional().describe('Set by the change that recorded the replacement'),
      confirmations: z.number().int().optional(),
    })
    .nullable(),
});
apiSchemas.add(TrackerHistoryEntry, { id: 'TrackerHistoryEntry' });
export const TrackerHistoryPage = z.object({ items: z.array(TrackerHistoryEntry), nextCursor: z.string().nullable() });
apiSchemas.add(TrackerHistoryPage, { id: 'TrackerHistoryPage' });

const RpcStatus = z.enum(['ok', 'degraded', 'down']);

export const Readiness = z.object({
  status: z.enum(['ready', 'not_ready']),
  checks: z.object({
    store: z.boolean(),
    chain: z.boolean().describe('At least one chain follows its node'),
    chains: z.record(z.string(), RpcStatus).optional().describe("Each chain's RPC health, by name"),
  }),
});
apiSchemas.add(Readiness, { id: 'Readiness' });

export const Chain = z.object({
  name: z.string(),
  id: z.number().int(),
  default: z.boolean(),
  confirmations: z
    .union([z.number().int(), FinalityTag])
    .describe('What a tracker started without confirmations waits for'),
  head: z.number().int().nullable().describe('The newest block replayed'),
  safe: z.number().int().nullable(),
  finalized: z.number().int().nullable(),
  lag: z.number().int().nullable().describe("Blocks between the node's head and the newest block replayed"),
  rpc: z.object({
    status: RpcStatus,
    url: z.string().nullable().describe('The node answering now (origin only)'),
    fallback: z.boolean().describe('Requests go to the fallback node'),
    lastError: z.string().nullable(),
  }),
  trackers: z.record(TrackerState, z.number().int()).describe('Trackers by state, all of them in the store'),
});
export const ChainList = z.object({ chains: z.array(Chain) });
apiSchemas.add(ChainList, { id: 'ChainList' });

const MachineTransition = z.object({
  event: z.string().describe("The event type; '' for an eventless (always) transition"),
  targets: z.array(z.string()).describe('Target state paths; empty: no change of state'),
  guard: z.string().nullable(),
  actions: z.array(z.string()),
});

export const MachineState = z.object({
  key: z.string(),
  path: z.string().describe("Dot path from the root ('' for the root, 'pending.seen')"),
  type: z.string().describe('atomic, compound, parallel, final or history'),
  initial: z.string().nullable().describe('Path of the child entered first'),
  tags: z.array(z.string()),
  description: z.string().nullable(),
  transitions: z.array(MachineTransition),
  get states(): z.ZodArray<typeof MachineState> {
    return z.array(MachineState);
  },
});
apiSchemas.add(MachineState, { id: 'MachineState' });

export const Machines = z.object({
  machines: z.array(
    z.object({
      id: z.string(),
      role: z.enum(['tracker', 'supervisor', 'root-supervisor']),
      root: MachineState,
    }),
  ),
  trackerMachineVersion: z.number().int(),
  clientEvents: z.array(z.string()).describe('Events POST /trackers/{id}/events takes on this service'),
  faultInjection: z.boolean(),
});
apiSchemas.add(Machines, { id: 'Machines' });

export const Supervision = z.object({
  shards: z.number().int(),
  live: z.number().int().describe('Trackers running now'),
  restarting: z.number().int().describe('Trackers waiting for their restart'),
  crashes: z.number().int(),
  restarts: z.number().int(),
  crashLoops: z.number().int(),
});
apiSchemas.add(Supervision, { id: 'Supervision' });
