// The executable's body; bin/e2ekv-server.js loads the compiled copy.
import { main } from './main.js';

process.exitCode = await main(process.argv.slice(2));
