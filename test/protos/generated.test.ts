import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The committed protobuf code is what `npm run proto` generates from protos/ now, and the protos pass `buf lint`.
// Offline: buf and protoc-gen-es come from node_modules.

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../..');
const BIN = join(ROOT, 'node_modules', '.bin');
const GENERATED_DIR = 'shared/talk/gen'; // buf.gen.yaml's `out`
// protoc-gen-es is found on PATH, as npm scripts arrange it.
const env = { ...process.env, PATH: `${BIN}${delimiter}${process.env.PATH ?? ''}` };

async function buf(args: readonly string[]): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run(join(BIN, 'buf'), args, { cwd: ROOT, env, timeout: 60_000 });
    return { code: 0, output: `${stdout}${stderr}` };
  } catch (error) {
    const failed = error as { code?: number | string; stdout?: string; stderr?: string; message: string };
    return { code: typeof failed.code === 'number' ? failed.code : -1, output: `${failed.stdout ?? ''}${failed.stderr ?? ''}` || failed.message };
  }
}

describe('generated protobuf code', () => {
  let outDir: string;

  beforeAll(async () => {
    outDir = await mkdtemp(join(tmpdir(), 'proto-gen-'));
  });

  afterAll(async () => {
    if (outDir) await rm(outDir, { recursive: true, force: true });
  });

  it(`${GENERATED_DIR} is byte for byte what buf generates from protos/ (else run \`npm run proto\`)`, async () => {
    // --output is prepended to the template's `out`, so fresh files land in <tmp>/shared/talk/gen.
    const generated = await buf(['generate', '--output', outDir]);
    expect(generated.code, `buf generate failed:\n${generated.output}`).toBe(0);

    const freshDir = join(outDir, GENERATED_DIR);
    const committedDir = join(ROOT, GENERATED_DIR);
    const fresh = (await readdir(freshDir)).sort();
    const committed = (await readdir(committedDir)).sort();
    expect(fresh.length, 'buf generated nothing').toBeGreaterThan(0);
    expect(committed, `the files in ${GENERATED_DIR} differ from what the protos generate: run \`npm run proto\` and commit the result`).toEqual(fresh);
    for (const name of fresh) {
      const [now, then] = await Promise.all([readFile(join(freshDir, name)), readFile(join(committedDir, name))]);
      expect(then.equals(now), `${GENERATED_DIR}/${name} is stale: a proto changed without \`npm run proto\`; run it and commit the result`).toBe(true);
    }
  });

  it('the protos pass buf lint', async () => {
    const lint = await buf(['lint']);
    expect(lint.code, `buf lint reported:\n${lint.output}`).toBe(0);
  });
});
