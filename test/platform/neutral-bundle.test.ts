import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleNeutral, findNodeGlobals, findNodeImports, formatViolations, listTsFiles } from './neutral-check';

// shared/ must run unchanged in workerd (Durable Objects) and Node: Web APIs only.
const repo = resolve(import.meta.dirname, '../..');
const sharedDir = join(repo, 'shared');
let workDir: string;

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'neutral-bundle-'));
});
afterAll(async () => {
  await rm(workDir, { recursive: true, force: true });
});

describe('shared/ bundles for platform "neutral"', () => {
  it('every file under shared/ bundles with no Node built-in, Node-only package or Node global', async () => {
    const files = await listTsFiles(sharedDir);
    expect(files.length).toBeGreaterThan(3);
    const { metafile, errors } = await bundleNeutral(files, workDir);
    expect(errors, errors.join('\n')).toEqual([]);
    // The generated entry really reached every file.
    const bundled = new Set(Object.keys(metafile.inputs).map((file) => resolve(repo, file)));
    expect(files.filter((file) => !bundled.has(file))).toEqual([]);

    const violations = [...findNodeImports(metafile), ...(await findNodeGlobals(metafile, repo, sharedDir))];
    expect(violations, formatViolations(violations)).toEqual([]);
  });
});

describe('the HTTP app (edge/) bundles for platform "neutral"', () => {
  // It runs in the Worker too: createApp, its routes and Hono itself must be web-standard.
  it('edge/app.ts and its modules bundle with no Node built-in, Node-only package or Node global', async () => {
    const edgeDir = join(repo, 'edge');
    const appFiles = [join(edgeDir, 'app.ts'), join(edgeDir, 'auth.ts'), join(edgeDir, 'errors.ts'), join(edgeDir, 'validation.ts')];
    const files = [...appFiles, ...(await listTsFiles(join(edgeDir, 'routes')))];
    expect(files.length).toBeGreaterThan(appFiles.length);
    const { metafile, errors } = await bundleNeutral(files, workDir);
    expect(errors, errors.join('\n')).toEqual([]);
    const inputs = Object.keys(metafile.inputs);
    expect(inputs.some((file) => /node_modules[\\/]hono[\\/]/.test(file))).toBe(true);
    const violations = [...findNodeImports(metafile), ...(await findNodeGlobals(metafile, repo, edgeDir))];
    expect(violations, formatViolations(violations)).toEqual([]);
  });
});

describe('the neutral checker (negative controls)', () => {
  it('catches node:fs, a bare built-in, process.env, Buffer and require, with file and line', async () => {
    const fixtureDir = join(workDir, 'bad');
    const fixture = join(fixtureDir, 'node-leak.ts');
    await rm(fixtureDir, { recursive: true, force: true });
    await import('node:fs/promises').then((fs) => fs.mkdir(fixtureDir, { recursive: true }));
    await writeFile(
      fixture,
      [
        "import { readFile } from 'node:fs/promises';",
        "import { join } from 'path';",
        'export const home = process.env.HOME;',
        'export const bytes = (s: string) => Buffer.from(s);',
        'export const load = (name: string) => require(name);',
        "export const read = () => readFile(join('a', 'b'));",
      ].join('\n'),
    );
    const { metafile, errors } = await bundleNeutral([fixture], workDir);
    expect(errors).toEqual([]);
    const imports = formatViolations(findNodeImports(metafile));
    expect(imports).toMatch(/imports the Node built-in "node:fs\/promises"/);
    expect(imports).toMatch(/imports the Node built-in "path"/);
    const globals = await findNodeGlobals(metafile, workDir, fixtureDir);
    expect(globals.map((v) => `${v.line}:${v.problem}`)).toEqual([
      '3:uses the Node global "process"',
      '4:uses the Node global "Buffer"',
      '5:uses the Node global "require"',
    ]);
    expect(globals[0]?.file).toMatch(/node-leak\.ts$/);
  });

  it('does not flag member names, comments or strings that merely spell those words', async () => {
    const fixtureDir = join(workDir, 'good');
    const fixture = join(fixtureDir, 'member-names.ts');
    await import('node:fs/promises').then((fs) => fs.mkdir(fixtureDir, { recursive: true }));
    await writeFile(
      fixture,
      [
        '// process the frame; require nothing; no Buffer here',
        'interface Stage { process(x: number): number; readonly require: boolean }',
        'const stage = { process: (x: number) => x, require: false, Buffer: 1 };',
        "export const run = (s: Stage) => s.process(stage.process(1)) + String('process require Buffer');",
        'export class Pipeline { process() { return stage.require; } }',
        'export const preprocess = 1, requireX = 2, ArrayBufferish = 3;',
      ].join('\n'),
    );
    const { metafile, errors } = await bundleNeutral([fixture], workDir);
    expect(errors).toEqual([]);
    expect(formatViolations(await findNodeGlobals(metafile, workDir, fixtureDir))).toBe('');
    expect(findNodeImports(metafile)).toEqual([]);
  });

  it('catches a Node-only package (onnxruntime-node), its built-ins and its native addon', async () => {
    const fixtureDir = join(workDir, 'pkg');
    const fixture = join(fixtureDir, 'uses-ort.ts');
    await import('node:fs/promises').then((fs) => fs.mkdir(fixtureDir, { recursive: true }));
    await writeFile(fixture, "export { InferenceSession } from 'onnxruntime-node';\n");
    // Resolved from the repo's node_modules, as a file under shared/ would be.
    const { metafile, errors } = await bundleNeutral([fixture], workDir, [join(repo, 'node_modules')]);
    expect(errors).toEqual([]);
    const problems = formatViolations(findNodeImports(metafile));
    expect(problems).toMatch(/pulls in the Node-only package "onnxruntime-node"/);
    expect(problems).toMatch(/imports the Node built-in "worker_threads"/);
    expect(problems).toMatch(/loads the native Node addon ".*onnxruntime_binding\.node"/);
  });
});
