/**
 * Starts Automerge's WebAssembly module, once per JavaScript realm.
 *
 * Why the slim entry and a base64 module: the package's default browser entry
 * imports the .wasm file, which only bundlers with a WASM loader understand
 * (esbuild has none), and its Node entry reads the file from disk, which
 * browsers cannot. The slim entry plus the base64 copy of the module works
 * unchanged in Node, in browsers and under every bundler (SETUP-NOTES.md).
 *
 * The base64 module (about 4.8 MB of JavaScript) is imported dynamically, so
 * that in Node it is read only when a document is first used. A single-file
 * browser bundle contains it either way; the core 'e2ekv' entry never does.
 */
import * as Automerge from '@automerge/automerge/slim';
import { E2ekvError } from '@e2ekv/protocol';

let starting: Promise<void> | undefined;

/**
 * Starts Automerge's WASM module if nothing has started it yet, and resolves
 * with the Automerge API bound to it. Use this module object (rather than a
 * separate copy of '@automerge/automerge') for any Automerge function you apply
 * to the documents e2ekv returns: documents belong to the WASM instance that
 * made them.
 */
export async function initAutomerge(): Promise<typeof Automerge> {
  // The application may have started Automerge itself (through the same copy of
  // the package); starting it twice would swap the instance under live documents.
  if (Automerge.isWasmInitialized()) return Automerge;
  starting ??= import('@automerge/automerge/automerge.wasm.base64')
    .then((module) => Automerge.initializeBase64Wasm(module.automergeWasmBase64))
    .catch((cause: unknown) => {
      // Let a later call try again (a page may relax its CSP, a transient import may fail).
      starting = undefined;
      throw new E2ekvError(
        'UNSUPPORTED_PLATFORM',
        "Automerge's WebAssembly module did not start (is WebAssembly available, and does the page's Content-Security-Policy allow 'wasm-unsafe-eval'?)",
        { cause },
      );
    });
  await starting;
  return Automerge;
}

/** The Automerge API, for synchronous code that runs after `initAutomerge` resolved. */
export function automergeReady(): typeof Automerge {
  if (!Automerge.isWasmInitialized()) {
    throw new E2ekvError(
      'INVALID_ARGUMENT',
      "Automerge is not started yet: await initAutomerge() (or openDocument) from 'e2ekv/automerge' first",
    );
  }
  return Automerge;
}
