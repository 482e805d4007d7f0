/**
 * Which replicas are peers and which key each one has: `--peer URL[#KEY]`
 * parsing, and the pins learned on first contact, kept in the data directory
 * so that a peer whose key changes is refused, loudly, after a restart too.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { E2ekvError, fromBase64, fromHex, parseCosignerVkey, toHex } from '@e2ekv/protocol';

export interface PeerSpec {
  /** scheme://host:port, as requests are sent to it. */
  url: string;
  /** The peer's server key when given with the URL; otherwise learned from its /v1/info and pinned. */
  key?: Uint8Array;
}

/**
 * `URL` or `URL#KEY`, where KEY is the peer's cosigner vkey (as /v1/info shows
 * it), or its 32-byte public key in base64 or hex. The URL is a base URL: the
 * paths a replica signs start at "/v1", so a peer cannot sit under a prefix.
 */
export function parsePeerSpec(text: string): PeerSpec {
  const hash = text.indexOf('#');
  const base = hash === -1 ? text : text.slice(0, hash);
  const keyText = hash === -1 ? undefined : text.slice(hash + 1);
  let url: URL;
  try {
    url = new URL(base);
  } catch {
    throw new E2ekvError('INVALID_ARGUMENT', `peer ${text}: not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new E2ekvError('INVALID_ARGUMENT', `peer ${text}: not an http:// or https:// URL`);
  }
  if (
    (url.pathname !== '/' && url.pathname !== '') ||
    url.search !== '' ||
    url.username !== '' ||
    url.password !== ''
  ) {
    throw new E2ekvError(
      'INVALID_ARGUMENT',
      `peer ${text}: give the replica's base URL (scheme, host and port), without path, query or credentials`,
    );
  }
  const spec: PeerSpec = { url: url.origin };
  if (keyText !== undefined) spec.key = parsePeerKey(keyText, text);
  return spec;
}

function parsePeerKey(keyText: string, spec: string): Uint8Array {
  try {
    if (/^[^+]+\+[0-9a-f]{8}\+/.test(keyText)) return parseCosignerVkey(keyText).publicKey;
    const key = /^[0-9a-f]{64}$/.test(keyText) ? fromHex(keyText) : fromBase64(keyText, 'peer key');
    if (key.length !== 32) throw new E2ekvError('BAD_KEY', 'a server key is 32 bytes');
    return key;
  } catch (cause) {
    throw new E2ekvError(
      'INVALID_ARGUMENT',
      `peer ${spec}: the part after # must be the peer's cosigner vkey (from its /v1/info) or its 32-byte key in base64 or hex`,
      { cause },
    );
  }
}

const PIN_FILE = 'peers.json';

/**
 * Peer keys learned on first contact (trust on first use), by peer URL, in
 * `<data>/peers.json`. Keys given with --peer URL#KEY are not stored: the
 * command line is their record.
 */
export class PeerPins {
  readonly #file: string;
  readonly #pins = new Map<string, string>();
  // Writes one after another, so that the file always holds the latest map.
  #writing: Promise<void> = Promise.resolve();

  private constructor(file: string) {
    this.#file = file;
  }

  static async load(dataDir: string): Promise<PeerPins> {
    const pins = new PeerPins(path.join(dataDir, PIN_FILE));
    let text: string | undefined;
    try {
      text = await readFile(pins.#file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    if (text !== undefined) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch (cause) {
        throw new E2ekvError('MALFORMED', `${pins.#file} is not JSON: fix or remove it`, { cause });
      }
      const map = (parsed as { pins?: unknown } | null)?.pins;
      if (typeof map !== 'object' || map === null || Array.isArray(map)) {
        throw new E2ekvError('MALFORMED', `${pins.#file} must hold {"pins": {"<peer URL>": "<key hex>"}}`);
      }
      for (const [url, key] of Object.entries(map)) {
        if (typeof key !== 'string' || !/^[0-9a-f]{64}$/.test(key)) {
          throw new E2ekvError('MALFORMED', `${pins.#file}: the pin of ${url} is not a 64-digit hex key`);
        }
        pins.#pins.set(url, key);
      }
    }
    return pins;
  }

  get(url: string): Uint8Array | undefined {
    const hex = this.#pins.get(url);
    return hex === undefined ? undefined : fromHex(hex);
  }

  /** Pins `key` for `url`; resolves once the file is replaced (write, then rename). */
  set(url: string, key: Uint8Array): Promise<void> {
    this.#pins.set(url, toHex(key));
    const text = JSON.stringify({ pins: Object.fromEntries(this.#pins) }, null, 2) + '\n';
    const write = async () => {
      const temporary = `${this.#file}.${process.pid}.tmp`;
      await writeFile(temporary, text, { mode: 0o600 });
      await rename(temporary, this.#file);
    };
    this.#writing = this.#writing.then(write, write);
    return this.#writing;
  }
}
