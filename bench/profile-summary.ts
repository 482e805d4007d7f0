/**
 * Summarizes V8 CPU profiles (`node --cpu-prof`, e.g. e2ekv-server processes
 * started by `npm run bench -- --cpu-prof DIR`): self time by function and by
 * file, and inclusive time of the functions that matter, as Markdown.
 *
 *   npx tsx bench/profile-summary.ts DIR/*.cpuprofile [--top 25] [--match server/src] [--under 'openVault sdk/src'] [--last-ms 10000]
 *
 * Several profiles are summed. Percentages are of all samples, idle included;
 * "busy" excludes the (idle) and (program) pseudo-nodes.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const args = process.argv.slice(2);
function flag(name: string): string | undefined {
  const i = args.indexOf(name);
  if (i === -1) return undefined;
  const value = args[i + 1];
  args.splice(i, 2);
  return value;
}
const top = Number(flag('--top') ?? 25);
const match = flag('--match');
/** Only samples with a frame whose "name file:line" contains this on their stack (e.g. "openVault sdk/src/client.ts"). */
const under = flag('--under');
/** Only the samples of the last N ms of each profile (a phase at the end of a run). */
const lastMs = flag('--last-ms');
const files = args;
if (files.length === 0) {
  console.error('usage: profile-summary.ts FILE.cpuprofile... [--top N] [--match SUBSTRING]');
  process.exit(2);
}

const cwd = process.cwd();
function shortUrl(url: string): string {
  if (url === '') return '(native)';
  const file = url.startsWith('file://') ? new URL(url).pathname : url;
  const nm = file.lastIndexOf('node_modules/');
  if (nm !== -1) return file.slice(nm + 'node_modules/'.length);
  return path.relative(cwd, file) || file;
}
function frameName(f: CallFrame): string {
  return `${f.functionName || '(anonymous)'} ${shortUrl(f.url)}${f.url === '' ? '' : `:${f.lineNumber + 1}`}`;
}

const self = new Map<string, number>();
const selfByFile = new Map<string, number>();
const inclusive = new Map<string, number>();
let totalUs = 0;
let idleUs = 0;
for (const file of files) {
  const profile = JSON.parse(await readFile(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const timePerNode = new Map<number, number>();
  const from = lastMs === undefined ? -Infinity : profile.endTime - Number(lastMs) * 1000;
  let at = profile.startTime;
  profile.samples.forEach((id, i) => {
    at += profile.timeDeltas[i] ?? 0;
    if (at < from) return;
    timePerNode.set(id, (timePerNode.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  const stackHas = (id: number, text: string) => {
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      if (frameName(byId.get(at)!.callFrame).includes(text)) return true;
    }
    return false;
  };
  for (const [id, us] of timePerNode) {
    if (under !== undefined && !stackHas(id, under)) continue;
    const node = byId.get(id)!;
    totalUs += us;
    const name = node.callFrame.functionName;
    if (name === '(idle)' || name === '(program)' || name === '(garbage collector)') {
      if (name !== '(garbage collector)') idleUs += us;
    }
    const key = frameName(node.callFrame);
    self.set(key, (self.get(key) ?? 0) + us);
    const fileKey = name.startsWith('(') ? name : shortUrl(node.callFrame.url);
    selfByFile.set(fileKey, (selfByFile.get(fileKey) ?? 0) + us);
    // Inclusive: once per distinct frame on the stack.
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const k = frameName(byId.get(at)!.callFrame);
      if (seen.has(k)) continue;
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + us);
    }
  }
}

const busyUs = totalUs - idleUs;
const share = (us: number) => `${((us / totalUs) * 100).toFixed(1)}%`;
const busyShare = (us: number) => `${((us / busyUs) * 100).toFixed(1)}%`;
const ms = (us: number) => (us / 1000).toFixed(0);
const table = (title: string, map: Map<string, number>, filterName?: (k: string) => boolean) => {
  console.log(`\n### ${title}\n\n| | ms | of all | of busy |\n|---|---:|---:|---:|`);
  const rows = [...map.entries()].filter(([k]) => filterName?.(k) ?? true).sort((a, b) => b[1] - a[1]);
  for (const [k, us] of rows.slice(0, top)) console.log(`| ${k} | ${ms(us)} | ${share(us)} | ${busyShare(us)} |`);
};
console.log(
  `Profiles: ${files.map((f) => path.basename(f)).join(', ')}${under === undefined ? '' : `, samples under "${under}"`}; ` +
    `${ms(totalUs)} ms sampled, ${ms(busyUs)} ms busy ` +
    `(${share(busyUs)}; the rest idle or outside JS).`,
);
table('Self time by file', selfByFile);
table('Self time by function', self);
table(
  `Inclusive time${match === undefined ? '' : ` (functions in ${match})`}`,
  inclusive,
  (k) => !k.startsWith('(') && (match === undefined || k.includes(match)),
);
