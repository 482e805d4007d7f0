/**
 * Crypto throughput of the protocol's building blocks, with baselines measured in
 * the same run: the raw primitive (tweetnacl secretbox, node:crypto Ed25519 and
 * hashes) beside our wrapper. Reports the median of several timed rounds.
 *
 *   npm run bench:crypto            (about 40 s)
 *   npm run bench:crypto -- --quick (about 10 s)
 */
import { createHash, createHmac, generateKeyPairSync, sign as nodeSign, verify as nodeVerify } from 'node:crypto';
import nacl from 'tweetnacl';
import {
  EnvelopePurpose,
  HmacSha256,
  defaultEd25519,
  hmacSha256,
  leafHash,
  nodeHash,
  openEnvelope,
  sealEnvelope,
  tweetnaclEd25519,
  webCryptoEd25519,
  type Ed25519Backend,
  type EnvelopeBinding,
} from '@e2ekv/protocol';

const quick = process.argv.includes('--quick');
const ROUNDS = quick ? 3 : 7;
const ROUND_MS = quick ? 300 : 1000;

interface Result {
  name: string;
  opsPerSecond: number;
  baseline?: string;
}

async function measure(run: (n: number) => Promise<void> | void, batch: number): Promise<number> {
  await run(batch); // warm-up
  const rates: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    let ops = 0;
    const start = performance.now();
    while (performance.now() - start < ROUND_MS) {
      await run(batch);
      ops += batch;
    }
    rates.push(ops / ((performance.now() - start) / 1000));
  }
  rates.sort((a, b) => a - b);
  return rates[Math.floor(rates.length / 2)]!;
}

const results: Result[] = [];
async function bench(name: string, batch: number, run: (n: number) => Promise<void> | void, baseline?: string) {
  const opsPerSecond = await measure(run, batch);
  results.push(baseline === undefined ? { name, opsPerSecond } : { name, opsPerSecond, baseline });
  console.error(`${name}: ${Math.round(opsPerSecond).toLocaleString('en-US')} ops/s`);
}

const key = nacl.randomBytes(32);
const binding: EnvelopeBinding = {
  purpose: EnvelopePurpose.itemValue,
  vaultId: nacl.randomBytes(32),
  device: nacl.randomBytes(32),
  logIndex: 1n,
  epoch: 0,
  item: 0,
  blindedKey: nacl.randomBytes(32),
};
const kib = nacl.randomBytes(1024);
const sealed = sealEnvelope(key, binding, kib);
const nonce = nacl.randomBytes(24);
const boxed = nacl.secretbox(kib, nonce, key);

await bench('baseline: tweetnacl secretbox seal 1 KiB', 256, (n) => {
  for (let i = 0; i < n; i++) nacl.secretbox(kib, nonce, key);
});
await bench('baseline: tweetnacl secretbox open 1 KiB', 256, (n) => {
  for (let i = 0; i < n; i++) nacl.secretbox.open(boxed, nonce, key);
});
await bench(
  'envelope seal 1 KiB (pad, bind, secretbox)',
  256,
  (n) => {
    for (let i = 0; i < n; i++) sealEnvelope(key, binding, kib);
  },
  'baseline: tweetnacl secretbox seal 1 KiB',
);
await bench(
  'envelope open 1 KiB (secretbox, check binding and padding)',
  256,
  (n) => {
    for (let i = 0; i < n; i++) openEnvelope(key, binding, sealed);
  },
  'baseline: tweetnacl secretbox open 1 KiB',
);

