import worker from '../../edge/worker';

/**
 * The edge Worker as deployed (edge/worker.ts's default export), with a stand-in for the browser-call
 * Durable Object: it answers which object got the request (a counter in the object's own storage) so
 * edge.test.ts can check that `/v1/talk/web/ctx/:contextId` reaches the object named by the context id, with
 * the request (path, Upgrade header) passed on untouched.
 */
export default worker;

interface ProbeState {
  readonly storage: { get(key: string): Promise<unknown>; put(key: string, value: unknown): Promise<void> };
}

export class TalkSession {
  constructor(private readonly state: ProbeState) {}

  async fetch(request: Request): Promise<Response> {
    const seen = (Number(await this.state.storage.get('seen')) || 0) + 1;
    await this.state.storage.put('seen', seen);
    return Response.json({ seen, path: new URL(request.url).pathname, upgrade: request.headers.get('upgrade') });
  }
}
