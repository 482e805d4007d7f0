/** `e2ekv set | get | del | ls | sync | verify`: one vault's keys and its replicas. */
import {
  E2ekvError,
  NOTE_SIG_ED25519,
  bytesEqual,
  cosignerKeyId,
  formatCosignerVkey,
  formatNote,
  fromHex,
  fromUtf8,
  isE2ekvError,
  logOrigin,
  noteKeyId,
  parseNote,
  toBase64,
  verifyDeviceCheckpoint,
  type Cosigner,
  type ErrorCode,
} from '@e2ekv/protocol';
import { createClient } from '../../client.js';
import { deviceSigner } from '../../identity.js';
import type { StoredEvidence } from '../../local/adapter.js';
import { ReplicaTransport } from '../../transport.js';
import type { Settable, Sibling, VaultAuditInfo } from '../../vault.js';
import {
  type Command,
  type CommandContext,
  ackOf,
  print,
  readOf,
  serverHelp,
  serverOption,
  serversOf,
} from '../command.js';
import { vaultAccessOf } from '../access.js';
import { UsageError, readAll, write } from '../io.js';
import { type Session, openSessionVault, withVaultSession } from '../session.js';
import { timeText } from './vaults.js';

const ackHelp: [string, string] = [
  '--ack LEVEL',
  'local, one (default), quorum or all: how many replicas must have the write on disk before it returns',
];
const readHelp: [string, string] = [
  '--read LEVEL',
  'local, one (default) or quorum: local answers from this device without a request; one and quorum pull and verify first',
];

const TYPES = ['text', 'json', 'bytes'] as const;

async function valueToSet(ctx: CommandContext): Promise<Settable> {
  const type = ctx.values['type'];
  if (type !== undefined && !(TYPES as readonly unknown[]).includes(type)) {
    throw new UsageError('--type must be text, json or bytes');
  }
  const argument = ctx.positionals[2];
  const fromStdin = argument === undefined || argument === '-';
  if (fromStdin && ctx.io.stdin.isTTY === true) {
    await write(ctx.io.stderr, 'Reading the value from the terminal; end it with Ctrl-D (or give VALUE).\n');
  }
  const bytes = fromStdin ? await readAll(ctx.io.stdin) : new TextEncoder().encode(argument);
  switch (type ?? (fromStdin ? 'bytes' : 'text')) {
    case 'bytes':
      return bytes;
    case 'text':
      return fromUtf8(bytes, 'the value');
    default:
      try {
        return JSON.parse(fromUtf8(bytes, 'the value')) as Settable;
      } catch {
        throw new E2ekvError('INVALID_ARGUMENT', 'the value is not JSON (--type json): check its quoting');
      }
  }
}

function describe(value: unknown): { type: string; value: unknown } {
  if (value instanceof Uint8Array) return { type: 'bytes', value: toBase64(value) };
  if (typeof value === 'string') return { type: 'text', value };
  return { type: 'json', value };
}

function notFound(key: string, vault: string): E2ekvError {
  return new E2ekvError('NOT_FOUND', `vault ${vault} has no key "${key}"`);
}

async function conflictNote(ctx: CommandContext, key: string, siblings: Sibling[]): Promise<void> {
  if (siblings.length < 2 || ctx.json) return;
  await write(
    ctx.io.stderr,
    `note: "${key}" has ${siblings.length} concurrent values (devices ${siblings.map((s) => s.device.slice(0, 12)).join(', ')}); ` +
      'showing the one every device picks. get --json lists them all; a new set resolves them.\n',
  );
}

