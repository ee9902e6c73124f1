import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Hono, type Context } from 'hono';
import type { AppEnv } from '../edge/app';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** Where `node scripts/build-widget.mjs` writes the minified bundles. */
export const PREBUILT_WIDGET_PATH = join(ROOT, 'dist', 'widget.js');
export const PREBUILT_DEMO_PATH = join(ROOT, 'dist', 'demo.js');
const DEMO_PAGE_PATH = join(ROOT, 'web', 'demo', 'index.html');
const BUILD_SCRIPT = join(ROOT, 'scripts', 'build-widget.mjs');

/** Browsers re-check after 5 minutes (cheaply: the ETag answers 304), so a new widget reaches sites quickly. */
const CACHE_CONTROL = 'public, max-age=300';
const JAVASCRIPT = 'text/javascript; charset=utf-8';

type Log = (level: 'info' | 'error', message: string, fields?: Record<string, unknown>) => void;

export interface WidgetAssetOptions {
  /**
   * `build`: bundle web/ with esbuild (a dev dependency) once, on first use, and keep it in memory;
   * `file`: serve the pre-built `dist/*.js`; `auto` (default): build when esbuild is installed, else the file.
   */
  readonly source?: 'auto' | 'build' | 'file';
  readonly prebuiltPath?: string;
  /** Tests: supply the bundle. */
  readonly load?: () => Promise<string>;
  readonly log?: Log;
}

interface Asset {
  readonly body: string;
  readonly etag: string;
}

