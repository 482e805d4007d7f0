/** `e2ekv vault create | list | info`: the vaults this keystore can open. */
import {
  E2ekvError,
  bytesEqual,
  cosignerKeyId,
  fromHex,
  logOrigin,
  parseCosignerVkey,
  parseNote,
  verifyDeviceCheckpoint,
} from '@e2ekv/protocol';
import { createClient } from '../../client.js';
import { openFileLocalStore } from '../../local/file.js';
import { type Command, print, serversOf } from '../command.js';
import { unlock, withHomeLock } from '../home.js';
import { UsageError } from '../io.js';
import { checkServerUrls, openSessionVault, withVaultSession } from '../session.js';

// Names are typed on command lines and shown in lists: keep them plain.
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function checkVaultName(name: string): void {
  if (!NAME.test(name)) {
    throw new UsageError(`vault names are 1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit`);
  }
}

export const vaultCreate: Command = {
  name: 'vault create',
  args: 'NAME --server URL...',
  summary: 'create a vault on one or more replicas, with this device as its admin',
  details: ['NAME is yours alone (replicas only ever see the vault id): letters, digits, ".", "_", "-".'],
  examples: [
    'e2ekv vault create notes --server http://127.0.0.1:7400',
    'e2ekv vault create team --server https://a.example:7400 --server https://b.example:7400',
  ],
  options: { server: { type: 'string', multiple: true } },
  optionHelp: [['--server URL', 'a replica to keep the vault on (repeatable, at least one)']],
  positionals: { min: 1, max: 1 },
  async run(ctx) {
    const name = ctx.positionals[0]!;
    checkVaultName(name);
    const servers = checkServerUrls(serversOf(ctx));
    if (servers.length === 0) throw new UsageError('vault create needs at least one --server URL');
    const created = await withHomeLock(ctx.home, async () => {
      const keystore = await unlock(ctx.home, ctx.io);
      if (keystore.contents.vaults.some((v) => v.name === name)) {
        throw new E2ekvError('CONFLICT', `this keystore already has a vault named "${name}": choose another name`);
      }
      const store = await openFileLocalStore(ctx.home.replicasDir);
      try {
        const client = await createClient({ identity: keystore.contents.identity, servers, store });
        const { access } = await client.createVault();
        const entry = { name, vaultId: access.vaultId, secret: access.secret, servers };
        await keystore.save({ ...keystore.contents, vaults: [...keystore.contents.vaults, entry] });
        return entry;
      } finally {
        await store.close();
      }
    });
    await print(
      ctx,
      { name, vaultId: created.vaultId, servers },
      () => `Created vault ${name} (${created.vaultId})\non ${servers.join(', ')}\nNext: e2ekv set ${name} KEY VALUE\n`,
    );
    return 0;
  },
};

export const vaultList: Command = {
  name: 'vault list',
  args: '',
  summary: 'list the vaults this keystore can open',
  examples: ['e2ekv vault list', 'e2ekv vault list --json'],
  options: {},
  optionHelp: [],
  positionals: { min: 0, max: 0 },
  async run(ctx) {
    const keystore = await withHomeLock(ctx.home, () => unlock(ctx.home, ctx.io));
    const vaults = keystore.contents.vaults.map((v) => ({ name: v.name, vaultId: v.vaultId, servers: v.servers }));
    await print(ctx, vaults, () =>
      vaults.length === 0
        ? 'No vaults yet: e2ekv vault create NAME --server URL\n'
        : vaults.map((v) => `${v.name}\t${v.vaultId}\t${v.servers.join(' ')}\n`).join(''),
    );
    return 0;
  },
};