const seed = nacl.randomBytes(32);
const message = nacl.randomBytes(200); // about the size of a checkpoint note
const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const nodeSig = nodeSign(null, message, privateKey);
await bench('baseline: node:crypto Ed25519 sign (sync)', 64, (n) => {
  for (let i = 0; i < n; i++) nodeSign(null, message, privateKey);
});
await bench('baseline: node:crypto Ed25519 verify (sync)', 64, (n) => {
  for (let i = 0; i < n; i++) nodeVerify(null, message, publicKey, nodeSig);
});
// The node:crypto backend is the protocol's default in Node (not exported by name).
const nativeBackend = await defaultEd25519();
const backends: Ed25519Backend[] = [
  ...(nativeBackend.name === 'node' ? [nativeBackend] : []),
  webCryptoEd25519,
  tweetnaclEd25519,
];
for (const backend of backends) {
  const signer = await backend.signer(seed);
  const signature = await signer.sign(message);
  // WebCrypto both ways: one at a time, as the server awaits each, and 64 in flight.
  for (const inFlight of backend.name === 'webcrypto' ? [1, 64] : [1]) {
    await bench(
      `Ed25519 sign, ${backend.name}, ${inFlight} in flight`,
      inFlight,
      async (n) => {
        await Promise.all(Array.from({ length: n }, () => signer.sign(message)));
      },
      'baseline: node:crypto Ed25519 sign (sync)',
    );
    await bench(
      `Ed25519 verify, ${backend.name}, ${inFlight} in flight`,
      inFlight,
      async (n) => {
        const verdicts = await Promise.all(
          Array.from({ length: n }, () => backend.verify(signer.publicKey, message, signature)),
        );
        if (!verdicts.every(Boolean)) throw new Error('verification failed during the benchmark');
      },
      'baseline: node:crypto Ed25519 verify (sync)',
    );
  }
}

const hmacKey = nacl.randomBytes(32);
const name = new TextEncoder().encode('notes/2026/todo-list-1');
const keyed = new HmacSha256(hmacKey);
await bench('baseline: node:crypto HMAC-SHA-256 of a 22-byte key name', 1024, (n) => {
  for (let i = 0; i < n; i++) createHmac('sha256', hmacKey).update(name).digest();
});
await bench(
  'HMAC-SHA-256 blinding, one-shot (protocol hmacSha256: node:crypto in Node)',
  1024,
  (n) => {
    for (let i = 0; i < n; i++) hmacSha256(hmacKey, name);
  },
  'baseline: node:crypto HMAC-SHA-256 of a 22-byte key name',
);
await bench(
  'HMAC-SHA-256 blinding, keyed instance reused (protocol HmacSha256: @stablelib below 65 bytes)',
  1024,
  (n) => {
    for (let i = 0; i < n; i++) keyed.mac(name);
  },
  'baseline: node:crypto HMAC-SHA-256 of a 22-byte key name',
);

const left = nacl.randomBytes(32);
const right = nacl.randomBytes(32);
const prefix = Uint8Array.of(1);
await bench('baseline: node:crypto SHA-256 node hash (65 bytes)', 1024, (n) => {
  for (let i = 0; i < n; i++) createHash('sha256').update(prefix).update(left).update(right).digest();
});
await bench(
  'Merkle node hash (protocol sha256Parts: node:crypto in Node, 65 bytes)',
  1024,
  (n) => {
    for (let i = 0; i < n; i++) nodeHash(left, right);
  },
  'baseline: node:crypto SHA-256 node hash (65 bytes)',
);
await bench('Merkle leaf hash of a 1 KiB entry', 256, (n) => {
  for (let i = 0; i < n; i++) leafHash(kib);
});

const byName = new Map(results.map((r) => [r.name, r.opsPerSecond]));
const fmt = (x: number) => Math.round(x).toLocaleString('en-US');
console.log(`\nCrypto throughput, ${process.version}, median of ${ROUNDS} rounds of ${ROUND_MS} ms\n`);
console.log('| operation | ops/s | vs baseline |');
console.log('|---|---:|---:|');
for (const r of results) {
  const base = r.baseline === undefined ? undefined : byName.get(r.baseline);
  console.log(
    `| ${r.name} | ${fmt(r.opsPerSecond)} | ${base === undefined ? '' : (r.opsPerSecond / base).toFixed(2) + '×'} |`,
  );
}