export const set: Command = {
  name: 'set',
  args: 'VAULT KEY [VALUE|-]',
  summary: 'set a key; the value is encrypted, signed and its key name blinded before it leaves this device',
  details: [
    'VALUE is stored as text. Without VALUE, or with -, the value is read from stdin and stored as',
    'bytes exactly (files, binary data). --type json stores parsed JSON.',
  ],
  examples: [
    'e2ekv set notes db/password "correct horse battery staple"',
    'e2ekv set notes certs/server.pem - < server.pem',
    'e2ekv set notes config --type json \'{"retries": 3}\' --ack all',
  ],
  options: { ...serverOption, ack: { type: 'string' }, type: { type: 'string' } },
  optionHelp: [ackHelp, ['--type TYPE', 'text (default for VALUE), bytes (default for stdin) or json'], serverHelp],
  positionals: { min: 2, max: 3 },
  async run(ctx) {
    const [vaultName, key] = ctx.positionals as [string, string];
    const ack = ackOf(ctx);
    const value = await valueToSet(ctx);
    await withVaultSession(ctx.io, ctx.home, vaultName, serversOf(ctx), async (session) => {
      // Sync first (tolerating no answer), so this write supersedes what others wrote.
      const vault = await openSessionVault(session, true);
      await vault.set(key, value, { ack });
    });
    await print(ctx, { vault: vaultName, key, ack }, () => '');
    return 0;
  },
};

export const get: Command = {
  name: 'get',
  args: 'VAULT KEY',
  summary: 'print the value of a key (text as is, bytes raw, JSON as JSON); exit code 3 if it has none',
  examples: [
    'e2ekv get notes db/password',
    'e2ekv get notes certs/server.pem > server.pem',
    'e2ekv get notes k --read local',
  ],
  options: { ...serverOption, read: { type: 'string' } },
  optionHelp: [readHelp, serverHelp],
  positionals: { min: 2, max: 2 },
  async run(ctx) {
    const [vaultName, key] = ctx.positionals as [string, string];
    const read = readOf(ctx);
    const siblings = await withVaultSession(ctx.io, ctx.home, vaultName, serversOf(ctx), async (session) => {
      const vault = await openSessionVault(session, false);
      return vault.getAll(key, { read });
    });
    const winner = siblings[0];
    if (winner === undefined || winner.deleted) throw notFound(key, vaultName);
    await conflictNote(ctx, key, siblings);
    if (ctx.json) {
      await print(
        ctx,
        {
          key,
          ...describe(winner.value),
          siblings: siblings.map((s) => ({ device: s.device, deleted: s.deleted, ...describe(s.value) })),
        },
        () => '',
      );
    } else if (winner.value instanceof Uint8Array) {
      await new Promise<void>((resolve, reject) =>
        ctx.io.stdout.write(winner.value as Uint8Array, (error) => (error ? reject(error) : resolve())),
      );
    } else if (typeof winner.value === 'string') {
      await write(ctx.io.stdout, `${winner.value}\n`);
    } else {
      await write(ctx.io.stdout, `${JSON.stringify(winner.value, null, 2)}\n`);
    }
    return 0;
  },
};

export const del: Command = {
  name: 'del',
  args: 'VAULT KEY',
  summary: 'delete a key (exit code 3 if it has no value)',
  examples: ['e2ekv del notes db/password'],
  options: { ...serverOption, ack: { type: 'string' } },
  optionHelp: [ackHelp, serverHelp],
  positionals: { min: 2, max: 2 },
  async run(ctx) {
    const [vaultName, key] = ctx.positionals as [string, string];
    const ack = ackOf(ctx);
    await withVaultSession(ctx.io, ctx.home, vaultName, serversOf(ctx), async (session) => {
      const vault = await openSessionVault(session, true);
      if ((await vault.get(key)) === undefined) throw notFound(key, vaultName);
      await vault.delete(key, { ack });
    });
    await print(ctx, { vault: vaultName, key, deleted: true, ack }, () => '');
    return 0;
  },
};

