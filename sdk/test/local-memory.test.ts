import test from 'ava';
import { MemoryLocalStore } from '../src/local/memory.js';
import { localStoreConformance } from './local-conformance.js';

localStoreConformance(test, 'memory', async () => {
  const store = new MemoryLocalStore();
  return { store, cleanup: () => store.close() };
});