export const vaultInfo: Command = {
  name: 'vault info',
  args: 'NAME',
  summary: 'show what this device holds of a vault (from the local replica; no request is made)',
  details: [
    'With --json, every log comes with its device checkpoint verifier key (vkey) and the latest',
    'checkpoint this device verified, as the signed note with the replica cosignatures it was',
    'verified with; replicas come with the cosigner vkey each presented last. Anyone can check',
    'them with any C2SP signed-note implementation (the repository has one in test/support/verify_notes.py).',
  ],
  examples: ['e2ekv vault info notes', 'e2ekv vault info notes --json'],
  options: {},
  optionHelp: [],
  positionals: { min: 1, max: 1 },
  async run(ctx) {
    const name = ctx.positionals[0]!;
    const info = await withVaultSession(ctx.io, ctx.home, name, [], async (session) => {
      const vault = await openSessionVault(session, false);
      const status = vault.status();
      const audit = await vault.auditInfo();
      const vaultId = fromHex(session.access.vaultId);
      const cosigners = audit.replicas.flatMap((r) => (r.vkey === undefined ? [] : [r.vkey]));
      const logs = [];
      for (const log of audit.logs) {
        const applied = status.logs.find((l) => l.device === log.device)?.applied ?? 0;
        const checkpoint =
          log.checkpoint === undefined
            ? null
            : {
                ...log.checkpoint,
                cosignatures: await cosignaturesOf(log.checkpoint.note, vaultId, log.device, cosigners),
              };
        const { device, vkey, entries, verified, root } = log;
        logs.push({ device, vkey, entries, verified, applied, root, checkpoint });
      }
      return {
        name,
        vaultId: session.access.vaultId,
        device: session.client.deviceId,
        servers: session.servers,
        keys: status.keys,
        unpushed: status.unpushed,
        acked: status.acked,
        rejected: status.rejected,
        logs,
        replicas: audit.replicas.map((r) => ({
          url: r.url,
          configured: session.servers.includes(r.url),
          vkey: r.vkey ?? null,
        })),
        evidence: audit.evidence,
      };
    });
    await print(ctx, info, () => {
      const lines = [
        `vault    ${info.name} (${info.vaultId})`,
        `device   ${info.device}`,
        `servers  ${info.servers.join(', ')}`,
        `keys     ${info.keys}`,
        `unpushed ${info.unpushed} entries of this device not yet acknowledged by a replica`,
        `evidence ${info.evidence.length === 0 ? 'none' : `${info.evidence.length} record(s) of a replica or device contradicting itself (signed notes in --json): run e2ekv verify`}`,
        ...info.evidence.map((e) => `  device ${e.device} via ${e.replica}: ${sizeOf(e.first)} vs ${sizeOf(e.second)}`),
        ...(info.rejected.length === 0
          ? []
          : [
              `ignored  ${info.rejected.length} entries written by devices that could not write then (a replica accepted them): run e2ekv verify`,
            ]),
        'logs:',
        ...info.logs.flatMap((l) => [
          `  ${l.device}${l.device === info.device ? ' (this device)' : ''}: ${l.entries} entries, ${l.verified} verified`,
          l.checkpoint === null
            ? '    no cosigned checkpoint kept yet (sync to get one)'
            : `    checkpoint of ${l.checkpoint.size} entries, ${describeCosignatures(l.checkpoint.cosignatures)}`,
        ]),
        'replicas (cosigner key as last seen):',
        ...info.replicas.map(
          (r) => `  ${r.url}${r.configured ? '' : " (not in this vault's list)"}: ${r.vkey ?? 'not reached yet'}`,
        ),
        'acknowledged by:',
        ...Object.entries(info.acked).map(([url, size]) => `  ${url}: ${size} entries of this device`),
        `Signed checkpoints and keys: e2ekv vault info ${info.name} --json`,
      ];
      return lines.join('\n') + '\n';
    });
    return 0;
  },
};

interface CosignatureInfo {
  name: string;
  /** The cosigner's vkey, when one of the replicas' keys signed it; null for a line no listed key matches. */
  vkey: string | null;
  /** POSIX seconds (a decimal string if it is too large for a JSON number); null when not verified here. */
  time: number | string | null;
}

/**
 * The cosignature lines of a kept checkpoint, each verified again under the
 * replicas' keys so that what is printed is what verifies.
 */
async function cosignaturesOf(
  note: string,
  vaultId: Uint8Array,
  device: string,
  vkeys: readonly string[],
): Promise<CosignatureInfo[]> {
  const cosigners = [...new Set(vkeys)].map((vkey) => ({ vkey, ...parseCosignerVkey(vkey) }));
  const verified = await verifyDeviceCheckpoint(note, vaultId, fromHex(device), cosigners).catch((cause: unknown) => {
    throw new E2ekvError(
      'INTEGRITY',
      `the checkpoint of device ${device} kept in the local replica does not verify under the keys recorded with it (${cause instanceof Error ? cause.message : String(cause)}): the local replica is damaged. Delete this vault's local data and sync again`,
      { cause },
    );
  });
  const origin = logOrigin(vaultId, fromHex(device));
  return parseNote(note)
    .signatures.filter((s) => s.name !== origin)
    .map((s) => {
      const cosigner = cosigners.find((c) => c.name === s.name && cosignerKeyId(c.name, c.publicKey) === s.keyId);
      const found =
        cosigner &&
        verified.cosignatures.find((c) => c.name === cosigner.name && bytesEqual(c.publicKey, cosigner.publicKey));
      if (cosigner === undefined || found === undefined) return { name: s.name, vkey: null, time: null };
      const time =
        found.timestamp <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(found.timestamp) : String(found.timestamp);
      return { name: s.name, vkey: cosigner.vkey, time };
    });
}

function describeCosignatures(cosignatures: readonly CosignatureInfo[]): string {
  if (cosignatures.length === 0) return 'signed by its device, no cosignature kept';
  return `cosigned by ${cosignatures.map((c) => `${c.name}${c.time === null ? ' (key unknown here)' : ` at ${timeText(c.time)}`}`).join(', ')}`;
}

/** A cosignature time for people: ISO 8601 when it is a date JavaScript can show. */
export function timeText(seconds: number | string): string {
  const ms = Number(seconds) * 1000;
  return Number.isFinite(ms) && Math.abs(ms) <= 8.64e15
    ? new Date(ms).toISOString().replace('.000Z', 'Z')
    : `${seconds} s`;
}

/** The size a checkpoint note claims, for the evidence summary (--json has the notes to verify). */
function sizeOf(note: string): string {
  const size = note.split('\n')[1];
  return size === undefined ? 'a checkpoint' : `a checkpoint of ${size} entries`;
}
