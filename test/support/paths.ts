// Where tests find the repository and the reference vectors that sit beside it
// (../shared/vectors from the repository root, locally and in CI alike).
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const sharedVectorsDir = path.resolve(repoRoot, '../shared/vectors');
export const protocolVectorsDir = path.join(repoRoot, 'protocol/vectors');
