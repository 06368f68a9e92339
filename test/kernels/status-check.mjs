// Load the tracker with mode 'auto' on a pin dir of its own, print status(), unload.
// Run from the project root after `npm run build`: node test/kernels/status-check.mjs
import { load, status, unload } from '../../dist/loader/load.js';

const pinDir = `/sys/fs/bpf/epolltrack-statuscheck-${process.pid}`;
let rc = 0;
try {
  const r = load({ mode: 'auto', pinDir });
  const s = status({ pinDir });
  console.log(`status: mode=${s.mode} loaded=${s.loaded}`);
  console.log(`status: hooks=${(s.hooks ?? []).map((h) => `${h.prog}(${h.target})`).join(' ')}`);
  for (const [m, why] of Object.entries(s.notTaken ?? {})) console.log(`status: not taken ${m}: ${why}`);
  for (const [m, a] of Object.entries(s.modes)) console.log(`status: mode ${m}: ${a}`);
  console.log(`status: seed=${JSON.stringify(r.seed)}`);
  if (process.env.EPOLLTRACK_EXPECT_MODE && s.mode !== process.env.EPOLLTRACK_EXPECT_MODE) {
    console.log(`status: FAIL expected mode ${process.env.EPOLLTRACK_EXPECT_MODE}, got ${s.mode}`);
    rc = 1;
  }
} catch (err) {
  console.log(`status: FAIL ${err?.stack ?? err}`);
  rc = 1;
} finally {
  try { unload({ pinDir }); } catch (err) { console.log(`status: unload failed: ${err}`); rc = 1; }
}
process.exit(rc);
