// Test entry for talk-do.test.ts, bundled and run in workerd: the real edge Worker (edge/worker.ts routes
// `/v1/talk/web/ctx/:id` to the TalkSession object) with two test-only additions: the object answers
// `/__diagnostics` (connection budget, journal, writer), and a tiny object runs the SQLite journal's steps.
import { TalkSession as EdgeTalkSession } from '../../edge/talk/durable-object';
import { createSqliteJournal, ensureJournalTable } from '../../edge/talk/sqlite-journal';
import type { DurableObjectState } from '../../edge/talk/workerd-types';

export { default } from '../../edge/worker';

/** The production class plus `/__diagnostics` and `/__alarm` (runs the alarm now): never in the edge bundle. */
export class TalkSession extends EdgeTalkSession {
  override async fetch(request: Request): Promise<Response> {
    const { pathname } = new URL(request.url);
    if (pathname === '/__diagnostics') return Response.json(await this.diagnostics());
    if (pathname === '/__alarm') {
      await this.alarm();
      return Response.json(await this.diagnostics());
    }
    return super.fetch(request);
  }
}

type Step = { op: 'open' } | { op: 'append'; records: unknown[] } | { op: 'appendUnserialisable' } | { op: 'read'; max: number } | { op: 'ack'; count: number } | { op: 'abort' };

/**
 * Runs journal steps inside a Durable Object: POST a list of steps, get each step's result. `abort` resets the
 * object (`ctx.abort`): the next request runs in a new instance over the same storage, like after a deploy.
 */
export class JournalProbe {
  private readonly instance = crypto.randomUUID();
  private readonly journal;

  constructor(private readonly ctx: DurableObjectState & { abort(reason?: string): void }) {
    ensureJournalTable(ctx.storage);
    this.journal = createSqliteJournal<unknown>(ctx.storage);
  }

  async fetch(request: Request): Promise<Response> {
    const steps = (await request.json()) as Step[];
    const results: unknown[] = [];
    for (const step of steps) {
      try {
        switch (step.op) {
          case 'open':
            await this.journal.open();
            results.push({ instance: this.instance, size: this.journal.size });
            break;
          case 'append':
            await this.journal.append(step.records);
            results.push({ size: this.journal.size, stored: this.journal.storedCount() });
            break;
          case 'appendUnserialisable':
            await this.journal.append([{ ok: 1 }, { big: 10n }]);
            results.push({ size: this.journal.size });
            break;
          case 'read':
            results.push({ records: await this.journal.read(step.max) });
            break;
          case 'ack':
            await this.journal.ack(step.count);
            results.push({ size: this.journal.size, stored: this.journal.storedCount() });
            break;
          case 'abort':
            this.ctx.abort('journal probe restart');
            break;
        }
      } catch (error) {
        results.push({ error: error instanceof Error ? `${error.name}: ${error.message}` : String(error), size: this.journal.size, stored: this.journal.storedCount() });
      }
    }
    return Response.json(results);
  }
}
