// Writes build/epolltrack.1 from the CLI's command table (src/cli/spec.ts) after tsc.
// The date is SOURCE_DATE_EPOCH's when set (reproducible builds), else today's.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderMan } from '../dist/src/cli/help.js';
import { DEFAULT_PIN_DIR } from '../dist/src/kernel/names.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const epoch = process.env.SOURCE_DATE_EPOCH ? Number(process.env.SOURCE_DATE_EPOCH) * 1000 : Date.now();
const date = new Date(epoch).toISOString().slice(0, 10);
mkdirSync(join(root, 'build'), { recursive: true });
writeFileSync(join(root, 'build', 'epolltrack.1'), renderMan(version, date, DEFAULT_PIN_DIR));
