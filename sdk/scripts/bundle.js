// Builds the browser bundles from the compiled SDK: dist/e2ekv.browser.js (the
// core) and dist/e2ekv-automerge.browser.js (the 'e2ekv/automerge' entry, with
// Automerge and its WASM module inlined as base64).
// Platform "browser" makes esbuild fail on any Node built-in that slipped in.
import { readFileSync } from 'node:fs';
import { build } from 'esbuild';

const common = {
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  sourcemap: true,
  legalComments: 'linked',
  logLevel: 'warning',
  metafile: true,
};

const core = await build({ ...common, entryPoints: ['dist/index.js'], outfile: 'dist/e2ekv.browser.js' });
console.log('wrote sdk/dist/e2ekv.browser.js');

// The automerge bundle takes the protocol (E2ekvError) from the core bundle
// instead of carrying a second copy: with two copies, errors it throws would not
// be instances of the E2ekvError class the page checks with isE2ekvError.
const fromCore = {
  name: 'protocol-from-core-bundle',
  setup(b) {
    b.onResolve({ filter: /^@e2ekv\/protocol$/ }, () => ({ path: './e2ekv.browser.js', external: true }));
  },
};
await build({
  ...common,
  entryPoints: ['dist/automerge/index.js'],
  outfile: 'dist/e2ekv-automerge.browser.js',
  plugins: [fromCore],
});

// esbuild does not check names imported from an external file: do it here, so a
// protocol import the core bundle does not re-export fails the build, not a page.
const coreExports = new Set(core.metafile.outputs['dist/e2ekv.browser.js'].exports);
const text = readFileSync('dist/e2ekv-automerge.browser.js', 'utf8');
for (const match of text.matchAll(/import\s*\{([^}]*)\}\s*from\s*["']\.\/e2ekv\.browser\.js["']/g)) {
  for (const spec of match[1].split(',')) {
    const name = spec.trim().split(/\s+as\s+/)[0];
    if (name !== '' && !coreExports.has(name)) {
      throw new Error(`dist/e2ekv-automerge.browser.js imports ${name}, which dist/e2ekv.browser.js does not export`);
    }
  }
}
console.log('wrote sdk/dist/e2ekv-automerge.browser.js (imports the protocol from ./e2ekv.browser.js)');