export const ls: Command = {
  name: 'ls',
  args: 'VAULT',
  summary: 'list the keys that have a value, sorted',
  examples: ['e2ekv ls notes', 'e2ekv ls notes --prefix db/ --json'],
  options: { ...serverOption, read: { type: 'string' }, prefix: { type: 'string' } },
  optionHelp: [['--prefix P', 'only keys that start with P'], readHelp, serverHelp],
  positionals: { min: 1, max: 1 },
  async run(ctx) {
    const vaultName = ctx.positionals[0]!;
    const read = readOf(ctx);
    const prefix = ctx.values['prefix'];
    const names = await withVaultSession(ctx.io, ctx.home, vaultName, serversOf(ctx), async (session) => {
      const vault = await openSessionVault(session, false);
      return vault.list({ read, ...(typeof prefix === 'string' ? { prefix } : {}) });
    });
    await print(ctx, names, () => names.map((n) => `${n}\n`).join(''));
    return 0;
  },
};

export const sync: Command = {
  name: 'sync',
  args: 'VAULT',
  summary: "pull and verify every device's log from the replicas, and push this device's writes",
  examples: ['e2ekv sync notes', 'e2ekv sync notes --server http://127.0.0.1:7401'],
  options: { ...serverOption },
  optionHelp: [serverHelp],
  positionals: { min: 1, max: 1 },
  async run(ctx) {
    const vaultName = ctx.positionals[0]!;
    const status = await withVaultSession(ctx.io, ctx.home, vaultName, serversOf(ctx), async (session) => {
      const vault = await openSessionVault(session, false);
      await vault.sync();
      return vault.status();
    });
    await print(
      ctx,
      { vault: vaultName, ...status },
      () =>
        `synced ${vaultName}: ${status.keys} keys, ${status.logs.length} device logs, ` +
        `${status.unpushed} of this device's entries not yet acknowledged\n`,
    );
    if (status.unpushed === 0) return 0;
    await write(
      ctx.io.stderr,
      `e2ekv (UNAVAILABLE): ${status.unpushed} of this device's entries are saved here but no replica acknowledged them yet: run e2ekv sync again when a replica answers\n`,
    );
    return 5;
  },
};

export const verify: Command = {
  name: 'verify',
  args: 'VAULT',
  summary: 'audit the replicas: every log consistent with what this device verified, replicas agreeing',
  details: [
    'Asks every replica for the signed, cosigned checkpoint of every log it holds and checks it',
    'against what this device verified; pulls and verifies what is new, pushes what is unsent.',
    'Prints, per replica, whether it answered, and per log its size, how it compares with what this',
    'device verified, and whether the replica cosigned it.',
    'Exit code 4 names what failed: a forged, altered, rolled-back or forked log, a missing',
    'cosignature, or a replica withholding entries. Evidence (signed checkpoints that contradict)',
    'is kept in the local replica and shown by vault info. Exit code 5 when a replica did not answer',
    '(the others are still audited and reported).',
  ],
  examples: ['e2ekv verify notes', 'e2ekv verify notes --json', 'e2ekv verify notes --server http://127.0.0.1:7401'],
  options: { ...serverOption },
  optionHelp: [serverHelp],
  positionals: { min: 1, max: 1 },
  async run(ctx) {
    const vaultName = ctx.positionals[0]!;
    const report = await withVaultSession(ctx.io, ctx.home, vaultName, serversOf(ctx), (session) =>
      auditReplicas(session, vaultName),
    );
    await print(ctx, report, () => auditText(report));
    const first = report.violations[0];
    if (first !== undefined) {
      const more = report.violations.length - 1;
      throw new E2ekvError(
        first.code,
        `${first.message}${more > 0 ? ` (and ${more} more violation(s): see the report)` : ''}`,
        {
          details: {
            violations: report.violations.length,
            ...(first.replica === null ? {} : { replica: first.replica }),
            ...(first.device === null ? {} : { device: first.device }),
          },
        },
      );
    }
    const failed = report.replicas.find((r) => r.error !== null && r.error.code !== 'UNAVAILABLE');
    if (failed?.error) {
      throw new E2ekvError(failed.error.code, failed.error.message, { details: { replica: failed.url } });
    }
    const unreachable = report.replicas.filter((r) => !r.reachable);
    if (unreachable.length > 0) {
      const answered = report.replicas.length - unreachable.length;
      throw new E2ekvError(
        'UNAVAILABLE',
        `${unreachable.length} of ${report.replicas.length} replicas did not answer (${unreachable.map((r) => r.url).join(', ')}), so they were not audited` +
          (answered > 0 ? `; the ${answered} that answered pass` : '') +
          ': check that they run and are reachable, then run verify again',
      );
    }
    return 0;
  },
};

