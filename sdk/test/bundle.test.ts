import path from 'node:path';
import test from 'ava';
import { build } from 'esbuild';
import { repoRoot } from '../../test/support/paths.js';

test('the SDK and the protocol bundle for browsers without Node built-ins', async (t) => {
  const result = await build({
    entryPoints: [path.join(repoRoot, 'sdk/src/index.ts')],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    conditions: ['e2ekv-source'],
    metafile: true,
    logLevel: 'silent',
  });
  t.deepEqual(result.errors, []);
  const inputs = Object.keys(result.metafile.inputs);
  t.true(
    inputs.some((i) => i.includes('protocol/src/')),
    'the protocol sources are in the bundle',
  );
  t.false(
    inputs.some((i) => i.startsWith('node:')),
    'no node: module reached the bundle',
  );
  const text = result.outputFiles[0]!.text;
  t.false(/from\s*["']node:/.test(text));
});

test('the protocol entry point bundles for browsers on its own', async (t) => {
  const result = await build({
    entryPoints: [path.join(repoRoot, 'protocol/src/index.ts')],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    logLevel: 'silent',
  });
  t.deepEqual(result.errors, []);
});
