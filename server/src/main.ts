/**
 * The e2ekv-server command line. The replica itself is not built yet: this
 * entry point answers --help and --version and refuses to pretend otherwise.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { version } = require('../package.json') as { version: string };

const usage = `Usage: e2ekv-server [--host H] [--port P] [--data DIR] [--peer URL]... [--tls-cert F --tls-key F]

The e2ekv replica server stores only ciphertext, verifies what it can without keys,
cosigns device checkpoints and replicates with its peers.

Options:
  --help       show this help
  --version    print the version

Status: not implemented yet. This version ships the protocol library only.`;

export function main(argv: readonly string[]): number {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(usage);
    return 0;
  }
  if (argv.includes('--version')) {
    console.log(version);
    return 0;
  }
  // TODO(replica server issue): start the server. Until then, say so instead of pretending.
  console.error('e2ekv-server: the replica server is not implemented in this version (see --help).');
  return 1;
}
