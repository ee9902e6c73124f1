import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCallTools, resolveWithDns } from '../../media-node/tools/call-tools';
import { createCredentialStore } from '../../shared/store/credentials';
import { createSecretBox } from '../../shared/store/secret-box';
import { sqlBackends } from '../store/backends';
import { parseAssistantConfig, type AssistantConfigInput } from '../../shared/config/assistant';
import { createToolExecutor, type ToolExecutorDeps } from '../../shared/tools/executor';
import { assertReachable, parseHostAllowList, runHttpTool, type ResolveHost } from '../../shared/tools/http-tool';
import { blockedReason, parseIp } from '../../shared/tools/ip';

// The http tool against a real local server (allowed through the allow-list, as TOOL_HTTP_ALLOW would),
// and the SSRF guard refusing what it must.

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}
let server: Server;
let port: number;
const seen: Seen[] = [];
let handler: (req: Seen, res: ServerResponse) => void = (_req, res) => res.end('{}');

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      const s = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body };
      seen.push(s);
      handler(s, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const signal = new AbortController().signal;
const base = { prompt: 'p', stt: { provider: 'x' }, llm: { provider: 'x' }, tts: { provider: 'x' } };
type Action = Extract<NonNullable<AssistantConfigInput['tools']>[number]['action'], { type: 'http' }>;
const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
};

function httpTool(action: Omit<Action, 'type'>, deps: Partial<ToolExecutorDeps['http']> & { variables?: Record<string, string> } = {}) {
  const tools = parseAssistantConfig({
    ...base,
    tools: [{ name: 'api', description: 'd', parameters: { type: 'object', properties: { city: { type: 'string' }, n: { type: 'number' } } }, action: { type: 'http', ...action } }],
  }).tools;
  const executor = createToolExecutor(tools, {
    variables: deps.variables ?? {},
    http: { allow: deps.allow ?? parseHostAllowList('127.0.0.1'), ...(deps.resolve ? { resolve: deps.resolve } : {}), ...(deps.credential ? { credential: deps.credential } : {}) },
  });
  return async (args: Record<string, unknown>) => JSON.parse(await executor.execute({ id: 'c', name: 'api', arguments: JSON.stringify(args) }, signal)) as Record<string, unknown>;
}

