export * from './errors.js';
export * from './format.js';
export { type Transport, type RpcCall, type RpcOutcome, createHttpTransport } from './transport.js';
export * from './getBlock.js';
export * from './getBlockReceipts.js';
export * from './getTransactionCount.js';
export * from './getChainId.js';
export {
  type FallbackTransport,
  type FallbackTransportOptions,
  checkedTransport,
  createFallbackTransport,
} from './fallback.js';
export {
  type ChainNodes,
  type FollowedChain,
  type RpcStatus,
  type StartChainsOptions,
  ChainSet,
  rpcStatus,
  startChains,
} from './chain-set.js';
export * from './lookupTransactions.js';
export * from './findReplacement.js';
export * from './classifyReplacement.js';
export {
  type ChainWatcherOptions,
  type ChainWatcherHealth,
  type TrackerSink,
  ChainWatcher,
  createChainWatcher,
} from './watcher.js';
export { type Anvil, type StartAnvilOptions, AnvilError, anvilBinary, startAnvil } from './anvil.js';
export { type ChainConfig, ChainConfigError, parseChainConfig } from './config.js';
export { type Chain, type StartChainOptions, startChain } from './embedded.js';
export { type DemoTransaction, type RunDemoOptions, runDemo } from './demo.js';
export type { HeadSource } from './heads.js';
