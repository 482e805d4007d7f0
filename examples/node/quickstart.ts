/**
 * The SDK in a few lines: create a device identity, create a vault on a
 * replica, write, read, and resolve a conflict between two devices.
 *
 *   npm start -- --port 7400 &          # a replica (or any running e2ekv-server)
 *   npx tsx --conditions=e2ekv-source examples/node/quickstart.ts http://127.0.0.1:7400
 */
import { createClient, createIdentity, publicIdentity } from 'e2ekv';

const server = process.argv[2] ?? 'http://127.0.0.1:7400';

// Each device has its own identity. Keep it secret: it signs everything the device writes.
const laptopIdentity = createIdentity();
const phoneIdentity = createIdentity();
const laptop = await createClient({ identity: laptopIdentity, servers: [server] });
const phone = await createClient({ identity: phoneIdentity, servers: [server] });

// The laptop creates a vault. `access` holds the vault's secret: whoever has it can read.
const { vault, access } = await laptop.createVault();
await vault.set('config/db-password', 'correct horse battery staple');
await vault.set('config/limits', { connections: 20 });
console.log('laptop wrote', await vault.list());

// Add the phone as a writer and give it the access (invitations come later).
await vault.addMember(publicIdentity(phoneIdentity), 'writer');
const onPhone = await phone.openVault(access);
console.log('phone reads', await onPhone.get('config/db-password'));

// Both change the same key without seeing each other: two siblings, one winner everywhere.
await vault.set('config/limits', { connections: 50 });
await onPhone.set('config/limits', { connections: 10 });
await vault.sync();
await onPhone.sync();
console.log(
  'siblings',
  (await onPhone.getAll('config/limits')).map((s) => s.value),
);
console.log(
  'winner on both',
  JSON.stringify(await vault.get('config/limits')) === JSON.stringify(await onPhone.get('config/limits')),
);
