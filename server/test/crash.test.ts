/**
 * Durability under kill -9: a writer appends batches as fast as the replica
 * acknowledges them; the replica is killed at a random moment, restarted on the
 * same data directory, and must hold every acknowledged entry, intact, with no
 * partial batch. Repeated over several kills.
 */
import test from 'ava';
import {
  encodeAppendRequest,
  fromHex,
  toBase64,
  parseCosignerVkey,
  parseEntriesResponse,
  verifyDeviceCheckpoint,
} from '@e2ekv/protocol';
import { info, request } from './support/client.js';
import { startServerProcess, tempDir } from './support/process.js';
import { TestDevice } from './support/writer.js';

const KILLS = 8;

test(`every acknowledged append survives ${KILLS} kill -9 restarts`, async (t) => {
  const { dir, remove } = await tempDir();
  const device = await TestDevice.create();
  let server = await startServerProcess(dir);
  try {
    let audience = parseCosignerVkey((await info(server.url)).cosigner.vkey).publicKey;
    const { signedGenesis, vaultId } = await device.genesis();
    const created = await request(server.url, 'POST', '/v1/vaults', {
      signer: device.signer,
      audience,
      body: { genesis: toBase64(signedGenesis) },
    });
    t.is(created.status, 201);
    const appendPath = `/v1/vaults/${vaultId}/logs/${device.hex}/append`;
    let acknowledged = 0;
    let batches = 0;
    for (let round = 0; round < KILLS; round++) {
      let stopped = false;
      const writer = (async () => {
        while (!stopped) {
          const req = await device.nextAppend(vaultId, { values: 1 + Math.floor(Math.random() * 8) });
          let res;
          try {
            res = await request(server.url, 'POST', appendPath, {
              signer: device.signer,
              audience,
              body: encodeAppendRequest(req),
            });
          } catch {
            return; // the connection died with the server
          }
          if (res.status !== 200) throw new Error(`append refused: ${res.status} ${res.text}`);
          acknowledged = req.start + req.entries.length;
          batches++;
        }
      })();
      await new Promise((resolve) => setTimeout(resolve, 150 + Math.random() * 400));
      await server.kill9();
      stopped = true;
      await writer;

      server = await startServerProcess(dir);
      audience = parseCosignerVkey((await info(server.url)).cosigner.vkey).publicKey;
      const state = await request(server.url, 'GET', `/v1/vaults/${vaultId}`, { signer: device.signer, audience });
      const size = (state.body as { logs: { size: number }[] }).logs[0]?.size ?? 0;
      t.true(size >= acknowledged, `round ${round}: server holds ${size} entries, ${acknowledged} were acknowledged`);
      t.true(size <= device.size(vaultId), `round ${round}: the server holds more than the device wrote`);

      // Every entry is intact and the stored checkpoint matches them (no partial batch).
      const local = device.entries(vaultId);
      for (let start = 0; start < size; start += 1024) {
        const res = await request(
          server.url,
          'GET',
          `/v1/vaults/${vaultId}/logs/${device.hex}/entries?start=${start}&end=${start + 1024}`,
          {
            signer: device.signer,
            audience,
          },
        );
        const page = parseEntriesResponse(res.body);
        const verified = await verifyDeviceCheckpoint(page.checkpoint, fromHex(vaultId), device.publicKey);
        t.is(verified.checkpoint.size, BigInt(size));
        page.entries.forEach((entry, i) => {
          if (Buffer.compare(Buffer.from(entry), Buffer.from(local[start + i]!)) !== 0)
            t.fail(`entry ${start + i} differs`);
        });
      }
      const checkpoint = await request(server.url, 'GET', `/v1/vaults/${vaultId}/logs/${device.hex}/checkpoint`, {
        signer: device.signer,
        audience,
      });
      t.is(checkpoint.status, 200, `round ${round}: the checkpoint request failed: ${checkpoint.text}`);
      t.deepEqual(
        device.tree(vaultId).root(size),
        (await verifyDeviceCheckpoint(checkpoint.text, fromHex(vaultId), device.publicKey)).checkpoint.root,
      );
      // Resume from what the server holds (an unacknowledged batch may or may not have landed).
      device.rewind(vaultId, size);
      acknowledged = size;
    }
    t.log(`${batches} acknowledged batches over ${KILLS} kills; final size ${acknowledged}`);
    t.true(batches > KILLS, 'the writer made progress between kills');
  } finally {
    await server.stop();
    await remove();
  }
});
