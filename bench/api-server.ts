/**
 * The tracker service as `npm start` runs it (same config parsing, store factory, system and HTTP
 * server), on a free port, for `npm run bench:api`. Prints `{"url": …, "database": …}` once listening.
 */
import { pino } from 'pino';
import { parseConfig } from '../src/config.js';
import { startService } from '../src/service.js';

const config = parseConfig({ ...process.env, PORT: '0', LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn' });
const service = await startService(config, pino({ level: config.LOG_LEVEL }));
process.stdout.write(`${JSON.stringify({ url: service.server.url, database: service.where.database })}\n`);
process.on('SIGTERM', () => void service.stop().then(() => process.exit(0)));
