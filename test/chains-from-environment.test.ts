import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../src/config.js';

describe('chains from the environment', () => {
  it('no chain configured: one chain named default, the embedded anvil; ETH_RPC_URL alone: that node', () => {
    expect(parseConfig({})).toMatchObject({
      defaultChain: 'default',
      chains: [{ name: 'default', rpcUrl: undefined, confirmations: 12 }],
    });
    expect(
      parseConfig({ ETH_RPC_URL: 'wss://node.example/key', REQUIRED_CONFIRMATIONS: '3', POLL_INTERVAL_MS: '250' }),
    ).toMatchObject({
      defaultChain: 'default',
      chains: [
        {
          name: 'default',
          rpcUrl: 'wss://node.example/key',
          chainId: undefined,
          confirmations: 3,
          pollIntervalMs: 250,
        },
      ],
    });
  });

  it('one chain per CHAIN_<NAME>_RPC_URL with its settings, names lower-cased (underscores kept), defaults from the global ones', () => {
    const config = parseConfig({
      CHAIN_MAINNET_RPC_URL: 'wss://eth.example',
      CHAIN_MAINNET_FALLBACK_URL: 'https://eth-backup.example',
      CHAIN_MAINNET_CONFIRMATIONS: 'Finalized',
      CHAIN_MAINNET_ID: '1',
      CHAIN_BASE_SEPOLIA_RPC_URL: 'http://127.0.0.1:9545',
      CHAIN_BASE_SEPOLIA_POLL_INTERVAL_MS: '250',
      DEFAULT_CHAIN: 'MAINNET',
      REQUIRED_CONFIRMATIONS: '6',
    });
    expect(config.defaultChain).toBe('mainnet');
    expect(config.chains).toEqual([
      {
        name: 'mainnet',
        rpcUrl: 'wss://eth.example',
        fallbackUrl: 'https://eth-backup.example',
        chainId: 1,
        confirmations: 'finalized',
        pollIntervalMs: 1000,
        variables: { rpcUrl: 'CHAIN_MAINNET_RPC_URL', chainId: 'CHAIN_MAINNET_ID' },
      },
      {
        name: 'base_sepolia',
        rpcUrl: 'http://127.0.0.1:9545',
        fallbackUrl: undefined,
        chainId: undefined,
        confirmations: 6,
        pollIntervalMs: 250,
        variables: { rpcUrl: 'CHAIN_BASE_SEPOLIA_RPC_URL', chainId: undefined },
      },
    ]);
    // One chain needs no DEFAULT_CHAIN.
    expect(parseConfig({ CHAIN_BASE_RPC_URL: 'https://base.example' }).defaultChain).toBe('base');
  });

  it.each([
    [
      { CHAIN_BASE_RPC_URL: 'https://b.example', CHAIN_OP_RPC_URL: 'https://o.example' },
      'DEFAULT_CHAIN is required with several chains (base, op)',
    ],
    [
      { CHAIN_BASE_RPC_URL: 'https://b.example', DEFAULT_CHAIN: 'op' },
      'DEFAULT_CHAIN names no configured chain (base) (got "op")',
    ],
    [{ DEFAULT_CHAIN: 'base' }, 'DEFAULT_CHAIN names no configured chain'],
    [
      { CHAIN_BASE_RPC_URL: 'https://b.example', ETH_RPC_URL: 'https://e.example' },
      'ETH_RPC_URL cannot be set with CHAIN_BASE_*',
    ],
    [{ CHAIN_BASE_RPC_URL: 'ftp://b.example' }, 'CHAIN_BASE_RPC_URL must be a URL'],
    [
      { CHAIN_BASE_RPC_URL: 'https://b.example', CHAIN_BASE_FALLBACK_URL: 'b.example' },
      'CHAIN_BASE_FALLBACK_URL must be a URL',
    ],
    [
      { CHAIN_BASE_RPC_URL: 'https://b.example', CHAIN_BASE_CONFIRMATIONS: 'latest' },
      'CHAIN_BASE_CONFIRMATIONS must be an integer from 1 to 1000, safe or finalized (got "latest")',
    ],
    [
      { CHAIN_BASE_RPC_URL: 'https://b.example', CHAIN_BASE_CONFIRMATIONS: '1001' },
      'CHAIN_BASE_CONFIRMATIONS must be at most 1000',
    ],
    [
      { CHAIN_BASE_RPC_URL: 'https://b.example', CHAIN_BASE_POLL_INTERVAL_MS: '5' },
      'CHAIN_BASE_POLL_INTERVAL_MS must be at least 10',
    ],
    [{ CHAIN_BASE_RPC_URL: 'https://b.example', CHAIN_BASE_ID: '0x2105' }, 'CHAIN_BASE_ID must be an integer'],
    [{ CHAIN_BASE_ID: '8453' }, 'CHAIN_BASE_RPC_URL is required (CHAIN_BASE_ID is set)'],
    [
      { CHAIN_BASE_RPC_URL: 'https://b.example', CHAIN_BASE_CONFIRMATION: '3' },
      'CHAIN_BASE_CONFIRMATION is not a chain setting',
    ],
    [
      {
        CHAIN_A_RPC_URL: 'https://a.example',
        CHAIN_A_ID: '1',
        CHAIN_B_RPC_URL: 'https://b.example',
        CHAIN_B_ID: '1',
        DEFAULT_CHAIN: 'a',
      },
      'CHAIN_B_ID is 1, the id of CHAIN_A_ID too',
    ],
    [{ CHAIN_137_RPC_URL: 'https://p.example' }, 'CHAIN_137_RPC_URL names a chain 137: a name must not be all digits'],
  ])('refuses %o with one line naming the variable', (env, message) => {
    let error: unknown;
    try {
      parseConfig(env);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toContain(`invalid configuration: ${message}`);
    expect((error as Error).message).not.toContain('\n');
  });
});
