export * from './runtime/system.js';
export type { Tracker } from './runtime/tracker-view.js';
export type { Logger } from './runtime/logger.js';
export * from './errors.js';
export type {
  SnapshotStore,
  TrackerRecord,
  ListQuery,
  ListPage,
  TrackerChange,
  TrackerChangeDetail,
  HistoryEntry,
  HistoryQuery,
  HistoryPage,
} from './store/types.js';
export { startHistoryRetention, type HistoryRetentionOptions } from './store/history-retention.js';
export { MemoryStore } from './store/memory.js';
export * from '../machines/tracker.machine.js';
export {
  supervisorMachine,
  DEFAULT_RESTART_POLICY,
  type RestartPolicy,
  type TrackerRef,
} from '../machines/supervisor.machine.js';
export { rootSupervisorMachine } from '../machines/root-supervisor.machine.js';
export type { Quarantined } from './store/types.js';
export {
  openStore,
  SqliteStore,
  DEFAULT_DATABASE_URL,
  type SqliteStoreOptions,
  PostgresStore,
  type PostgresStoreOptions,
  type CommitHook,
  type OpenStoreOptions,
} from './store/index.js';
export {
  checkSnapshot,
  quarantinedRecord,
  trackerMigrations,
  type SnapshotMigrations,
  type SnapshotCheck,
} from './runtime/snapshot-compat.js';
export { type ChainInfo, ChainDirectory, DEV_CHAIN_ID } from './runtime/chains.js';
export {
  WebhookDispatcher,
  DEFAULT_RETRY_SCHEDULE_MS,
  type DispatcherOptions,
  type DispatcherHealth,
} from './webhooks/dispatcher.js';
export { parseAllowList, checkWebhookUrl, type AllowList } from './webhooks/ssrf.js';
export type * from './webhooks/types.js';