describe('http tool against a local server (allow-listed)', () => {
  it('GET: URL template filled and URL-encoded (call variables first), credential header, JSON back to the model', async () => {
    handler = (_req, res) => json(res, 200, { temperature: 21, sky: 'clear' });
    seen.length = 0;
    const call = httpTool(
      { url: `http://127.0.0.1:${port}/weather/{{city}}?account={{account}}`, headers: { Authorization: { credential: 'weather', prefix: 'Bearer ' }, 'X-Account': '{{account}}' } },
      { variables: { account: 'acme corp' }, credential: async (name) => (name === 'weather' ? '{"apiKey":"s3cret"}' : undefined) },
    );
    expect(await call({ city: 'São Paulo/../x', account: 'evil' })).toEqual({ temperature: 21, sky: 'clear' });
    expect(seen[0]).toMatchObject({ method: 'GET', url: '/weather/S%C3%A3o%20Paulo%2F..%2Fx?account=acme%20corp', body: '' });
    expect(seen[0]!.headers.authorization).toBe('Bearer s3cret');
    expect(seen[0]!.headers['x-account']).toBe('acme corp');
  });

  it('POST: the arguments as JSON by default; a body template keeps value types', async () => {
    handler = (_req, res) => json(res, 201, { ok: true });
    seen.length = 0;
    expect(await httpTool({ method: 'POST', url: `http://127.0.0.1:${port}/orders` })({ city: 'Oslo', n: 2 })).toEqual({ ok: true });
    expect(JSON.parse(seen[0]!.body)).toEqual({ city: 'Oslo', n: 2 });
    expect(seen[0]!.headers['content-type']).toBe('application/json');
    await httpTool({ method: 'POST', url: `http://127.0.0.1:${port}/orders`, body: { where: '{{city}}', count: '{{n}}', note: 'for {{city}}' } })({ city: 'Oslo', n: 2 });
    expect(JSON.parse(seen[1]!.body)).toEqual({ where: 'Oslo', count: 2, note: 'for Oslo' });
  });

  it('a missing placeholder, an HTTP error and a time-out are error results', async () => {
    expect((await httpTool({ url: `http://127.0.0.1:${port}/{{nothing}}` })({})).error).toMatch(/needs "nothing"/);
    handler = (_req, res) => json(res, 404, { message: 'no such city' });
    expect((await httpTool({ url: `http://127.0.0.1:${port}/x` })({})).error).toBe(`127.0.0.1:${port} answered HTTP 404: {"message":"no such city"}`);
    handler = () => undefined; // never answers
    const started = Date.now();
    expect((await httpTool({ url: `http://127.0.0.1:${port}/slow`, timeoutMs: 300 })({})).error).toBe('no answer within 300 ms');
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('a large answer is cut to responseMaxBytes on a character boundary and marked truncated', async () => {
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ text: 'é'.repeat(5000) }));
    };
    const result = await httpTool({ url: `http://127.0.0.1:${port}/big`, responseMaxBytes: 1001 })({});
    expect(result.truncated).toBe(true);
    expect(Buffer.byteLength(result.body as string)).toBeLessThanOrEqual(1001);
    expect(result.body as string).not.toContain('\uFFFD');
  });

  it('redirects are followed (at most 3); a redirect to a private address is refused', async () => {
    handler = (req, res) => {
      if (req.url === '/a') return json(res, 302, {}, { location: '/b' });
      if (req.url === '/b') return json(res, 200, { landed: true });
      if (req.url === '/private') return json(res, 302, {}, { location: 'http://10.1.2.3/secret' });
      if (req.url === '/metadata') return json(res, 307, {}, { location: 'http://169.254.169.254/latest/meta-data/' });
      return json(res, 302, {}, { location: '/loop' });
    };
    expect(await httpTool({ url: `http://127.0.0.1:${port}/a` })({})).toEqual({ landed: true });
    expect((await httpTool({ url: `http://127.0.0.1:${port}/private` })({})).error).toMatch(/refused: 10\.1\.2\.3 is a private address/);
    expect((await httpTool({ url: `http://127.0.0.1:${port}/metadata` })({})).error).toMatch(/refused: 169\.254\.169\.254 is a link-local/);
    expect((await httpTool({ url: `http://127.0.0.1:${port}/loop` })({})).error).toMatch(/redirected more than 3 times/);
  });

  it('credential headers are not sent to another origin after a redirect', async () => {
    const allowBoth = parseHostAllowList('127.0.0.1,localhost');
    handler = (req, res) => (req.url === '/start' ? json(res, 302, {}, { location: `http://localhost:${port}/other` }) : json(res, 200, { auth: req.headers.authorization ?? null }));
    const call = httpTool(
      { url: `http://127.0.0.1:${port}/start`, headers: { Authorization: { credential: 'k' } } },
      { allow: allowBoth, credential: async () => 'plain-secret', resolve: async () => ['127.0.0.1'] },
    );
    expect(await call({})).toEqual({ auth: null });
  });
});

