/**
 * Node-only parts of the SDK (`import ... from 'e2ekv/node'`): the file-backed
 * local replica and keystore files. Browsers use 'e2ekv' alone.
 */
export { openFileLocalStore } from '../local/file.js';
export { readKeystoreFile, writeKeystoreFile } from './keystore-file.js';
