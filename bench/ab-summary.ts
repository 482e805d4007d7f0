/**
 * Before/after table of an optimization from bench/compare.ts results files:
 * DIR holds before-N.json and after-N.json (runs alternated, before first),
 * and the table shows the chosen figures of every pair and their medians. It
 * is written to DIR/summary.md and printed.
 *
 *   npx tsx bench/ab-summary.ts bench/results/ab/auth-native-body-hash \
 *     'load: server CPU µs per entry' 'load: entries/s (raw appends of 1,024 entries, two vaults at a time)'
 */
import { readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { CompareResults } from './compare-report.js';

const [dir, ...names] = process.argv.slice(2);
if (dir === undefined || names.length === 0) {
  console.error('usage: ab-summary.ts DIR FIGURE...');
  process.exit(2);
}

async function figures(file: string): Promise<{ values: Record<string, unknown>; results: CompareResults }> {
  const results = JSON.parse(await readFile(path.join(dir!, file), 'utf8')) as CompareResults;
  const values: Record<string, unknown> = {};
  for (const w of results.workloads) Object.assign(values, w.figures ?? {});
  return { values, results };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

const show = (x: unknown) =>
  typeof x === 'number' ? (Math.abs(x) >= 100 ? Math.round(x).toLocaleString('en-US') : x.toPrecision(3)) : String(x);

const files = (await readdir(dir)).filter((f) => /^(before|after)-\d+\.json$/.test(f)).sort();
const pairs = [...new Set(files.map((f) => Number(/-(\d+)\.json$/.exec(f)![1])))].sort((a, b) => a - b);
const lines = [
  `Before/after from ${pairs.length} alternated pairs of runs in ${dir} (each run: ${(await figures(files[0]!)).results.argv.join(' ')}).`,
  '',
  `| figure | ${pairs.map((p) => `before ${p} / after ${p}`).join(' | ')} | median before | median after | after ÷ before |`,
  `|---|${pairs.map(() => '---:').join('|')}|---:|---:|---:|`,
];
const loaded: { before: string[]; after: string[] } = { before: [], after: [] };
for (const name of names) {
  const before: number[] = [];
  const after: number[] = [];
  const cells: string[] = [];
  for (const p of pairs) {
    const b = (await figures(`before-${p}.json`)).values[name];
    const a = (await figures(`after-${p}.json`)).values[name];
    if (typeof b === 'number') before.push(b);
    if (typeof a === 'number') after.push(a);
    cells.push(`${show(b)} / ${show(a)}`);
  }
  const mb = median(before);
  const ma = median(after);
  lines.push(`| ${name} | ${cells.join(' | ')} | ${show(mb)} | ${show(ma)} | ${(ma / mb).toFixed(3)} |`);
}
for (const p of pairs) {
  loaded.before.push(String((await figures(`before-${p}.json`)).results.machine['loadAverageStart']));
  loaded.after.push(String((await figures(`after-${p}.json`)).results.machine['loadAverageStart']));
}
lines.push(
  '',
  `Load average at the start of each run, before: ${loaded.before.join('; ')}; after: ${loaded.after.join('; ')}.`,
);
const text = lines.join('\n') + '\n';
await writeFile(path.join(dir, 'summary.md'), text);
console.log(text);
