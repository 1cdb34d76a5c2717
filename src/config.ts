import { z } from 'zod';
import { DEFAULT_RESTART_POLICY } from '../machines/supervisor.machine.js';
import { FINALITY_TAGS, type Finality, MAX_CONFIRMATIONS, MIN_CONFIRMATIONS } from '../machines/tracker.machine.js';
import { DEFAULT_RETRY_SCHEDULE_MS } from './webhooks/dispatcher.js';
import { type AllowList, parseAllowList } from './webhooks/ssrf.js';

const int = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, `must be an integer from ${min} to ${max}`)
    .transform(Number)
    .pipe(z.number().int().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`));

const flag = z
  .enum(['0', '1', 'true', 'false'], 'must be 1, 0, true or false')
  .transform((v) => v === '1' || v === 'true');

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `0,5s,5m,30m,2h`: the delays before each webhook attempt (a number alone is ms). */
const retrySchedule = z.string().transform((text, ctx): number[] => {
  const delays: number[] = [];
  for (const entry of text.split(',').map((e) => e.trim())) {
    const match = /^(\d+)(ms|s|m|h)?$/.exec(entry);
    if (!match) {
      ctx.addIssue({ code: 'custom', message: `must be delays like 0,5s,5m,2h (${JSON.stringify(entry)} is not one)` });
      return z.NEVER;
    }
    delays.push(Number(match[1]) * DURATION_UNITS[match[2] ?? 'ms']!);
  }
  if (delays.length > 50) ctx.addIssue({ code: 'custom', message: 'must have at most 50 attempts' });
  return delays;
});

const allowHosts = z.string().transform((text, ctx): AllowList => {
  try {
    return parseAllowList(text);
  } catch (error) {
    ctx.addIssue({
      code: 'custom',
      message: `must list addresses, CIDR ranges or host names: ${(error as Error).message}`,
    });
    return z.NEVER;
  }
});

const url = (protocols: RegExp) =>
  z.string().refine(
    (value) => {
      try {
        return protocols.test(new URL(value).protocol);
      } catch {
        return false;
      }
    },
    `must be a URL (${protocols.source.replace(/[\^$()]/g, '')})`,
  );

/** Every variable, its default and its rule. Defaults are what `docs/api.md` lists. */
const ConfigSchema = z.object({
  PORT: int(0, 65535).default(3000),
  HOST: z.string().min(1, 'must not be empty').default('127.0.0.1'),
  /** Unset (and no CHAIN_<NAME>_RPC_URL): the chain watcher starts an embedded anvil. */
  ETH_RPC_URL: url(/^(https?|wss?):$/).optional(),
  /** With several CHAIN_<NAME>_RPC_URL: the chain of trackers started without one. */
  DEFAULT_CHAIN: z
    .string()
    .regex(/^[A-Za-z0-9_]+$/, 'must be the NAME of a CHAIN_<NAME>_RPC_URL')
    .optional(),
  DATABASE_URL: z
    .string()
    .regex(/^(sqlite:.+|memory:|postgres(ql)?:\/\/.+)$/, 'must be sqlite:<path>, postgres://… or memory:')
    .default('sqlite:./data/trackers.db'),
  REQUIRED_CONFIRMATIONS: int(MIN_CONFIRMATIONS, MAX_CONFIRMATIONS).default(12),
  API_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  /** `1`/`true`/`*`: every tracker; anything else: an id prefix. Unset: no inspection. */
  INSPECT: z.string().min(1, 'must not be empty (unset it to turn inspection off)').optional(),
  /** Port of the relay (`createInspectorServer`) the Stately inspector page connects to. */
  INSPECT_PORT: int(1, 65535).default(8080),
  FAULT_INJECTION: flag.default(false),
  /** `GET /events` streams open at once; more get 503 `too_many_streams`. */
  SSE_MAX_CLIENTS: int(1, 100_000).default(100),
  /** Changes kept for `Last-Event-ID` replay, by count and by bytes (the first bound reached wins). */
  SSE_REPLAY_EVENTS: int(1, 1_000_000).default(10_000),
  SSE_REPLAY_BYTES: int(1024, 1024 ** 3).default(8 * 1024 * 1024),
  /** A stream whose socket takes no data this long is cut off. */
  SSE_STALL_TIMEOUT_MS: int(100, 3_600_000).default(30_000),
  DROPPED_AFTER_MS: int(1, 2 ** 31 - 1).default(600_000),
  /** New blocks after which a pending tx the node holds and no block includes is `stuck`. */
  STUCK_AFTER_BLOCKS: int(1, 1_000_000).default(10),
  POLL_INTERVAL_MS: int(10, 3_600_000).default(1000),
  MAX_RESTARTS: int(0, 1_000_000).default(DEFAULT_RESTART_POLICY.maxRestarts),
  RESTART_WINDOW_MS: int(1, 2 ** 31 - 1).default(DEFAULT_RESTART_POLICY.restartWindowMs),
  /** With DATABASE_URL postgres://: a shard lease not renewed for this long may be taken by another instance. */
  LEASE_TTL_MS: int(100, 3_600_000).default(10_000),
  /** With DATABASE_URL postgres://: how often an instance renews its leases and rebalances. */
  HEARTBEAT_MS: int(20, 3_600_000).default(2_000),
  /** With DATABASE_URL postgres://: this instance's id among those sharing the database (default: host-pid-random). */
  INSTANCE_ID: z
    .string()
    .regex(/^[A-Za-z0-9_.:-]{1,128}$/, 'must be 1 to 128 letters, digits, _ . : -')
    .optional(),
  /** Trackers that ended longer ago than this lose their history (`GET /trackers/:id/history`); 0 keeps it. */
  HISTORY_RETENTION_DAYS: int(0, 36_500).default(30),
  /** Addresses, CIDR ranges or host names webhooks may reach although private or loopback. */
  WEBHOOK_ALLOW_HOSTS: allowHosts.default({ addresses: [], hosts: new Set<string>() }),
  WEBHOOK_RETRY_SCHEDULE: retrySchedule.default([...DEFAULT_RETRY_SCHEDULE_MS]),
  WEBHOOK_TIMEOUT_MS: int(100, 600_000).default(15_000),
  WEBHOOK_CONCURRENCY: int(1, 1000).default(4),
  WEBHOOK_DISABLE_AFTER_MS: int(1000, 2 ** 52).default(5 * 24 * 3_600_000),
  LOG_LEVEL: z
    .enum(
      ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
      'must be one of fatal, error, warn, info, debug, trace, silent',
    )
    .default('info'),
});

/** One chain to follow, as configured. */
export interface ChainSettings {
  /** Lower-case: `default` for `ETH_RPC_URL` or the embedded anvil, else the NAME of `CHAIN_<NAME>_RPC_URL`. */
  name: string;
  /** The node: http(s) polls, ws(s) subscribes to newHeads. Undefined: the embedded anvil. */
  rpcUrl: string | undefined;
  /** A second node of the same chain, used while the first fails. */
  fallbackUrl: string | undefined;
  /** The chain id the nodes must report (`eth_chainId`, checked at start); undefined: read from the node. */
  chainId: number | undefined;
  /** What its trackers started without `confirmations` wait for. */
  confirmations: number | Finality;
  pollIntervalMs: number;
  /** The variables its URL and id came from, for the one line a start fails with. */
  variables: { rpcUrl: string; chainId: string | undefined };
}

export type Config = z.infer<typeof ConfigSchema> & {
  /** `INSPECT` as a tracker id filter: `'*'` for all trackers, else the prefix; undefined when off. */
  inspectFilter: string | undefined;
  /** The chains to follow (at least one); `defaultChain` names one of them. */
  chains: ChainSettings[];
  defaultChain: string;
};

export const CONFIG_VARIABLES = Object.keys(ConfigSchema.shape);

/** Bad configuration: `message` is the one line the start fails with. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

const CHAIN_SETTINGS = ['RPC_URL', 'FALLBACK_URL', 'CONFIRMATIONS', 'POLL_INTERVAL_MS', 'ID'] as const;
type ChainSetting = (typeof CHAIN_SETTINGS)[number];
/** `CHAIN_<NAME>_<SETTING>`; NAME may hold underscores (`CHAIN_BASE_SEPOLIA_RPC_URL`). */
const CHAIN_VARIABLE = new RegExp(`^CHAIN_([A-Za-z0-9_]+?)_(${CHAIN_SETTINGS.join('|')})$`);

const nodeUrl = url(/^(https?|wss?):$/);
const chainConfirmations = z.union(
  [z.enum(FINALITY_TAGS as [Finality, ...Finality[]]), int(MIN_CONFIRMATIONS, MAX_CONFIRMATIONS)],
  `must be an integer from ${MIN_CONFIRMATIONS} to ${MAX_CONFIRMATIONS}, safe or finalized`,
);
const CHAIN_RULES: Record<ChainSetting, z.ZodType<unknown, string>> = {
  RPC_URL: nodeUrl,
  FALLBACK_URL: nodeUrl,
  CONFIRMATIONS: chainConfirmations,
  POLL_INTERVAL_MS: int(10, 3_600_000),
  ID: int(1, Number.MAX_SAFE_INTEGER),
};

const invalid = (name: string, message: string, value?: string): ConfigError =>
  new ConfigError(
    `invalid configuration: ${name} ${message}${value === undefined ? '' : ` (got ${JSON.stringify(value)})`}`,
  );

/**
 * The chains from the environment: one per `CHAIN_<NAME>_RPC_URL` (with its `_FALLBACK_URL`,
 * `_CONFIRMATIONS`, `_POLL_INTERVAL_MS`, `_ID`), else `ETH_RPC_URL` alone as the chain `default`,
 * else the embedded anvil (also `default`).
 */
function parseChains(
  env: Record<string, string | undefined>,
  base: z.infer<typeof ConfigSchema>,
): { chains: ChainSettings[]; defaultChain: string } {
  const byName = new Map<string, { name: string; prefix: string; values: Partial<Record<ChainSetting, string>> }>();
  for (const [variable, value] of Object.entries(env)) {
    const match = value === undefined || value === '' ? null : CHAIN_VARIABLE.exec(variable);
    if (!match) continue;
    const name = match[1]!.toLowerCase();
    const prefix = `CHAIN_${match[1]!}_`;
    const known = byName.get(name);
    if (known && known.prefix !== prefix) throw invalid(variable, `names the chain ${name} again, as ${known.prefix}*`);
    const chain = known ?? { name, prefix, values: {} };
    chain.values[match[2] as ChainSetting] = value!;
    byName.set(name, chain);
  }
  if (byName.size === 0) {
    if (base.DEFAULT_CHAIN !== undefined && base.DEFAULT_CHAIN.toLowerCase() !== 'default') {
      throw invalid(
        'DEFAULT_CHAIN',
        'names no configured chain (there is no CHAIN_<NAME>_RPC_URL)',
        base.DEFAULT_CHAIN,
      );
    }
    const chain: ChainSettings = {
      name: 'default',
      rpcUrl: base.ETH_RPC_URL,
      fallbackUrl: undefined,
      chainId: undefined,
      confirmations: base.REQUIRED_CONFIRMATIONS,
      pollIntervalMs: base.POLL_INTERVAL_MS,
      variables: { rpcUrl: 'ETH_RPC_URL', chainId: undefined },
    };
    return { chains: [chain], defaultChain: 'default' };
  }
  const first = [...byName.values()][0]!;
  if (base.ETH_RPC_URL !== undefined) {
    throw invalid(
      'ETH_RPC_URL',
      `cannot be set with ${first.prefix}* (configure every chain with CHAIN_<NAME>_RPC_URL)`,
    );
  }
  // A setting that is not one, for a chain that is configured: a typo, not something to ignore.
  for (const [variable, value] of Object.entries(env)) {
    if (value === undefined || value === '' || CHAIN_VARIABLE.test(variable)) continue;
    const chain = [...byName.values()].find((c) => variable.startsWith(c.prefix));
    if (chain)
      throw invalid(variable, `is not a chain setting (${CHAIN_SETTINGS.map((x) => chain.prefix + x).join(', ')})`);
  }
  const chains: ChainSettings[] = [];
  const ids = new Map<number, string>();
  for (const { name, prefix, values } of byName.values()) {
    if (/^\d+$/.test(name)) throw invalid(`${prefix}RPC_URL`, `names a chain ${name}: a name must not be all digits`);
    if (values.RPC_URL === undefined) {
      const given = Object.keys(values).map((setting) => prefix + setting)[0]!;
      throw invalid(`${prefix}RPC_URL`, `is required (${given} is set)`);
    }
    const parsed: Partial<Record<ChainSetting, unknown>> = {};
    for (const setting of CHAIN_SETTINGS) {
      const raw = values[setting];
      if (raw === undefined) continue;
      const result = CHAIN_RULES[setting].safeParse(setting === 'CONFIRMATIONS' ? raw.toLowerCase() : raw);
      if (!result.success) throw invalid(prefix + setting, result.error.issues[0]!.message, raw);
      parsed[setting] = result.data;
    }
    const chainId = parsed.ID as number | undefined;
    if (chainId !== undefined) {
      const other = ids.get(chainId);
      if (other) throw invalid(`${prefix}ID`, `is ${chainId}, the id of ${other} too`);
      ids.set(chainId, `${prefix}ID`);
    }
    chains.push({
      name,
      rpcUrl: parsed.RPC_URL as string,
      fallbackUrl: parsed.FALLBACK_URL as string | undefined,
      chainId,
      confirmations: (parsed.CONFIRMATIONS as number | Finality | undefined) ?? base.REQUIRED_CONFIRMATIONS,
      pollIntervalMs: (parsed.POLL_INTERVAL_MS as number | undefined) ?? base.POLL_INTERVAL_MS,
      variables: { rpcUrl: `${prefix}RPC_URL`, chainId: chainId === undefined ? undefined : `${prefix}ID` },
    });
  }
  const wanted = base.DEFAULT_CHAIN?.toLowerCase();
  if (wanted === undefined && chains.length > 1) {
    throw invalid('DEFAULT_CHAIN', `is required with several chains (${chains.map((c) => c.name).join(', ')})`);
  }
  const defaultChain = wanted ?? chains[0]!.name;
  if (!chains.some((c) => c.name === defaultChain)) {
    throw invalid(
      'DEFAULT_CHAIN',
      `names no configured chain (${chains.map((c) => c.name).join(', ')})`,
      base.DEFAULT_CHAIN,
    );
  }
  return { chains, defaultChain };
}

/**
 * Parse the environment once, at start, into a typed object. Empty variables count as unset.
 *
 * @example
 * const config = parseConfig(process.env); // throws ConfigError('PORT must be an integer from 0 to 65535 (got "abc")')
 */
export function parseConfig(env: Record<string, string | undefined>): Config {
  const input: Record<string, string> = {};
  for (const name of CONFIG_VARIABLES) {
    const value = env[name];
    if (value !== undefined && value !== '') input[name] = value;
  }
  const parsed = ConfigSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const name = String(issue.path[0]);
    const shown = name === 'API_TOKEN' ? '<hidden>' : JSON.stringify(input[name]);
    throw new ConfigError(`invalid configuration: ${name} ${issue.message} (got ${shown})`);
  }
  if (parsed.data.HEARTBEAT_MS * 2 > parsed.data.LEASE_TTL_MS) {
    throw invalid(
      'HEARTBEAT_MS',
      `must be at most half of LEASE_TTL_MS (${parsed.data.LEASE_TTL_MS}), so a lease is renewed before it runs out`,
      input.HEARTBEAT_MS ?? String(parsed.data.HEARTBEAT_MS),
    );
  }
  const inspect = parsed.data.INSPECT;
  const inspectFilter = inspect === undefined ? undefined : ['1', 'true', '*'].includes(inspect) ? '*' : inspect;
  return { ...parsed.data, inspectFilter, ...parseChains(env, parsed.data) };
}
