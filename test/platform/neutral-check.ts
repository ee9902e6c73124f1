import { readdir, readFile, writeFile } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import { join, relative, resolve, sep } from 'node:path';
import { build } from 'esbuild';
import type { Metafile } from 'esbuild';
import ts from 'typescript';

/** Packages that only run on Node (native addons, Node streams/sockets); none may reach the neutral bundle. */
export const NODE_ONLY_PACKAGES = [
  'onnxruntime-node',
  'pino',
  'pino-pretty',
  'prom-client',
  'ioredis',
  '@grpc/grpc-js',
  'tsx',
  'ws',
] as const;
const NODE_GLOBALS = ['Buffer', 'process', 'require'] as const;
const builtins = new Set(builtinModules.flatMap((name) => [name, `node:${name}`]));

export interface Violation {
  readonly file: string;
  readonly line?: number;
  readonly problem: string;
}

/** Every .ts file under `dir` (recursively), sorted, absolute. */
export async function listTsFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts'))
    .map((e) => resolve(e.parentPath, e.name))
    .sort();
}

/**
 * Bundles `files` the way the Worker build does (esbuild, platform neutral, workerd conditions) through a
 * generated entry that re-exports each file. Node built-ins and native addons (.node) are left external so they
 * show up in the metafile instead of failing resolution; .wasm stays external because the host supplies it.
 */
export async function bundleNeutral(
  files: readonly string[],
  workDir: string,
  nodePaths: string[] = [],
): Promise<{ metafile: Metafile; errors: string[] }> {
  const entry = join(workDir, 'neutral-entry.ts');
  await writeFile(entry, files.map((file, i) => `export * as m${i} from ${JSON.stringify(file)};`).join('\n'));
  try {
    const result = await build({
      entryPoints: [entry],
      outfile: join(workDir, 'neutral-bundle.js'),
      bundle: true,
      write: false,
      metafile: true,
      platform: 'neutral',
      format: 'esm',
      mainFields: ['module', 'main'],
      conditions: ['workerd', 'worker', 'browser'],
      external: ['*.wasm', '*.node', ...builtins],
      nodePaths,
      logLevel: 'silent',
    });
    return { metafile: result.metafile, errors: [] };
  } catch (error) {
    const errors = (error as { errors?: { text: string; location?: { file: string; line: number } | null }[] }).errors ?? [];
    if (errors.length === 0) throw error;
    return {
      metafile: { inputs: {}, outputs: {} },
      errors: errors.map((e) => (e.location ? `${e.location.file}:${e.location.line}: ${e.text}` : e.text)),
    };
  }
}

/** Node built-in imports and Node-only packages anywhere in the bundle graph. */
export function findNodeImports(metafile: Metafile): Violation[] {
  const violations: Violation[] = [];
  for (const [file, input] of Object.entries(metafile.inputs)) {
    for (const imported of input.imports) {
      const name = imported.original ?? imported.path;
      if (builtins.has(name) || name.startsWith('node:')) {
        violations.push({ file, problem: `imports the Node built-in "${name}"` });
      } else if (name.endsWith('.node')) {
        violations.push({ file, problem: `loads the native Node addon "${name}"` });
      }
    }
    const packageName = packageOf(file);
    if (packageName && (NODE_ONLY_PACKAGES as readonly string[]).includes(packageName)) {
      violations.push({ file, problem: `pulls in the Node-only package "${packageName}"` });
    }
  }
  return violations;
}

function packageOf(file: string): string | undefined {
  const parts = file.split(/[\\/]/);
  const at = parts.lastIndexOf('node_modules');
  if (at < 0) return undefined;
  const first = parts[at + 1];
  return first?.startsWith('@') ? `${first}/${parts[at + 2]}` : first;
}

/**
 * Free uses of Node globals (`Buffer`, `process`, `require`) in the first-party inputs under `root`:
 * identifiers only, found with the TypeScript parser, so `resampler.process(x)`, a method named `process`,
 * or the word in a comment or string do not count.
 */
export async function findNodeGlobals(metafile: Metafile, workingDir: string, root: string): Promise<Violation[]> {
  const violations: Violation[] = [];
  for (const file of Object.keys(metafile.inputs)) {
    const absolute = resolve(workingDir, file);
    if (!absolute.startsWith(root + sep) || absolute.includes(`${sep}node_modules${sep}`)) continue;
    const source = ts.createSourceFile(absolute, await readFile(absolute, 'utf8'), ts.ScriptTarget.Latest, true);
    const visit = (node: ts.Node): void => {
      if (ts.isIdentifier(node) && (NODE_GLOBALS as readonly string[]).includes(node.text) && !isMemberName(node)) {
        const { line } = source.getLineAndCharacterOfPosition(node.getStart(source));
        violations.push({ file: relative(workingDir, absolute), line: line + 1, problem: `uses the Node global "${node.text}"` });
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return violations;
}

/** A name that labels a member (`x.process`, `{ process() {} }`, `process: …`) rather than referring to a global. */
function isMemberName(node: ts.Identifier): boolean {
  const parent = node.parent;
  return (
    (ts.isPropertyAccessExpression(parent) && parent.name === node) ||
    (ts.isQualifiedName(parent) && parent.right === node) ||
    ((ts.isMethodDeclaration(parent) ||
      ts.isMethodSignature(parent) ||
      ts.isPropertyDeclaration(parent) ||
      ts.isPropertySignature(parent) ||
      ts.isPropertyAssignment(parent) ||
      ts.isGetAccessorDeclaration(parent) ||
      ts.isSetAccessorDeclaration(parent) ||
      ts.isEnumMember(parent)) &&
      parent.name === node)
  );
}

export function formatViolations(violations: readonly Violation[]): string {
  return violations.map((v) => `${v.file}${v.line ? `:${v.line}` : ''}: ${v.problem}`).join('\n');
}
