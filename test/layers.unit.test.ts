/**
 * The layers of src/ (and loader/) import only downward, and no two files
 * import each other, directly or through others. Root-free: reads the sources.
 */
import { expect } from 'chai';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { packageRoot } from '../src/kernel/bpfobject.js';

const ROOT = packageRoot();

/** Lowest first: a file may import its own layer or any below it. */
const LAYERS: [string, number][] = [
  ['src/kernel/', 0], ['loader/', 1], ['src/tracker/', 2], ['src/inspect/', 3], ['src/supervise/', 4],
  ['src/index.ts', 5], ['src/daemon/', 6], ['src/cli/', 7],
];

function layerOf(file: string): number {
  const hit = LAYERS.find(([prefix]) => file === prefix || file.startsWith(prefix));
  if (!hit) throw new Error(`${file} is in no layer: add it to LAYERS`);
  return hit[1];
}

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir)).flatMap((n) => {
    const rel = `${dir}/${n}`;
    if (statSync(join(ROOT, rel)).isDirectory()) return sources(rel);
    return n.endsWith('.ts') ? [rel] : [];
  });
}

/** Relative imports of a file, as repository paths of .ts files. */
function importsOf(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"`;]*?from\s+'(\.{1,2}\/[^']+)'/g)) {
    out.push(relative(ROOT, resolve(dirname(join(ROOT, file)), m[1])).replace(/\.js$/, '.ts'));
  }
  return out;
}

describe('layers (unit)', () => {
  const files = [...sources('src'), ...sources('loader')];
  const graph = new Map(files.map((f) => [f, importsOf(f)]));

  it('every source file is in a layer and imports only files that exist', () => {
    for (const [f, deps] of graph) {
      layerOf(f);
      for (const d of deps) expect(graph.has(d), `${f} imports ${d}`).to.equal(true);
    }
  });

  it('no import runs upward', () => {
    const upward: string[] = [];
    for (const [f, deps] of graph) {
      for (const d of deps) if (layerOf(d) > layerOf(f)) upward.push(`${f} -> ${d}`);
    }
    expect(upward).to.deep.equal([]);
  });

  it('no two files import each other, directly or through others', () => {
    const state = new Map<string, 'open' | 'done'>();
    const cycles: string[] = [];
    const visit = (f: string, path: string[]): void => {
      if (state.get(f) === 'done') return;
      if (state.get(f) === 'open') { cycles.push([...path.slice(path.indexOf(f)), f].join(' -> ')); return; }
      state.set(f, 'open');
      for (const d of graph.get(f) ?? []) visit(d, [...path, f]);
      state.set(f, 'done');
    };
    for (const f of graph.keys()) visit(f, []);
    expect(cycles).to.deep.equal([]);
  });
});