/** How a replica's checkpoint of a log compares with what this device verified. */
type LogMatch =
  /** The size this device verified, and the same root. */
  | 'same'
  /** Fewer entries: this device's own entries not yet sent there, or else a rollback. */
  | 'behind'
  /** More entries than this device verified (they arrived since, or failed to verify: see violations). */
  | 'ahead'
  /** None of a log this device verified. */
  | 'missing'
  /** The size this device verified with another root: the device forked its log (evidence kept). */
  | 'conflict'
  /** The replica's checkpoint could not be fetched or did not verify. */
  | 'unverified';

interface LogAudit {
  device: string;
  own: boolean;
  /** Entries in the replica's signed checkpoint; 0 when it serves none of the log. */
  size: number;
  /** Entries of the log this device verified. */
  verified: number;
  match: LogMatch;
  /** Whether the checkpoint carries a valid cosignature by the key the replica presents. */
  cosigned: boolean;
  /** When the replica says it cosigned (POSIX seconds), or null. */
  cosignatureTime: number | null;
}

interface ReplicaAudit {
  url: string;
  reachable: boolean;
  /** The cosigner vkey the replica presents now; null if it did not answer. */
  cosigner: string | null;
  /** The cosigner vkey it presented before, when that differs (a replica's key should not change). */
  previousCosigner: string | null;
  /** What went wrong talking to it, if anything (integrity failures are also violations). */
  error: { code: ErrorCode; message: string } | null;
  logs: LogAudit[];
}

interface Violation {
  replica: string | null;
  device: string | null;
  code: ErrorCode;
  message: string;
}

interface AuditReport {
  vault: string;
  vaultId: string;
  device: string;
  ok: boolean;
  replicas: ReplicaAudit[];
  violations: Violation[];
  /** Evidence recorded by this run (vault info lists all that is kept). */
  evidence: StoredEvidence[];
}

/**
 * The audit behind `verify`: which replicas answer; Vault.verify over those
 * (pull and verify what is new, push, consistency with the pins, replicas
 * agreeing); then every replica's own signed checkpoint of every log, checked
 * against what this device verified, so that a replica that has nothing new
 * still proves what it holds and that it cosigned it.
 */
