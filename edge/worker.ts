/**
 * Worker entry (placeholder until the edge issue): liveness only. The real app is `createApp(deps)` from
 * edge/app.ts, mounted here and on the media node.
 */
export default {
  fetch(request: Request): Response {
    const { pathname } = new URL(request.url);
    if (request.method === 'GET' && (pathname === '/healthz' || pathname === '/healthz/')) return new Response('ok');
    return new Response(JSON.stringify({ error: 'NOT_FOUND', message: `no route for ${request.method} ${pathname}` }), {
      status: 404,
      headers: { 'content-type': 'application/json' },
    });
  },
};
