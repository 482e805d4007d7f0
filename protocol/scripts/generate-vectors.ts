// Writes protocol/vectors/*.json: `npm run vectors`. The vectors test fails if
// the committed files differ from what this produces.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildVectors, serializeVectors } from './vectors.js';

const dir = path.resolve(fileURLToPath(new URL('../vectors', import.meta.url)));
const files = await buildVectors();
for (const [name, content] of Object.entries(files)) {
  writeFileSync(path.join(dir, name), serializeVectors(content));
  console.log(`wrote protocol/vectors/${name}`);
}
