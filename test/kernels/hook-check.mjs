// Check that each hook of a mode really fires: load the tracker in mode
// $EPOLLTRACK_MODE (default auto) for one epctl process only, drive
// add/mod/del/close through it and compare the kernel-side counters and the
// regs map with what must have happened. Prints "hooks: ok ..." or
// "hooks: FAIL ..." lines; exit 1 on a failure.
// Run from the project root after `npm run build`.
import { load, unload, openTracker, status } from '../../dist/src/index.js';
import { Epctl } from '../../dist/test/helpers/epctl.js';

const mode = process.env.EPOLLTRACK_MODE ?? 'auto';
const pinDir = `/sys/fs/bpf/epolltrack-hookcheck-${process.pid}`;
let failed = 0;
const check = (what, ok, detail = '') => {
  if (!ok) failed++;
  console.log(`hooks: ${ok ? 'ok  ' : 'FAIL'} ${what}${detail ? ` (${detail})` : ''}`);
};

const p = await Epctl.spawn();
let tracker;
try {
  load({ mode, pinDir, targetPid: p.pid });
  tracker = await openTracker({ pinDir });
  const st = status({ pinDir });
  console.log(`hooks: mode ${st.mode}: ${(st.hooks ?? []).map((h) => h.target).join(', ')}`);
  const regs = () => status({ pinDir }).maps.regs.entries;
  const k = () => tracker.stats().kernel;
  const base = k();
  const d = (name) => k()[name] - base[name];

  const [ep] = await p.cmd('create');
  const [r1] = await p.cmd('pipe');
  await p.cmd(`add ${ep} ${r1} 1 11`);
  check('ADD seen (epoll_ctl hook)', d('add') === 1n && regs() === 1, `add=${d('add')} regs=${regs()}`);
  const m = tracker.membershipsOf(p.pid, r1);
  check('epoll location from the create/ctl hook, no resync',
    m.length === 1 && m[0].epfd === ep && tracker.lastLookup.source === 'bpf' && !tracker.lastLookup.reason,
    `${tracker.lastLookup.source}${tracker.lastLookup.reason ? `/${tracker.lastLookup.reason}` : ''}`);
  await p.cmd(`mod ${ep} ${r1} 4 12`);
  check('MOD seen', d('mod') === 1n, `mod=${d('mod')}`);
  await p.cmd(`del ${ep} ${r1}`);
  check('DEL seen, entry gone', d('del') === 1n && regs() === 0, `del=${d('del')} regs=${regs()}`);

  // last close of a registered file: eventpoll_release_file -> per-epitem removal
  // (fentry/kprobe modes also count the DEL above as a removal: count from here)
  await p.cmd(`add ${ep} ${r1} 1 13`);
  let rm0 = d('remove');
  await p.cmd(`close ${r1}`);
  check('close of a registered file removes its registration', regs() === 0 && d('remove') - rm0 === 1n,
    `regs=${regs()} removed=${d('remove') - rm0}`);

  // close of the epoll itself: ep_clear_and_put -> removal of each epitem
  const [r2] = await p.cmd('pipe');
  const [e2] = await p.cmd('eventfd');
  await p.cmd(`add ${ep} ${r2} 1 14`);
  await p.cmd(`add ${ep} ${e2} 1 15`);
  check('two more ADDs', regs() === 2, `regs=${regs()}`);
  rm0 = d('remove');
  await p.cmd(`close ${ep}`);
  // tracepoint mode has no hook on the epoll's own teardown (resync covers it)
  if (st.mode !== 'tracepoint') {
    check('close of the epoll removes its registrations', regs() === 0 && d('remove') - rm0 === 2n,
      `regs=${regs()} removed=${d('remove') - rm0}`);
  }
  check('no uncertain epoll_ctl', d('uncertain') === 0n, `uncertain=${d('uncertain')}`);
} catch (err) {
  check('hook check ran', false, err?.stack ?? String(err));
} finally {
  tracker?.close();
  p.kill();
  try { unload({ pinDir }); } catch { /* nothing loaded */ }
}
console.log(`hooks: ${failed ? `${failed} FAILED` : 'all ok'} (${mode} mode)`);
process.exit(failed ? 1 : 0);