describe('http tool credentials and URL templates', () => {
  it('a header may use only credentials stored with provider http: another provider\'s secret is an error and nothing is sent', async () => {
    const db = await sqlBackends()[0]!.open();
    try {
      const store = createCredentialStore(db, await createSecretBox('test-secret-key-0123456789abcdef'));
      const projectId = crypto.randomUUID();
      await db.query('INSERT INTO projects (id, name) VALUES ($1::uuid, $2::text)', [projectId, 'Acme']);
      await store.create({ projectId, provider: 'twilio', name: 'twilio-main', secret: '{"accountSid":"AC1","authToken":"twilio-auth-token"}' });
      await store.create({ projectId, provider: 'http', name: 'weather', secret: '{"apiKey":"s3cret"}' });
      const toolsFor = (credential: string, field: string) =>
        createCallTools({
          config: parseAssistantConfig({
            ...base,
            tools: [{ name: 'api', description: 'd', action: { type: 'http', url: `http://127.0.0.1:${port}/leak`, headers: { 'X-Auth': { credential, field } } } }],
          }),
          context: { projectId, variables: {} },
          credentials: store,
          env: { TOOL_HTTP_ALLOW: '127.0.0.1' },
        })!;
      handler = (_req, res) => json(res, 200, { ok: true });
      seen.length = 0;
      const refused = JSON.parse(await toolsFor('twilio-main', 'authToken').execute({ id: 'c', name: 'api', arguments: '{}' }, signal)) as Record<string, unknown>;
      expect(refused.error).toMatch(/twilio-main/);
      expect(JSON.stringify(refused)).not.toContain('twilio-auth-token');
      expect(seen).toHaveLength(0);
      expect(JSON.parse(await toolsFor('weather', 'apiKey').execute({ id: 'c', name: 'api', arguments: '{}' }, signal))).toEqual({ ok: true });
      expect(seen[0]!.headers['x-auth']).toBe('s3cret');
      // The provider-agnostic resolve other callers rely on is unchanged.
      expect(await store.resolve(projectId, 'http', 'twilio-main')).toContain('twilio-auth-token');
      expect(await store.resolveForProvider(projectId, 'http', 'twilio-main')).toBeUndefined();
    } finally {
      await db.close();
    }
  }, 60_000);

  it('a placeholder in the scheme, host or port of the URL is a config error (and refused at run time)', () => {
    const config = (url: string) => () =>
      parseAssistantConfig({ ...base, tools: [{ name: 'api', description: 'd', action: { type: 'http', url } }] });
    for (const url of ['https://{{host}}/x', 'https://api.{{tenant}}.example.com/x', 'https://api.example.com{{path}}', 'https://api.example.com:{{port}}/x', 'https://{{u}}@api.example.com/']) {
      expect(config(url), url).toThrow(/placeholders are not allowed in the scheme, host or port/);
    }
    expect(config('https://api.example.com/{{path}}?q={{q}}#{{f}}')).not.toThrow();
    expect(config('https://api.example.com?q={{q}}')).not.toThrow();
  });

  it('the run-time check refuses an unchecked action with a placeholder in the host before any request', async () => {
    let fetched = false;
    const action = { type: 'http', method: 'GET', url: 'http://{{host}}/x', headers: {}, timeoutMs: 1000, responseMaxBytes: 1024 } as const;
    await expect(
      runHttpTool(action, { host: '127.0.0.1' }, {}, { allow: parseHostAllowList('127.0.0.1'), fetch: async () => ((fetched = true), new Response('{}')) }, signal),
    ).rejects.toThrow(/placeholders are not allowed/);
    expect(fetched).toBe(false);
  });
});