async function auditReplicas(session: Session, vaultName: string): Promise<AuditReport> {
  const vaultId = session.access.vaultId;
  const vaultKey = fromHex(vaultId);
  const identity = session.keystore.contents.identity;
  const signer = await deviceSigner(identity);
  const violations: Violation[] = [];
  const evidence: StoredEvidence[] = [];
  // One violation per replica and code: Vault.verify names the first failure without the device, and
  // the checkpoint audit finds the same one again.
  const violation = (v: Violation) => {
    const same = (o: Violation) =>
      o.replica === v.replica && o.code === v.code && (o.device === v.device || o.device === null || v.device === null);
    if (!violations.some(same)) violations.push(v);
  };
  const replicas: ReplicaAudit[] = [];
  const transports = new Map<string, ReplicaTransport>();

  await Promise.all(
    session.servers.map(async (url, i) => {
      const transport = new ReplicaTransport({ url, signer });
      const audit: ReplicaAudit = {
        url,
        reachable: false,
        cosigner: null,
        previousCosigner: null,
        error: null,
        logs: [],
      };
      replicas[i] = audit;
      try {
        const info = await transport.info();
        audit.cosigner = formatCosignerVkey(info.cosigner.name, info.cosigner.publicKey);
        await transport.vaultState(vaultId);
        audit.reachable = true;
        transports.set(url, transport);
      } catch (error) {
        audit.reachable = !isE2ekvError(error, 'UNAVAILABLE');
        audit.error = errorOf(error);
        if (isE2ekvError(error) && error.category === 'integrity') {
          violation({ replica: url, device: null, code: error.code, message: error.message });
        }
      }
    }),
  );
  const reachable = [...transports.keys()];
  const report: AuditReport = {
    vault: vaultName,
    vaultId,
    device: session.client.deviceId,
    ok: false,
    replicas,
    violations,
    evidence,
  };
  if (reachable.length === 0) return report;

  const client = await createClient({ identity, servers: reachable, store: session.store });
  const vault = await client.openVault(vaultAccessOf(session.access), { sync: false });
  session.opened.push(vault);
  const before = await vault.auditInfo();
  try {
    await vault.verify();
  } catch (error) {
    if (!isE2ekvError(error) || error.category !== 'integrity') {
      // Not about what a replica served (one stopped answering, refused this device, ...): say so there.
      const url = named(reachable, error instanceof Error ? error.message : '');
      const audit = replicas.find((r) => r.url === url);
      if (audit === undefined || !isE2ekvError(error)) throw error;
      audit.error = errorOf(error);
      if (error.code === 'UNAVAILABLE') audit.reachable = false;
    } else {
      const url = named(reachable, error.message) ?? null;
      const device = typeof error.details['device'] === 'string' ? error.details['device'] : null;
      violation({ replica: url, device, code: error.code, message: error.message });
    }
  }
  const ours = await vault.auditInfo();
  const acked = vault.status().acked;
  const kept = [...ours.evidence];
  // Evidence the sync inside vault.verify() found and kept is new in this run too.
  const noteText = (note: string) => parseNote(note).text;
  const sameRecord = (a: StoredEvidence, b: StoredEvidence) =>
    a.device === b.device && noteText(a.first) === noteText(b.first) && noteText(a.second) === noteText(b.second);
  for (const record of ours.evidence) {
    if (!before.evidence.some((old) => sameRecord(old, record))) evidence.push(record);
  }

  for (const audit of replicas) {
    const transport = transports.get(audit.url);
    if (transport === undefined || !audit.reachable) continue;
    const previous = before.replicas.find((r) => r.url === audit.url)?.vkey;
    if (previous !== undefined && previous !== audit.cosigner) audit.previousCosigner = previous;
    try {
      audit.logs = await auditLogs(transport, vaultKey, session.client.deviceId, ours, acked[audit.url] ?? 0, {
        violation,
        evidence: async (record) => {
          if (kept.some((e) => sameRecord(e, record))) return;
          kept.push(record);
          evidence.push(record);
          await session.store.addEvidence(vaultId, record);
        },
      });
    } catch (error) {
      if (!isE2ekvError(error)) throw error;
      audit.error = errorOf(error);
      if (error.code === 'UNAVAILABLE') audit.reachable = false;
      if (error.category === 'integrity') {
        violation({ replica: audit.url, device: null, code: error.code, message: error.message });
      }
    }
  }
  report.ok = violations.length === 0 && replicas.every((r) => r.reachable && r.error === null);
  return report;
}

