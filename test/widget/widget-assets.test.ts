import { describe, expect, it } from 'vitest';
import { demoPageRoutes, widgetAssetRoutes, type DemoKeysRequest } from '../../media-node/widget-assets';
// @ts-expect-error: a plain JavaScript build script (no type declarations)
import { buildWidget } from '../../scripts/build-widget.mjs';

describe('GET /widget.js (media node)', () => {
  it('serves the script to any origin with caching headers, and answers a matching ETag with 304', async () => {
    let loads = 0;
    const routes = widgetAssetRoutes({
      load: async () => {
        loads++;
        return 'console.log("widget")';
      },
    });
    const first = await routes.request('/widget.js', { headers: { origin: 'https://shop.example' } });
    expect(first.status).toBe(200);
    expect(first.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(first.headers.get('access-control-allow-origin')).toBe('*');
    expect(first.headers.get('cross-origin-resource-policy')).toBe('cross-origin');
    expect(first.headers.get('cache-control')).toBe('public, max-age=300');
    expect(await first.text()).toBe('console.log("widget")');
    const etag = first.headers.get('etag')!;
    expect(etag).toMatch(/^"[\w-]{22}"$/);

    const again = await routes.request('/widget.js', { headers: { 'if-none-match': etag } });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe('');
    expect(loads).toBe(1);
  });

  it('answers 503 with a hint while the bundle cannot be built, and tries again on the next request', async () => {
    let fail = true;
    const logged: string[] = [];
    const routes = widgetAssetRoutes({
      load: async () => {
        if (fail) throw new Error('esbuild: syntax error');
        return 'ok()';
      },
      log: (_level, message) => logged.push(message),
    });
    const broken = await routes.request('/widget.js');
    expect(broken.status).toBe(503);
    expect(broken.headers.get('cache-control')).toBe('no-store');
    expect(await broken.text()).toContain('build-widget.mjs');
    expect(logged).toContain('web asset unavailable');
    fail = false;
    const fixed = await routes.request('/widget.js');
    expect(fixed.status).toBe(200);
    expect(await fixed.text()).toBe('ok()');
  });
});

describe('the widget bundle (scripts/build-widget.mjs)', () => {
  it('is one minified script under 100 KiB with both worklets inlined and the public API', async () => {
    const { code, bytes } = (await buildWidget({ minify: true })) as { code: string; bytes: number };
    expect(bytes).toBe(Buffer.byteLength(code));
    expect(bytes).toBeLessThan(100 * 1024);
    // The worklets are strings inside the bundle (registered under their processor names).
    expect(code).toContain('voice-widget-capture');
    expect(code).toContain('voice-widget-playback');
    expect(code.match(/registerProcessor/g)?.length).toBeGreaterThanOrEqual(2);
    expect(code).toContain('VoiceWidget');
    // Parses as a script (no module syntax left: it is loaded by a plain <script> tag).
    expect(() => new Function(code)).not.toThrow();
  });
});

describe('the demo page routes (GET /, /demo.js, /demo/config)', () => {
  it('serves the page and its script, and local keys only when the host hands them out', async () => {
    const asked: DemoKeysRequest[] = [];
    const routes = demoPageRoutes({
      loadPage: async () => '<!doctype html><title>demo</title>',
      loadScript: async () => 'demo()',
      demoKeys: async (request) => {
        asked.push(request);
        return request.remoteAddress === '127.0.0.1' ? { apiKey: 'vr_sk_local', publishableKey: 'vr_pk_local' } : undefined;
      },
    });
    const page = await routes.request('http://localhost:9007/');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(await page.text()).toContain('<title>demo</title>');
    const script = await routes.request('/demo.js');
    expect(script.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    // Same-origin only: no CORS on the demo.
    expect(script.headers.get('access-control-allow-origin')).toBeNull();

    const local = await routes.request('http://localhost:9007/demo/config', {}, { remoteAddress: '127.0.0.1' });
    expect(local.status).toBe(200);
    expect(local.headers.get('cache-control')).toBe('no-store');
    expect(await local.json()).toEqual({ apiKey: 'vr_sk_local', publishableKey: 'vr_pk_local' });
    expect(asked[0]).toEqual({ origin: 'http://localhost:9007', remoteAddress: '127.0.0.1', proxied: false, fetchSite: undefined });
    // The route tells the host about a proxy's forwarding headers and the browser's fetch site.
    await routes.request('http://localhost:9007/demo/config', { headers: { 'x-forwarded-for': '198.51.100.4', 'sec-fetch-site': 'same-origin' } }, { remoteAddress: '127.0.0.1' });
    expect(asked[1]).toMatchObject({ proxied: true, fetchSite: 'same-origin' });

    const remote = await routes.request('http://voice.example.com/demo/config', {}, { remoteAddress: '203.0.113.9' });
    expect(remote.status).toBe(404);
    expect((await remote.json()).error.code).toBe('NO_LOCAL_KEYS');
    const none = await demoPageRoutes({ loadPage: async () => '', loadScript: async () => '' }).request('/demo/config');
    expect(none.status).toBe(404);
  });
});