describe('SSRF guard', () => {
  const guard = { allow: parseHostAllowList('') };
  const refusal = async (url: string, resolve?: ResolveHost) => {
    try {
      await assertReachable(new URL(url), { ...guard, ...(resolve ? { resolve } : {}) });
      return undefined;
    } catch (error) {
      return (error as Error).message;
    }
  };

  it('refuses loopback, private, link-local/metadata, CGNAT, 0/8 and IPv6 private forms without an allow-list', async () => {
    expect(await refusal('http://127.0.0.1/')).toMatch(/loopback/);
    expect(await refusal('http://2130706433/')).toMatch(/127\.0\.0\.1 is a loopback/); // decimal form, normalised by URL
    expect(await refusal('http://10.20.30.40/')).toMatch(/private/);
    expect(await refusal('http://172.31.0.1/')).toMatch(/private/);
    expect(await refusal('http://192.168.1.1/')).toMatch(/private/);
    expect(await refusal('http://169.254.169.254/latest/meta-data/')).toMatch(/link-local/);
    expect(await refusal('http://100.100.100.200/')).toMatch(/carrier-grade NAT/);
    expect(await refusal('http://0.0.0.0/')).toMatch(/unspecified/);
    expect(await refusal('http://[::1]/')).toMatch(/::1 is a loopback/);
    expect(await refusal('http://[fd00:ec2::254]/')).toMatch(/private/);
    expect(await refusal('http://[fe80::1]/')).toMatch(/link-local/);
    expect(await refusal('http://[::ffff:127.0.0.1]/')).toMatch(/loopback/);
    expect(await refusal('http://[64:ff9b::a00:1]/')).toMatch(/private/);
    expect(await refusal('http://localhost:8080/')).toMatch(/loopback name/);
    expect(await refusal('file:///etc/passwd')).toMatch(/only http and https/);
    expect(await refusal('http://user:pw@example.com/')).toMatch(/credentials/);
    expect(await refusal('http://192.0.2.10/')).toMatch(/documentation/);
    expect(await refusal('http://198.51.100.7/')).toMatch(/documentation/);
    expect(await refusal('http://203.0.113.200/')).toMatch(/documentation/);
    expect(await refusal('http://[64:ff9b:1::a00:1]/')).toMatch(/local-use NAT64/);
    expect(await refusal('http://[::ffff:0:a00:1]/')).toMatch(/IPv4-translated/);
    expect(await refusal('http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/')).toMatch(/Teredo/);
    expect(await refusal('http://[100::1]/')).toMatch(/discard-only/);
    expect(await refusal('https://93.184.215.14/')).toBeUndefined();
    expect(await refusal('http://[2001:4860::8888]/')).toBeUndefined(); // 2001:4860::/32 is not Teredo's 2001::/32
    expect(await refusal('http://[64:ff9b:2::1]/')).toBeUndefined();
    expect(await refusal('http://[2606:4700::1111]/')).toBeUndefined();
  });

  it('a DNS lookup that never answers is bounded by the tool time-out', async () => {
    const started = performance.now();
    const call = httpTool({ url: 'http://slow.example.com/x', timeoutMs: 200 }, { resolve: () => new Promise<string[]>(() => undefined) });
    expect(await call({})).toEqual({ error: expect.stringMatching(/no answer within 200 ms/) });
    expect(performance.now() - started).toBeLessThan(2000);
    const aborted = new AbortController();
    const pending = assertReachable(new URL('http://slow.example.com/'), { ...guard, resolve: () => new Promise<string[]>(() => undefined) }, aborted.signal);
    aborted.abort();
    await expect(pending).rejects.toThrow(/lookup of slow\.example\.com was cut short/);
  });

  it('a host name resolving to a private address is refused (any of its addresses)', async () => {
    expect(await refusal('https://intranet.example.com/', async () => ['93.184.215.14', '10.0.0.5'])).toMatch(/intranet\.example\.com \(10\.0\.0\.5\) is a private address/);
    expect(await refusal('https://good.example.com/', async () => ['93.184.215.14'])).toBeUndefined();
    expect(await refusal('https://nx.example.com/', async () => [])).toMatch(/could not resolve/);
    expect(await refusal('http://localhost./')).toMatch(/loopback name/);
    // The media node's resolver: the system's (localhost resolves to loopback without a network).
    expect((await resolveWithDns('localhost')).some((a) => blockedReason(parseIp(a)!) === 'a loopback address')).toBe(true);
  });

  it('the allow-list opens hosts and CIDR ranges, nothing more', async () => {
    const allow = parseHostAllowList('127.0.0.1, 10.0.0.0/8 ,intranet.example.com,[fd00::]/8');
    const check = async (url: string, resolve?: ResolveHost) => {
      try {
        await assertReachable(new URL(url), { allow, ...(resolve ? { resolve } : {}) });
        return 'ok';
      } catch (error) {
        return (error as Error).message;
      }
    };
    expect(await check('http://127.0.0.1:9/')).toBe('ok');
    expect(await check('http://127.0.0.2/')).toMatch(/loopback/);
    expect(await check('http://10.9.8.7/')).toBe('ok');
    expect(await check('http://[fd12::1]/')).toBe('ok');
    expect(await check('http://intranet.example.com/', async () => ['192.168.0.1'])).toBe('ok');
    expect(await check('http://other.example.com/', async () => ['192.168.0.1'])).toMatch(/private/);
    expect(() => parseHostAllowList('10.0.0.0/99')).toThrow(/TOOL_HTTP_ALLOW/);
    expect(() => parseHostAllowList('http://x')).toThrow(/TOOL_HTTP_ALLOW/);
  });

  it('address parsing', () => {
    expect(blockedReason(parseIp('8.8.8.8')!)).toBeUndefined();
    expect(parseIp('1.2.3')).toBeUndefined();
    expect(parseIp('01.2.3.4')).toBeUndefined();
    expect(parseIp('1::2::3')).toBeUndefined();
    expect([...parseIp('::ffff:1.2.3.4')!]).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 1, 2, 3, 4]);
    expect(blockedReason(parseIp('2002:7f00:1::')!)).toMatch(/loopback/); // 6to4 of 127.0.0.1
  });
});
