/**
 * The texts the vault browser shows and reads: a vault access, a device's public
 * keys, values, passphrases. No DOM here, so that the rules are easy to read
 * (and to test) apart from the page.
 */
import type { Settable, Sibling, VaultAccess } from 'e2ekv';

/** A message for the person at the page; anything else that is thrown is a bug or an SDK error. */
export class Problem extends Error {}

export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function fromHex(text: string, what: string): Uint8Array {
  const clean = text.replace(/\s+/g, '').toLowerCase();
  if (!/^(?:[0-9a-f]{2})*$/.test(clean)) throw new Problem(`${what} is not hex (pairs of 0-9, a-f)`);
  return Uint8Array.from(clean.match(/../g) ?? [], (h) => parseInt(h, 16));
}

function toBase64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

function fromBase64(text: string, length: number, what: string): Uint8Array {
  // Only the one spelling of `length` bytes, so that a mangled paste fails here rather than as a wrong key later.
  const chars = Math.ceil(length / 3) * 4;
  if (text.length !== chars || !/^[A-Za-z0-9+/]+={0,2}$/.test(text))
    throw new Problem(`${what} is not ${length} bytes of base64`);
  const binary = atob(text);
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  if (bytes.length !== length || toBase64(bytes) !== text)
    throw new Problem(`${what} is not ${length} bytes of base64`);
  return bytes;
}

function parseObject(text: string, tag: string, what: string): Record<string, unknown> {
  let json: unknown;
  try {
    json = JSON.parse(text.trim());
  } catch {
    throw new Problem(`this is not ${what}: it is not JSON`);
  }
  const record =
    typeof json === 'object' && json !== null && !Array.isArray(json) ? (json as Record<string, unknown>) : {};
  if (record[tag] !== 1) throw new Problem(`this is not ${what}: it has no "${tag}": 1 field`);
  return record;
}

/** A vault access as text to move between one's own devices. Secret. */
export function formatAccess(access: VaultAccess): string {
  return JSON.stringify({ 'e2ekv-access': 1, vaultId: access.vaultId, secret: toBase64(access.secret) });
}

export function parseAccess(text: string): VaultAccess {
  const json = parseObject(text, 'e2ekv-access', 'a vault access');
  const { vaultId, secret } = json;
  if (typeof vaultId !== 'string' || !/^[0-9a-f]{64}$/.test(vaultId)) {
    throw new Problem('the vault id of this access is not 64 lowercase hex digits');
  }
  if (typeof secret !== 'string') throw new Problem('this access holds no secret');
  return { vaultId, secret: fromBase64(secret, 32, 'the secret of this access') };
}

export interface DevicePublicKeys {
  signingKey: Uint8Array;
  boxKey: Uint8Array;
}

/** A device's public keys, as text for an admin device to add it. Not secret. */
export function formatDevice(keys: DevicePublicKeys): string {
  return JSON.stringify({ 'e2ekv-device': 1, signingKey: toHex(keys.signingKey), boxKey: toHex(keys.boxKey) });
}

export function parseDevice(text: string): DevicePublicKeys {
  const json = parseObject(text, 'e2ekv-device', "a device's public keys");
  const keys = (['signingKey', 'boxKey'] as const).map((name) => {
    const value = json[name];
    const bytes = typeof value === 'string' ? fromHex(value, name) : undefined;
    if (bytes?.length !== 32) throw new Problem(`the ${name} of this device is not 32 bytes of hex`);
    return bytes;
  });
  return { signingKey: keys[0]!, boxKey: keys[1]! };
}

export type InputType = 'json' | 'text' | 'hex';

/** The value the set form describes. */
export function parseInput(type: InputType, text: string): Settable {
  if (type === 'text') return text;
  if (type === 'hex') return fromHex(text, 'the value');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new Problem(`the value is not valid JSON (${(error as Error).message}); choose Text to store it as text`);
  }
  return json as Settable;
}

const SHOWN_BYTES = 4096;

/** How a value reads on the page: a short description and the text itself. */
export function renderValue(value: unknown, kind: Sibling['kind']): { label: string; text: string } {
  if (kind === 'tombstone') return { label: 'deleted', text: '' };
  if (value instanceof Uint8Array) {
    const lines: string[] = [];
    for (let i = 0; i < Math.min(value.length, SHOWN_BYTES); i += 32) {
      lines.push(toHex(value.subarray(i, Math.min(i + 32, SHOWN_BYTES))).replace(/(..)(?!$)/g, '$1 '));
    }
    if (value.length > SHOWN_BYTES) lines.push(`… ${value.length - SHOWN_BYTES} more bytes`);
    const what = kind === 'automerge' ? 'Automerge document' : 'bytes';
    return { label: `${what}, ${value.length} ${value.length === 1 ? 'byte' : 'bytes'}`, text: lines.join('\n') };
  }
  if (typeof value === 'string') return { label: 'text', text: value };
  return { label: 'JSON', text: JSON.stringify(value, null, 2) };
}

/**
 * A passphrase nobody chose: 24 symbols from a 32-symbol alphabet, 120 bits.
 * A person's choice falls to a dictionary whatever scrypt costs.
 */
export function generatePassphrase(): string {
  const alphabet = 'abcdefghijkmnpqrstuvwxyz23456789';
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  // 256 is a multiple of 32: the low five bits are uniform.
  const symbols = Array.from(bytes, (b) => alphabet[b & 31]!).join('');
  bytes.fill(0);
  return symbols.match(/.{4}/g)!.join('-');
}

export const MIN_PASSPHRASE_LENGTH = 12;

export function checkNewPassphrase(passphrase: string): void {
  if ([...passphrase].length < MIN_PASSPHRASE_LENGTH) {
    throw new Problem(
      `use a passphrase of ${MIN_PASSPHRASE_LENGTH} characters or more (Generate makes a strong one); it is all that protects this device's keys`,
    );
  }
}
