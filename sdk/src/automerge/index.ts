/**
 * Automerge documents as vault values (`import ... from 'e2ekv/automerge'`).
 *
 * A separate entry point so that applications storing plain values never load
 * Automerge or its 3.6 MB WebAssembly module (DESIGN.md section 6): nothing in
 * the 'e2ekv' entry imports this folder. Keep one document per key, never one
 * document for a whole vault: Automerge holds a document's full history in
 * memory, and a key is the unit that is loaded, synced and merged. See
 * sdk/AUTOMERGE.md.
 */
export { openDocument } from './document.js';
export type {
  DocumentChangeOptions,
  DocumentHandle,
  DocumentSiblings,
  DocumentVault,
  OpenDocumentOptions,
} from './document.js';
export { DEFAULT_DOCUMENT_LIMITS, mergeSiblings } from './merge.js';
export type { DocumentLimits, MergedSiblings } from './merge.js';
export { initAutomerge } from './wasm.js';
export type { Doc } from '@automerge/automerge/slim';
