import { join } from 'node:path';
import { afterAll, beforeAll, describe } from 'vitest';
import { MemoryStore } from '../src/store/memory.js';
import { PostgresStore } from '../src/store/postgres.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { tempDir } from './helpers.js';
import { type PostgresServer, describeWithPostgres, startPostgres } from './support/postgres.js';
import { webhookStoreContract } from './support/webhook-store-contract.js';

describe('MemoryStore keeps the WebhookStore contract', () => {
  webhookStoreContract(async () => ({ open: async () => new MemoryStore(), close: async () => undefined }));
});

describe('SqliteStore keeps the WebhookStore contract', () => {
  webhookStoreContract(async () => {
    const dir = tempDir('tx-tracker-webhook-contract-');
    let n = 0;
    return {
      open: async () => new SqliteStore({ path: join(dir.path, `${n++}.db`) }),
      close: async () => dir.remove(),
    };
  });
});

describeWithPostgres('PostgresStore keeps the WebhookStore contract', () => {
  let server: PostgresServer;
  beforeAll(async () => {
    server = await startPostgres();
  }, 60_000);
  afterAll(() => server?.close());

  webhookStoreContract(async () => ({
    open: async () => PostgresStore.open({ url: await server.createDatabase() }),
    close: async () => undefined,
  }));
});
