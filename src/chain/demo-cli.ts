/**
 * npm run demo:chain — start an embedded anvil (or follow ETH_RPC_URL), send a few transactions
 * and print every tracker change until all are final.
 */
import { FINAL_STATE_NAMES } from '../../machines/tracker.machine.js';
import { type TrackerHooks, createTrackerSystem } from '../runtime/system.js';
import { MemoryStore } from '../store/memory.js';
import { parseChainConfig } from './config.js';
import { runDemo } from './demo.js';
import { startChain } from './embedded.js';

const log = (msg: string): void => console.log(`${new Date().toISOString().slice(11, 19)} ${msg}`);
const logger = {
  debug() {},
  info: (_: object, m?: string) => log(m ?? ''),
  warn: (_: object, m?: string) => log(`warn: ${m}`),
  error: (_: object, m?: string) => log(`error: ${m}`),
};

const hooks: TrackerHooks = {};
const system = await createTrackerSystem({ store: new MemoryStore(), hooks });
const chain = await startChain({ config: parseChainConfig(process.env), system, logger });
Object.assign(hooks, chain.watcher.hooks);
const open = new Set<string>();
system.subscribe((t) => {
  log(
    `${t.id.slice(0, 10)}… ${t.state}${t.confirmations ? ` (${t.confirmations}/${t.requiredConfirmations})` : ''}${t.failure ? ` ${t.failure.reason}: ${t.failure.detail}` : ''}`,
  );
  if (FINAL_STATE_NAMES.includes(t.state)) open.delete(t.id);
});
const stop = async (): Promise<void> => {
  await system.shutdown();
  await chain.stop();
  process.exit(0);
};
process.once('SIGINT', () => void stop());
await runDemo({
  url: chain.url,
  onTransaction: async ({ label, hash }) => {
    log(`sending ${label}: ${hash}`);
    open.add(hash);
    await system.start(undefined, { txHash: hash, confirmations: 3 });
  },
});
const timer = setInterval(() => {
  if (open.size === 0) {
    clearInterval(timer);
    void stop();
  }
}, 200);