/** One replica's signed checkpoint of every log, against this device's verified state. */
async function auditLogs(
  transport: ReplicaTransport,
  vaultId: Uint8Array,
  ownDevice: string,
  ours: VaultAuditInfo,
  ackedByThisReplica: number,
  record: { violation: (v: Violation) => void; evidence: (e: StoredEvidence) => Promise<void> },
): Promise<LogAudit[]> {
  const url = transport.url;
  const { cosigner } = await transport.info();
  const state = await transport.vaultState(vaultId);
  const audits: LogAudit[] = [];
  for (const remote of state.logs) {
    const mine = ours.logs.find((l) => l.device === remote.device);
    const own = remote.device === ownDevice;
    const verified = mine?.verified ?? 0;
    const who = own ? 'this device' : `device ${remote.device}`;
    const audit: LogAudit = {
      device: remote.device,
      own,
      size: remote.size,
      verified,
      match: 'unverified',
      cosigned: false,
      cosignatureTime: null,
    };
    audits.push(audit);
    const fail = (code: ErrorCode, message: string) =>
      record.violation({ replica: url, device: remote.device, code, message });
    // A failed request is about the replica (reported with it); a note that does not verify is a violation.
    const note = (await transport.entries(vaultId, remote.device, remote.size, remote.size)).checkpoint;
    let checked;
    try {
      checked = await verifyDeviceCheckpoint(note, vaultId, fromHex(remote.device), [cosigner]);
    } catch (error) {
      if (!isE2ekvError(error)) throw error;
      // Signature verdicts keep their code; a note that does not even parse is a broken answer.
      fail(
        error.category === 'integrity' ? error.code : 'INTEGRITY',
        `replica ${url} serves a checkpoint of the log of ${who} that does not verify: ${error.message}`,
      );
      continue;
    }
    // Evidence keeps only the lines verified here, so that anyone checking it under the same keys agrees.
    const verifiedNote = keepLines(note, vaultId, fromHex(remote.device), cosigner);
    const cosignature = checked.cosignatures.find(
      (c) => c.name === cosigner.name && bytesEqual(c.publicKey, cosigner.publicKey),
    );
    audit.cosigned = cosignature !== undefined;
    if (cosignature !== undefined) {
      audit.cosignatureTime =
        cosignature.timestamp <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(cosignature.timestamp) : null;
    } else {
      fail(
        'UNKNOWN_KEY',
        `replica ${url} serves a checkpoint of the log of ${who} without its own cosignature (${cosigner.name}): it does not vouch for what it serves`,
      );
    }
    const size = Number(checked.checkpoint.size);
    const root = toBase64(checked.checkpoint.root);
    audit.size = size;
    if (mine === undefined || verified === 0 || size > verified) {
      audit.match = size === verified ? 'same' : 'ahead';
    } else if (size === verified) {
      audit.match = root === mine.root ? 'same' : 'conflict';
      if (audit.match === 'conflict') {
        const kept = mine.checkpoint?.size === size ? mine.checkpoint : undefined;
        fail(
          'EQUIVOCATION',
          `replica ${url} serves a checkpoint of the log of ${who} signed by its key, of the size this device verified (${size}) with another root: the device forked its log${kept === undefined ? '' : '. The two signed checkpoints are kept as evidence'}; stop trusting that device`,
        );
        if (kept !== undefined) {
          await record.evidence({ replica: url, device: remote.device, first: kept.note, second: verifiedNote });
        }
      }
    } else {
      audit.match = 'behind';
      if (!own || size < ackedByThisReplica) {
        fail(
          'ROLLBACK',
          own
            ? `replica ${url} serves ${size} entries of this device's log, fewer than the ${ackedByThisReplica} it acknowledged: it lost or hides entries`
            : `replica ${url} serves ${size} entries of the log of ${who}, fewer than the ${verified} this device verified: it lost or hides entries (or never received them: the device that wrote them should run sync)`,
        );
        if (mine.checkpoint !== undefined && mine.checkpoint.size > size) {
          await record.evidence({
            replica: url,
            device: remote.device,
            first: mine.checkpoint.note,
            second: verifiedNote,
          });
        }
      }
    }
  }
  for (const mine of ours.logs) {
    if (mine.verified === 0 || state.logs.some((l) => l.device === mine.device)) continue;
    const own = mine.device === ownDevice;
    audits.push({
      device: mine.device,
      own,
      size: 0,
      verified: mine.verified,
      match: 'missing',
      cosigned: false,
      cosignatureTime: null,
    });
    if (!own || ackedByThisReplica > 0) {
      record.violation({
        replica: url,
        device: mine.device,
        code: 'ROLLBACK',
        message: `replica ${url} serves none of the ${own ? ackedByThisReplica : mine.verified} entries of the log of ${own ? 'this device' : `device ${mine.device}`} ${own ? 'it acknowledged' : 'this device verified'}: it lost or hides them`,
      });
    }
  }
  return audits;
}

