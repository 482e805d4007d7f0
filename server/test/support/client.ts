// A minimal signed HTTP client for server tests (the SDK's transport comes later).
import { signRequest, type Ed25519Signer } from '@e2ekv/protocol';

export interface ServerInfo {
  cosigner: { name: string; publicKey: string; vkey: string };
  protocolVersions: number[];
}

export async function info(url: string): Promise<ServerInfo> {
  const res = await fetch(`${url}/v1/info`);
  return (await res.json()) as ServerInfo;
}

export interface Reply {
  status: number;
  body: unknown;
  text: string;
  headers: Headers;
}

export async function request(
  url: string,
  method: string,
  path: string,
  options: {
    signer?: Ed25519Signer;
    audience?: Uint8Array;
    body?: unknown;
    rawBody?: Uint8Array;
    authorization?: string;
  } = {},
): Promise<Reply> {
  const bodyBytes =
    options.rawBody ??
    (options.body === undefined ? new Uint8Array(0) : new TextEncoder().encode(JSON.stringify(options.body)));
  const headers: Record<string, string> = {};
  if (options.authorization !== undefined) headers['authorization'] = options.authorization;
  else if (options.signer !== undefined && options.audience !== undefined) {
    headers['authorization'] = await signRequest(options.signer, {
      audience: options.audience,
      method,
      path,
      body: bodyBytes,
    });
  }
  if (bodyBytes.length > 0) headers['content-type'] = 'application/json';
  const res = await fetch(url + path, {
    method,
    headers,
    ...(bodyBytes.length > 0 ? { body: Buffer.from(bodyBytes) } : {}),
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // text/plain or octet-stream answers stay text
  }
  return { status: res.status, body, text, headers: res.headers };
}
