import { type Agent, type IncomingMessage, request } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface SendParameters {
  url: URL;
  body: string;
  headers: Record<string, string>;
  agent: Agent;
  timeoutMs: number;
  /** Bytes of the response read at most; the rest is not waited for. */
  maxResponseBytes: number;
  /** Aborts the request (the result then says so). */
  signal?: AbortSignal;
}

export interface SendResult {
  /** null when no response came. */
  statusCode: number | null;
  latencyMs: number;
  /** Why it failed, or null on a 2xx. */
  error: string | null;
  /** A `Retry-After` the response gave, in ms from now. */
  retryAfterMs: number | null;
}

/** `Retry-After` as delay-seconds or an HTTP date (RFC 9110 section 10.2.3), in ms from `now`. */
export function parseRetryAfter(value: string | undefined, now: number): number | null {
  if (!value) return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

/**
 * One POST of a webhook: redirects are not followed (a 3xx is a failure), only a 2xx succeeds, the
 * whole exchange is bounded by `timeoutMs` and at most `maxResponseBytes` of the answer are read.
 * Never throws: a failure is in the result.
 *
 * @example
 * const result = await sendWebhook({ url, body, headers, agent, timeoutMs: 15_000, maxResponseBytes: 65_536 });
 */
export function sendWebhook(params: SendParameters): Promise<SendResult> {
  const started = performance.now();
  const latency = () => Math.round(performance.now() - started);
  return new Promise((resolve) => {
    let settled = false;
    const finish = (result: Omit<SendResult, 'latencyMs'>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ ...result, latencyMs: latency() });
    };
    const send = params.url.protocol === 'https:' ? httpsRequest : request;
    const req = send(params.url, {
      method: 'POST',
      agent: params.agent,
      ...(params.signal ? { signal: params.signal } : {}),
      headers: {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(params.body),
        'user-agent': 'tx-tracker-webhooks',
        ...params.headers,
      },
    });
    const timer = setTimeout(() => {
      req.destroy();
      finish({ statusCode: null, error: `no answer within ${params.timeoutMs} ms`, retryAfterMs: null });
    }, params.timeoutMs);
    req.on('error', (error: Error) => finish({ statusCode: null, error: error.message, retryAfterMs: null }));
    req.on('response', (res: IncomingMessage) => {
      const statusCode = res.statusCode ?? 0;
      const retryAfter = res.headers['retry-after'];
      const retryAfterMs = parseRetryAfter(Array.isArray(retryAfter) ? retryAfter[0] : retryAfter, Date.now());
      let read = 0;
      let text = '';
      const done = () => {
        const ok = statusCode >= 200 && statusCode < 300;
        const redirect = statusCode >= 300 && statusCode < 400 ? ' (redirects are not followed)' : '';
        const answer = text.trim().slice(0, 200);
        finish({
          statusCode,
          error: ok ? null : `HTTP ${statusCode}${redirect}${answer ? `: ${answer}` : ''}`,
          retryAfterMs,
        });
      };
      res.on('data', (chunk: Buffer) => {
        read += chunk.length;
        if (text.length < 200) text += chunk.toString('utf8', 0, Math.min(chunk.length, 200));
        if (read >= params.maxResponseBytes) {
          // Enough: the status decides, and a large answer must not hold the worker.
          res.destroy();
          done();
        }
      });
      res.on('end', done);
      res.on('error', done);
      res.on('close', done);
    });
    req.end(params.body);
  });
}
