// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// Code that runs in browsers, or is shared with them, must not reach for Node or
// for server-only libraries: protocol/ entirely, and the SDK outside its Node-only
// folders (the CLI and the file-backed local replica).
const nodeOnlyImports = {
  patterns: [
    { group: ['node:*'], message: 'protocol/ and browser SDK code must stay isomorphic: no node:* imports.' },
    {
      group: ['express', 'express/*', 'sqlite3', 'sqlite3/*', 'ws', 'ws/*'],
      message: 'server-only library in isomorphic code.',
    },
  ],
  paths: [
    'assert',
    'buffer',
    'child_process',
    'cluster',
    'crypto',
    'dgram',
    'dns',
    'events',
    'fs',
    'fs/promises',
    'http',
    'http2',
    'https',
    'module',
    'net',
    'os',
    'path',
    'perf_hooks',
    'process',
    'readline',
    'stream',
    'string_decoder',
    'timers',
    'tls',
    'tty',
    'url',
    'util',
    'v8',
    'vm',
    'worker_threads',
    'zlib',
  ].map((name) => ({ name, message: 'protocol/ and browser SDK code must stay isomorphic: no Node built-ins.' })),
};

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', 'bench/results/**', 'sdk/dist/**'] },
  js.configs.recommended,
  ...tseslint.configs.strict,
  {
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'module',
      globals: {
        console: 'readonly',
        process: 'readonly',
        URL: 'readonly',
        TextEncoder: 'readonly',
        TextDecoder: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-non-null-assertion': 'off',
      'no-restricted-syntax': [
        'error',
        { selector: 'ExportAllDeclaration', message: 'Export names explicitly: no `export *`.' },
      ],
    },
  },
  {
    files: ['protocol/src/**/*.ts', 'sdk/src/**/*.ts'],
    ignores: ['sdk/src/cli/**', 'sdk/src/local/file*.ts', 'sdk/src/node/**'],
    rules: { 'no-restricted-imports': ['error', nodeOnlyImports] },
  },
);
