import { MemoryStorage } from '../src/storage/memory.js';
import { storageConformance } from './storage-conformance.js';

storageConformance('memory', async () => {
  const storage = new MemoryStorage();
  return { storage, cleanup: () => storage.close() };
});
