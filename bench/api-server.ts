/**
 * The tracker service as `npm start` runs it (same config parsing, store factory, system and HTTP
 * server), on a free port, for `npm run bench:api`. Prints `{"url": …, "database": …, "chain": …}` once
 * listening; `chain` is the embedded anvil's URL (null with ETH_RPC_URL), which the bench mines on.
 */
import { pino } from 'pino';
import { parseConfig } from '../src/config.js';
import { startService } from '../src/service.js';

const config = parseConfig({ ...process.env, PORT: '0', LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn' });
const service = await startService(config, pino({ level: config.LOG_LEVEL }));
const chain = service.chain.anvil ? service.chain.url : null;
process.stdout.write(`${JSON.stringify({ url: service.server.url, database: service.where.database, chain })}\n`);
process.on('SIGTERM', () => void service.stop().then(() => process.exit(0)));
