import { lookup } from 'node:dns/promises';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { BlockList, isIP } from 'node:net';
import { RequestFilteringHttpAgent, RequestFilteringHttpsAgent } from 'request-filtering-agent';

/**
 * Addresses a webhook may not reach unless allowed: loopback, private, shared (CGNAT), link-local
 * (cloud metadata at 169.254.169.254), unspecified, multicast and reserved ranges (RFC 6890).
 * `request-filtering-agent` enforces its own, stricter rule at connect time; this one answers at
 * creation, before anything is stored.
 */
const BLOCKED = new BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  BLOCKED.addSubnet(network, prefix, 'ipv4');
}
for (const [network, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
  ['64:ff9b::', 96],
] as const) {
  BLOCKED.addSubnet(network, prefix, 'ipv6');
}

/** `WEBHOOK_ALLOW_HOSTS` parsed: addresses and CIDR ranges, and host names allowed whatever they resolve to. */
export interface AllowList {
  addresses: string[];
  hosts: Set<string>;
}

/**
 * Parse `WEBHOOK_ALLOW_HOSTS` (comma-separated IPs, CIDRs or host names); throws on a bad CIDR.
 *
 * @example
 * parseAllowList('127.0.0.1,10.0.0.0/8,hooks.internal');
 */
export function parseAllowList(text: string | undefined): AllowList {
  const addresses: string[] = [];
  const hosts = new Set<string>();
  for (const entry of (text ?? '')
    .split(',')
    .map((e) => e.trim().toLowerCase())
    .filter(Boolean)) {
    const [network, prefix] = entry.split('/');
    if (isIP(network!) !== 0) {
      if (prefix !== undefined && !/^\d{1,3}$/.test(prefix))
        throw new Error(`${entry} is not an address or CIDR range`);
      addresses.push(entry);
    } else if (prefix === undefined && /^[a-z0-9.-]+$/.test(entry)) {
      hosts.add(entry);
    } else {
      throw new Error(`${entry} is not an address, CIDR range or host name`);
    }
  }
  return { addresses, hosts };
}

function allowedList(allow: AllowList): BlockList {
  const list = new BlockList();
  for (const entry of allow.addresses) {
    const [network, prefix] = entry.split('/');
    const family = isIP(network!) === 6 ? 'ipv6' : 'ipv4';
    if (prefix === undefined) list.addAddress(network!, family);
    else list.addSubnet(network!, Number(prefix), family);
  }
  return list;
}

/** Why an address may not be reached, or undefined when it may. */
function refusal(address: string, allow: BlockList): string | undefined {
  const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
  if (allow.check(address, family)) return undefined;
  // An IPv4-mapped IPv6 address (::ffff:127.0.0.1) is the IPv4 address it carries.
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  if (mapped) return refusal(mapped, allow);
  if (BLOCKED.check(address, family)) return `${address} is a loopback, private, link-local or reserved address`;
  return undefined;
}

/** The URL may not be a webhook endpoint: `code` and a message for the 400. */
export class WebhookUrlError extends Error {
  override name = 'WebhookUrlError';
  constructor(
    readonly code: 'invalid_url' | 'forbidden_address' | 'unresolvable_host',
    message: string,
  ) {
    super(message);
  }
}

/**
 * Check a webhook URL at creation: http(s), and every address its host resolves to reachable under
 * the allow list. Throws `WebhookUrlError`. Delivery checks again at connect time (`agentFor`), so a
 * name that later resolves elsewhere (DNS rebinding) is refused then.
 *
 * @example
 * await checkWebhookUrl('https://hooks.example.com/tx', parseAllowList(process.env.WEBHOOK_ALLOW_HOSTS));
 */
export async function checkWebhookUrl(text: string, allow: AllowList): Promise<URL> {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new WebhookUrlError('invalid_url', 'url must be an absolute http(s) URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new WebhookUrlError('invalid_url', 'url must be http: or https:');
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (allow.hosts.has(host)) return url;
  let addresses: string[];
  if (isIP(host) !== 0) addresses = [host];
  else {
    try {
      addresses = (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);
    } catch {
      throw new WebhookUrlError('unresolvable_host', `the host ${host} does not resolve`);
    }
  }
  const allowed = allowedList(allow);
  for (const address of addresses) {
    const why = refusal(address, allowed);
    if (why) {
      throw new WebhookUrlError(
        'forbidden_address',
        `${host} resolves to ${why}; list it in WEBHOOK_ALLOW_HOSTS to allow it`,
      );
    }
  }
  return url;
}

/** The HTTP agents deliveries use: the address is checked when each connection is made. */
export interface DeliveryAgents {
  agentFor(url: URL): HttpAgent;
  destroy(): void;
}

/**
 * Agents that refuse, at connect time, addresses outside the allow list (`request-filtering-agent`),
 * and plain ones for host names the allow list names.
 *
 * @example
 * const agents = deliveryAgents(parseAllowList('127.0.0.1'));
 * http.request(url, { agent: agents.agentFor(url) });
 */
export function deliveryAgents(allow: AllowList): DeliveryAgents {
  const options = { keepAlive: true, allowIPAddressList: allow.addresses };
  const filtered = { http: new RequestFilteringHttpAgent(options), https: new RequestFilteringHttpsAgent(options) };
  const plain = { http: new HttpAgent({ keepAlive: true }), https: new HttpsAgent({ keepAlive: true }) };
  return {
    agentFor(url) {
      const host = url.hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
      const set = allow.hosts.has(host) ? plain : filtered;
      return url.protocol === 'https:' ? set.https : set.http;
    },
    destroy() {
      for (const agent of [filtered.http, filtered.https, plain.http, plain.https]) agent.destroy();
    },
  };
}
