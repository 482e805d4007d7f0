// Where tests find the repository and the reference vectors that sit beside it
// (../shared/vectors from the repository root, locally and in CI alike).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const sharedVectorsDir = path.resolve(repoRoot, '../shared/vectors');
export const protocolVectorsDir = path.join(repoRoot, 'protocol/vectors');

/** A file of the C2SP reference vectors, as text. */
export function c2spVector(name: string): string {
  return readFileSync(path.join(sharedVectorsDir, 'c2sp', name), 'utf8');
}

/** A C2SP .vkey file: its trailing newline is not part of the key. */
export function c2spVkey(name: string): string {
  return c2spVector(name).replace(/\n$/, '');
}

/** One C2SP/CCTV Ed25519 edge case; `expected_valid` is Go's verdict. */
export interface Ed25519EdgeCase {
  number: number;
  key: string;
  sig: string;
  msg: string;
  flags: string[] | null;
  expected_valid: boolean;
}

export function ed25519EdgeCases(): Ed25519EdgeCase[] {
  const file = readFileSync(path.join(sharedVectorsDir, 'ed25519/ed25519-edge-cases.json'), 'utf8');
  return (JSON.parse(file) as { vectors: Ed25519EdgeCase[] }).vectors;
}
