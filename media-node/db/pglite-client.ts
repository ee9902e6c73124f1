import { PGlite, type Transaction } from '@electric-sql/pglite';
import type { SqlClient } from '../../shared/store/sql';

export interface PgliteClientOptions {
  /** Persist here (`.data/pglite`); omitted = in memory. */
  readonly dataDir?: string;
  /** Share an already open PGlite (tests: one WASM instance per process, a schema per suite). */
  readonly db?: PGlite;
  /** Run every statement with this schema as search_path. */
  readonly schema?: string;
}

type Run = <T>(task: () => Promise<T>) => Promise<T>;

// One PGlite is one session: clients that set their own search_path on a shared instance take turns.
const turns = new WeakMap<PGlite, Run>();
function turnsOf(db: PGlite): Run {
  let run = turns.get(db);
  if (!run) {
    let tail: Promise<unknown> = Promise.resolve();
    run = <T>(task: () => Promise<T>) => {
      const result = tail.then(task);
      tail = result.catch(() => undefined);
      return result;
    };
    turns.set(db, run);
  }
  return run;
}

function wrapTransaction(tx: Transaction): SqlClient {
  const self: SqlClient = {
    async query<Row extends object>(text: string, params: readonly unknown[] = []) {
      return (await tx.query<Row>(text, params as unknown[])).rows;
    },
    transaction: (fn) => fn(self),
    async exec(text) {
      await tx.exec(text);
    },
    close: async () => undefined,
  };
  return self;
}

/**
 * PGlite (PostgreSQL in WASM) behind the SqlClient contract: the embedded default, persisted in `dataDir`
 * across restarts. With `schema`, statements run with that search_path (taking turns on a shared instance).
 */
export async function createPgliteClient(options: PgliteClientOptions = {}): Promise<SqlClient> {
  const owned = !options.db;
  const db = options.db ?? (options.dataDir ? new PGlite(options.dataDir) : new PGlite());
  await db.waitReady;
  const schema = options.schema;
  if (schema && !/^[a-z_][a-z0-9_]*$/.test(schema)) throw new Error(`PGLITE_SCHEMA: "${schema}" is not a plain schema name`);
  const run: Run = schema ? turnsOf(db) : (task) => task();
  const setPath = schema ? `SET search_path TO ${schema};` : '';
  return {
    query: <Row extends object>(text: string, params: readonly unknown[] = []) =>
      run(async () => {
        if (setPath) await db.exec(setPath);
        return (await db.query<Row>(text, params as unknown[])).rows;
      }),
    transaction: (fn) =>
      run(() =>
        db.transaction(async (tx) => {
          if (setPath) await tx.exec(setPath);
          return fn(wrapTransaction(tx));
        }),
      ),
    exec: (text) =>
      run(async () => {
        await db.exec(setPath + text);
      }),
    close: async () => {
      if (owned) await db.close();
    },
  };
}
