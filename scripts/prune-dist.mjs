#!/usr/bin/env node
// Before `npm pack`: remove compiled files in dist/ whose TypeScript source is gone
// (tsc never deletes them), so that the package ships no stale module and every
// source map names a source that is shipped.
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const dist = join(root, 'dist');
let removed = 0;
function walk(dir) {
  if (!existsSync(dir)) return;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) { walk(p); continue; }
    const m = /^(.*)\.(js|js\.map|d\.ts)$/.exec(relative(dist, p));
    if (m && !existsSync(join(root, `${m[1]}.ts`))) { rmSync(p); removed++; }
  }
}
walk(dist);
if (removed) process.stderr.write(`prune-dist: removed ${removed} stale file(s) from dist/\n`);
