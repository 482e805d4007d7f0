export { main, parseArgs, usage } from './main.js';
export { startServer } from './server.js';
export type { RunningServer, ServerOptions } from './server.js';
export { DEFAULT_LIMITS } from './limits.js';
export type { ServerLimits } from './limits.js';
export type { StorageAdapter } from './storage/adapter.js';
