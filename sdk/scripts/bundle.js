// Builds the browser bundle dist/e2ekv.browser.js from the compiled SDK.
// Platform "browser" makes esbuild fail on any Node built-in that slipped in.
import { build } from 'esbuild';

await build({
  entryPoints: ['dist/index.js'],
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  outfile: 'dist/e2ekv.browser.js',
  sourcemap: true,
  legalComments: 'linked',
  logLevel: 'warning',
});
console.log('wrote sdk/dist/e2ekv.browser.js');
