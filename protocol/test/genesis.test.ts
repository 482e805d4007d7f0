import test from 'ava';
import { bytesEqual } from '../src/bytes.js';
import { ed25519Signer } from '../src/crypto/ed25519.js';
import { sha256 } from '../src/crypto/sha256.js';
import { E2ekvError } from '../src/errors.js';
import { encodeGenesisBody, signGenesis, SIGNED_GENESIS_LENGTH, verifyGenesis, type Genesis } from '../src/genesis.js';

async function makeGenesis() {
  const signer = await ed25519Signer(new Uint8Array(32).fill(5));
  const genesis: Genesis = {
    createdAtMs: 1_700_000_000_000n,
    nonce: new Uint8Array(16).fill(6),
    creator: signer.publicKey,
    creatorBoxKey: new Uint8Array(32).fill(7),
  };
  return { signer, genesis, signed: await signGenesis(genesis, signer) };
}

test('a signed genesis verifies and its vault id is the hash of its body', async (t) => {
  const { genesis, signed } = await makeGenesis();
  t.is(signed.length, SIGNED_GENESIS_LENGTH);
  const verified = await verifyGenesis(signed);
  t.deepEqual(verified.genesis, genesis);
  t.true(bytesEqual(verified.vaultId, sha256(encodeGenesisBody(genesis))));
});

test('every altered byte of a signed genesis is rejected', async (t) => {
  const { signed } = await makeGenesis();
  const codes = new Set<string>();
  for (let i = 0; i < signed.length; i++) {
    const copy = signed.slice();
    copy[i]! ^= 0x01;
    const error = await t.throwsAsync(verifyGenesis(copy), { instanceOf: E2ekvError }, `byte ${i}`);
    codes.add(error!.code);
  }
  // The tag, the creator key (not a valid point, or a key that does not sign this) and the signature.
  t.deepEqual([...codes].sort(), ['BAD_KEY', 'BAD_SIGNATURE', 'UNSUPPORTED_VERSION']);
});

test('a genesis of the wrong length, or signed by someone else, is rejected', async (t) => {
  const { genesis, signed } = await makeGenesis();
  t.is((await t.throwsAsync(verifyGenesis(signed.subarray(1)), { instanceOf: E2ekvError }))?.code, 'MALFORMED');
  const other = await ed25519Signer(new Uint8Array(32).fill(8));
  await t.throwsAsync(signGenesis(genesis, other), { instanceOf: E2ekvError });
  const zeroBox = await signGenesis({ ...genesis, creatorBoxKey: new Uint8Array(32) }, (await makeGenesis()).signer);
  t.is((await t.throwsAsync(verifyGenesis(zeroBox), { instanceOf: E2ekvError }))?.code, 'BAD_KEY');
});
