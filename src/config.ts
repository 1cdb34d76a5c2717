import { z } from 'zod';
import { DEFAULT_RESTART_POLICY } from '../machines/supervisor.machine.js';
import { MAX_CONFIRMATIONS, MIN_CONFIRMATIONS } from '../machines/tracker.machine.js';

const int = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, `must be an integer from ${min} to ${max}`)
    .transform(Number)
    .pipe(z.number().int().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`));

const flag = z.enum(['0', '1', 'true', 'false'], 'must be 1, 0, true or false').transform((v) => v === '1' || v === 'true');

const url = (protocols: RegExp) =>
  z.string().refine((value) => {
    try {
      return protocols.test(new URL(value).protocol);
    } catch {
      return false;
    }
  }, `must be a URL (${protocols.source.replace(/[\^$()]/g, '')})`);

/** Every variable, its default and its rule. Defaults are what `docs/api.md` lists. */
const ConfigSchema = z.object({
  PORT: int(0, 65535).default(3000),
  HOST: z.string().min(1, 'must not be empty').default('127.0.0.1'),
  /** Unset: the chain watcher starts an embedded anvil. */
  ETH_RPC_URL: url(/^(https?|wss?):$/).optional(),
  DATABASE_URL: z.string().regex(/^(sqlite:.+|memory:)$/, 'must be sqlite:<path> or memory:').default('sqlite:./data/trackers.db'),
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
  POLL_INTERVAL_MS: int(10, 3_600_000).default(1000),
  MAX_RESTARTS: int(0, 1_000_000).default(DEFAULT_RESTART_POLICY.maxRestarts),
  RESTART_WINDOW_MS: int(1, 2 ** 31 - 1).default(DEFAULT_RESTART_POLICY.restartWindowMs),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], 'must be one of fatal, error, warn, info, debug, trace, silent').default('info'),
});

export type Config = z.infer<typeof ConfigSchema> & {
  /** `INSPECT` as a tracker id filter: `'*'` for all trackers, else the prefix; undefined when off. */
  inspectFilter: string | undefined;
};

export const CONFIG_VARIABLES = Object.keys(ConfigSchema.shape);

/** Bad configuration: `message` is the one line the start fails with. */
export class ConfigError extends Error {
  override name = 'ConfigError';
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
  const inspect = parsed.data.INSPECT;
  const inspectFilter = inspect === undefined ? undefined : ['1', 'true', '*'].includes(inspect) ? '*' : inspect;
  return { ...parsed.data, inspectFilter };
}