/** The note with only the device's signature line and the cosigner's. */
function keepLines(note: string, vaultId: Uint8Array, device: Uint8Array, cosigner: Cosigner): string {
  const origin = logOrigin(vaultId, device);
  const keep = new Set([
    `${origin} ${noteKeyId(origin, NOTE_SIG_ED25519, device)}`,
    `${cosigner.name} ${cosignerKeyId(cosigner.name, cosigner.publicKey)}`,
  ]);
  const { text, signatures } = parseNote(note);
  return formatNote({ text, signatures: signatures.filter((s) => keep.has(`${s.name} ${s.keyId}`)) });
}

/** The replica a message names (the longest URL it contains: one may be a prefix of another). */
function named(urls: readonly string[], message: string): string | undefined {
  return urls.filter((u) => message.includes(u)).sort((x, y) => y.length - x.length)[0];
}

function errorOf(error: unknown): { code: ErrorCode; message: string } {
  return isE2ekvError(error)
    ? { code: error.code, message: error.message }
    : { code: 'INTERNAL', message: error instanceof Error ? error.message : String(error) };
}

const MATCH_TEXT: Record<LogMatch, string> = {
  same: 'matches what this device verified',
  behind: 'behind what this device verified',
  ahead: 'ahead of what this device verified (not verified here yet)',
  missing: 'MISSING: this device verified entries of it',
  conflict: 'CONFLICTS with what this device verified',
  unverified: 'checkpoint DOES NOT VERIFY',
};

function auditText(report: AuditReport): string {
  const lines = [`verify ${report.vault} (${report.vaultId})`];
  for (const r of report.replicas) {
    if (!r.reachable) {
      lines.push(`replica ${r.url}: DID NOT ANSWER${r.error === null ? '' : ` (${r.error.message})`}`);
      continue;
    }
    lines.push(`replica ${r.url}: answered, cosigner ${r.cosigner ?? 'unknown'}`);
    if (r.previousCosigner !== null) {
      lines.push(`  note: its cosigner key changed since last seen (was ${r.previousCosigner})`);
    }
    if (r.error !== null) lines.push(`  error: ${r.error.code}: ${r.error.message}`);
    if (r.logs.length === 0 && r.error === null) lines.push('  no logs yet');
    for (const l of r.logs) {
      const who = l.own ? `${l.device.slice(0, 16)}… (this device)` : `${l.device.slice(0, 16)}…`;
      const cosigned = l.cosigned
        ? `cosigned${l.cosignatureTime === null ? '' : ` ${timeText(l.cosignatureTime)}`}`
        : 'NOT cosigned';
      lines.push(`  ${who}  ${l.size} entries (verified here: ${l.verified}), ${MATCH_TEXT[l.match]}, ${cosigned}`);
    }
  }
  if (report.violations.length > 0) {
    lines.push(`${report.violations.length} violation(s):`);
    for (const v of report.violations) lines.push(`  ${v.code}: ${v.message}`);
    if (report.evidence.length > 0) {
      lines.push(`${report.evidence.length} new evidence record(s) kept: e2ekv vault info ${report.vault} --json`);
    }
  } else if (report.ok) {
    lines.push('ok: every replica answered and serves, cosigned, what this device verified');
  }
  return lines.join('\n') + '\n';
}
