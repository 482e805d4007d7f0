/**
 * Node's built-in crypto and Buffer, when this runtime is Node (>= 20.16, which
 * has `process.getBuiltinModule`), else undefined. The protocol stays isomorphic:
 * it imports no Node module, so browser bundles never see `node:crypto`; in Node
 * the faster native primitives are found at run time. Only the few functions used
 * here are typed, structurally, so that the protocol needs no Node types.
 */

/** An opaque node:crypto KeyObject. */
export type NodeKeyObject = object;

export interface NodeHash {
  update(data: Uint8Array): NodeHash;
  digest(): Uint8Array;
}

export interface NodeCrypto {
  createPrivateKey(options: { key: Uint8Array; format: 'der'; type: 'pkcs8' }): NodeKeyObject;
  createPublicKey(options: { key: Uint8Array; format: 'der'; type: 'spki' } | NodeKeyObject): NodeKeyObject & {
    export(options: { format: 'der'; type: 'spki' }): Uint8Array;
  };
  sign(algorithm: null, data: Uint8Array, key: NodeKeyObject): Uint8Array;
  verify(algorithm: null, data: Uint8Array, key: NodeKeyObject, signature: Uint8Array): boolean;
  createHash(algorithm: 'sha256'): NodeHash;
  createHmac(algorithm: 'sha256', key: Uint8Array): NodeHash;
}

export interface NodeBuffer {
  from(bytes: ArrayBufferLike, byteOffset: number, length: number): { toString(encoding: 'base64' | 'hex'): string };
  from(text: string, encoding: 'base64' | 'hex'): Uint8Array;
}

function builtin<T>(id: string): T | undefined {
  try {
    const process = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
    const module = process?.getBuiltinModule?.(id);
    return module === undefined || module === null ? undefined : (module as T);
  } catch {
    return undefined;
  }
}

/** node:crypto, or undefined outside Node. */
export const nodeCrypto: NodeCrypto | undefined = builtin<NodeCrypto>('node:crypto');

/** node:buffer's Buffer, or undefined outside Node. */
export const nodeBuffer: NodeBuffer | undefined = builtin<{ Buffer: NodeBuffer }>('node:buffer')?.Buffer;