/** One text asset, loaded once on first use and kept in memory; a failed load is retried on the next request. */
function cachedAsset(name: string, load: () => Promise<string>, log: Log | undefined) {
  let asset: Promise<Asset> | undefined;
  return (): Promise<Asset> =>
    (asset ??= (async () => {
      const startedAt = performance.now();
      const body = await load();
      log?.('info', `${name} ready`, { bytes: Buffer.byteLength(body), ms: Math.round(performance.now() - startedAt) });
      return { body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` };
    })().catch((error: unknown) => {
      asset = undefined;
      throw error;
    }));
}

async function serve(c: Context, get: () => Promise<Asset>, contentType: string, extraHeaders: Record<string, string>, log: Log | undefined): Promise<Response> {
  let current: Asset;
  try {
    current = await get();
  } catch (error) {
    log?.('error', 'web asset unavailable', { path: c.req.path, error: String((error as Error)?.message ?? error) });
    return c.text('// not available: run `node scripts/build-widget.mjs` (or install dev dependencies)\n', 503, {
      'Content-Type': contentType,
      'Cache-Control': 'no-store',
      ...extraHeaders,
    });
  }
  const headers = { 'Content-Type': contentType, 'Cache-Control': CACHE_CONTROL, ETag: current.etag, 'X-Content-Type-Options': 'nosniff', ...extraHeaders };
  if (c.req.header('if-none-match') === current.etag) return c.body(null, 304, headers);
  return c.body(current.body, 200, headers);
}

/**
 * `GET /widget.js`: the embeddable browser widget (web/widget/), one script with its audio worklets inlined.
 * Any site may load it (CORS `*`, cross-origin resource policy): what protects a project is its publishable
 * key's allowed origins, checked when the widget asks for a session. Mounted at `/` by the media node.
 */
export function widgetAssetRoutes(options: WidgetAssetOptions = {}): Hono<AppEnv> {
  const routes = new Hono<AppEnv>({ strict: false });
  const widget = cachedAsset('widget bundle', options.load ?? (() => loadBundle('buildWidget', options.prebuiltPath ?? PREBUILT_WIDGET_PATH, options)), options.log);
  routes.get('/widget.js', (c) =>
    serve(c, widget, JAVASCRIPT, { 'Access-Control-Allow-Origin': '*', 'Cross-Origin-Resource-Policy': 'cross-origin' }, options.log),
  );
  return routes;
}

/** Keys the demo page may use without asking (a node on embedded defaults, visited from this machine). */
export interface DemoKeys {
  /** A project API key: the page lists and creates assistants with it. */
  readonly apiKey: string;
  /** A publishable key allowing `origin`. */
  readonly publishableKey: string;
}

/** What `GET /demo/config` tells the host about the asker. */
export interface DemoKeysRequest {
  /** The origin the page was loaded from (the request's own URL: Host header and scheme). */
  readonly origin: string;
  /** The socket peer. */
  readonly remoteAddress: string | undefined;
  /** A proxy's forwarding headers were present (Forwarded, X-Forwarded-*, X-Real-IP, CF-Connecting-IP, Via). */
  readonly proxied: boolean;
  /** The browser's Sec-Fetch-Site, when it sent one (`same-origin` for the demo page's own fetch). */
  readonly fetchSite: string | undefined;
}

const PROXY_HEADERS = ['forwarded', 'x-forwarded-for', 'x-forwarded-host', 'x-real-ip', 'cf-connecting-ip', 'via'];

export interface DemoPageOptions extends Omit<WidgetAssetOptions, 'prebuiltPath' | 'load'> {
  /**
   * Local keys for the page, or undefined (the page then asks for keys). Called per `GET /demo/config` with
   * the page's origin and the peer's address: the host decides (e.g. only on embedded defaults, loopback only).
   */
  readonly demoKeys?: (request: DemoKeysRequest) => Promise<DemoKeys | undefined>;
  /** Tests: supply the page and its script. */
  readonly loadPage?: () => Promise<string>;
  readonly loadScript?: () => Promise<string>;
}

/**
 * The demo page (`GET /`, `GET /demo.js`, `GET /demo/config`): pick or create an assistant, talk to it
 * through the widget, read the transcript and see per-turn latency. Same-origin only (no CORS).
 */
export function demoPageRoutes(options: DemoPageOptions = {}): Hono<AppEnv> {
  const routes = new Hono<AppEnv>({ strict: false });
  const page = cachedAsset('demo page', options.loadPage ?? (() => readFile(DEMO_PAGE_PATH, 'utf8')), options.log);
  const script = cachedAsset('demo script', options.loadScript ?? (() => loadBundle('buildDemo', PREBUILT_DEMO_PATH, options)), options.log);
  routes.get('/', (c) => serve(c, page, 'text/html; charset=utf-8', { 'X-Frame-Options': 'DENY' }, options.log));
  routes.get('/demo.js', (c) => serve(c, script, JAVASCRIPT, {}, options.log));
  routes.get('/demo/config', async (c) => {
    c.header('Cache-Control', 'no-store');
    const remoteAddress = (c.env as { remoteAddress?: string } | undefined)?.remoteAddress;
    const keys = await options.demoKeys?.({
      origin: new URL(c.req.url).origin,
      remoteAddress,
      proxied: PROXY_HEADERS.some((name) => c.req.header(name) !== undefined),
      fetchSite: c.req.header('sec-fetch-site'),
    });
    if (!keys) return c.json({ error: { code: 'NO_LOCAL_KEYS', message: 'this node hands out no local keys: paste a project API key and a publishable key' } }, 404);
    return c.json(keys);
  });
  return routes;
}

async function loadBundle(builder: 'buildWidget' | 'buildDemo', path: string, options: WidgetAssetOptions): Promise<string> {
  const source = options.source ?? 'auto';
  if (source === 'file') return readFile(path, 'utf8');
  try {
    // A computed specifier: the build script is plain JavaScript run by node (esbuild is a dev dependency).
    const script = (await import(pathToFileURL(BUILD_SCRIPT).href)) as Record<typeof builder, (o: { minify: boolean }) => Promise<{ code: string }>>;
    return (await script[builder]({ minify: true })).code;
  } catch (error) {
    if (source === 'build') throw error;
    options.log?.('error', 'web bundle build failed; serving the pre-built file', { path, error: String((error as Error)?.message ?? error) });
    return readFile(path, 'utf8');
  }
}
