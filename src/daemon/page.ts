/** The dashboard's one HTML page: styles here, the app in /app.js (see client.ts), no external resources. */
export const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>epolltrack</title>
<link rel="icon" href="data:,">
<style>
:root {
  --bg: #f4f5f7; --card: #fff; --line: #dfe3ea; --soft: #eef0f4; --ink: #1c2230; --muted: #5d6678; --faint: #8a92a3;
  --accent: #2f6fde; --warn: #b7791f; --bad: #c53030; --good: #2f855a;
  --mono: ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", Menlo, Consolas, monospace;
}
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; background: var(--bg); color: var(--ink); }
header { position: sticky; top: 0; z-index: 5; display: flex; align-items: center; gap: 18px; padding: 10px 20px; background: #1c2230; color: #e8ebf2; }
header .brand { font-weight: 700; font-size: 17px; letter-spacing: .2px; color: #fff; }
header .totals { display: flex; gap: 16px; font-variant-numeric: tabular-nums; }
header .totals b { color: #fff; font-size: 15px; }
header .spacer { flex: 1; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; background: #33405a; color: #dfe6f5; }
.live { display: inline-flex; align-items: center; gap: 6px; font-size: 13px; }
.live i { width: 9px; height: 9px; border-radius: 50%; background: #48bb78; box-shadow: 0 0 0 3px rgba(72,187,120,.25); }
.live.off i { background: #e53e3e; box-shadow: 0 0 0 3px rgba(229,62,62,.25); }
main { display: grid; grid-template-columns: minmax(0, 1fr) clamp(350px, 28vw, 400px); gap: 16px; padding: 14px 20px 30px; align-items: start; }
@media (max-width: 1150px) {
  main { grid-template-columns: minmax(0, 1fr); }
  /* narrow screens: the panels above the list, side by side, health first */
  aside { position: static !important; order: -1; flex-direction: row; flex-wrap: wrap; max-height: none; }
  aside .panel { flex: 1 1 320px; }
}
aside { position: sticky; top: 58px; display: flex; flex-direction: column; gap: 14px; max-height: calc(100vh - 72px); overflow: auto; }
.panel { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 11px 14px 12px; }
.panel h2 { margin: 0 0 8px; font-size: 13px; text-transform: uppercase; letter-spacing: .6px; color: var(--muted); display: flex; justify-content: space-between; }
.panel h2 span { text-transform: none; letter-spacing: 0; font-weight: 400; }
.filters { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; margin-bottom: 12px; }
.filters label { display: flex; align-items: center; gap: 6px; color: var(--muted); font-size: 13px; }
.filters input { border: 1px solid #c8ceda; border-radius: 6px; padding: 6px 9px; font: inherit; background: #fff; width: 170px; }
.filters input#filter-pid { width: 100px; }
.filters input:focus { outline: 2px solid rgba(47,111,222,.35); border-color: var(--accent); }
.filters button { border: 1px solid #c8ceda; background: #fff; border-radius: 6px; padding: 5px 10px; font: inherit; cursor: pointer; }
.filters .count { margin-left: auto; color: var(--muted); font-size: 13px; }
.proc { background: var(--card); border: 1px solid var(--line); border-radius: 8px; margin-bottom: 10px; overflow: hidden; }
.proc-head { display: flex; gap: 10px; align-items: baseline; padding: 7px 12px; background: #fafbfc; border-bottom: 1px solid var(--soft); cursor: pointer; user-select: none; }
.proc.collapsed .proc-head { border-bottom: 0; }
.proc-head .caret { color: var(--faint); width: 10px; }
.proc-head .comm { font-weight: 650; }
.proc-head .pid { color: var(--muted); font-variant-numeric: tabular-nums; }
.proc-head .cmdline { flex: 1; min-width: 0; color: var(--faint); font: 12px var(--mono); overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.proc-head .cg { font: 11.5px var(--mono); color: var(--muted); background: var(--soft); border-radius: 4px; padding: 0 6px; max-width: 300px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.proc-head .cg.ctr { background: #e6f0ff; color: #1f4fa3; }
.proc-head .n { color: var(--muted); font-size: 12.5px; white-space: nowrap; font-variant-numeric: tabular-nums; }
.inst { padding: 4px 12px 8px; }
.inst + .inst { border-top: 1px dashed var(--soft); }
.inst-head { font-size: 12px; color: var(--muted); margin: 3px 0 2px; }
.inst-head b { color: var(--ink); font-weight: 600; }
table { width: 100%; border-collapse: collapse; font-size: 13px; }
th { text-align: left; font-weight: 600; color: var(--muted); font-size: 11.5px; border-bottom: 1px solid var(--soft); padding: 3px 6px; white-space: nowrap; }
td { padding: 3px 6px; border-bottom: 1px solid #f3f4f7; vertical-align: top; }
tr:last-child td { border-bottom: 0; }
.mono, td.num { font-family: var(--mono); font-size: 12px; }
td.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
td.ev { font-family: var(--mono); font-size: 11.5px; color: #334; }
td.tgt { overflow-wrap: anywhere; }
.other { color: var(--faint); font-size: 12px; }
.kind { display: inline-block; min-width: 64px; text-align: center; border-radius: 4px; padding: 0 5px; font-size: 10.5px; font-weight: 700; margin-right: 7px; text-transform: uppercase; letter-spacing: .3px; background: #edf2f7; color: #4a5568; }
.k-tcp, .k-tcp6 { background: #e3f2ff; color: #1a56a8; }
.k-udp, .k-udp6 { background: #e6fffa; color: #22756b; }
.k-unix { background: #f3e8ff; color: #6b3fa0; }
.k-pipe { background: #fff4e0; color: #9a5b00; }
.k-eventfd, .k-timerfd, .k-signalfd { background: #fdeaf2; color: #a3245e; }
.k-epoll { background: #fff0f0; color: #b42b2b; }
.k-tty, .k-file, .k-device { background: #eef2e6; color: #4c6a1e; }
.k-gone { background: #eee; color: #999; }
tr.fresh td { animation: flash 3.5s ease-out; }
@keyframes flash { 0% { background: #ffe98a; } 100% { background: transparent; } }
.empty { color: var(--muted); padding: 30px; text-align: center; background: var(--card); border: 1px dashed var(--line); border-radius: 8px; }
.big { display: flex; gap: 18px; align-items: baseline; margin: 2px 0 4px; }
.big div { display: flex; flex-direction: column; }
.big small { color: var(--muted); font-size: 11.5px; }
.big b { font-size: 20px; font-variant-numeric: tabular-nums; }
.big .bpf b { color: var(--accent); }
.big .fdi b { color: #d9822b; }
.big .x b { color: var(--good); }
.sub { color: var(--muted); font-size: 12px; }
.chart { display: block; margin-top: 6px; width: 100%; height: auto; }
.legend { display: flex; gap: 12px; font-size: 11.5px; color: var(--muted); }
.legend i { display: inline-block; width: 10px; height: 3px; vertical-align: middle; margin-right: 4px; }
.swaps { list-style: none; margin: 0; padding: 0; }
.swaps li { padding: 4px 0; border-bottom: 1px solid #f3f4f7; font-size: 12.5px; }
.swaps li:last-child { border-bottom: 0; }
.swaps .l1 { display: flex; gap: 10px; align-items: baseline; }
.swaps .l1 .num { font: 11.5px var(--mono); color: var(--muted); }
.swaps .l1 .res { margin-left: auto; color: var(--muted); white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.swaps li.moved .res { color: var(--good); }
.swaps li.unmoved .res { color: var(--warn); }
.swaps li.failed .res { color: var(--bad); font-weight: 600; }
.swaps li.kernel .res { color: var(--muted); }
#swaps h2 { flex-wrap: wrap; gap: 4px; }
#swaps h2 .totals b { font-weight: 600; color: var(--ink); }
#swaps h2 .totals b.t-moved { color: var(--good); }
#swaps h2 .totals b.t-unmoved { color: var(--warn); }
#swaps h2 .totals b.t-failed { color: var(--bad); }
.swaps .l1 .who { white-space: nowrap; }
.swaps .l2 { color: #334; overflow-wrap: anywhere; }
.swaps .l2 .err { color: var(--bad); font-size: 12px; }
.meter { height: 6px; background: var(--soft); border-radius: 3px; overflow: hidden; margin: 2px 0 6px; }
.meter { display: flex; }
.meter i { display: block; height: 100%; background: var(--accent); }
.meter i.stale { background: var(--warn); opacity: .6; }
.cost { color: var(--ink); }
.spark { flex: none; align-self: center; }
.notice { margin: 10px 20px 0; padding: 7px 12px; background: #fff8e1; border: 1px solid #f0d58a; border-radius: 6px; font-size: 13px; }
.notice button { margin-left: 8px; border: 1px solid #d8c27a; background: #fff; border-radius: 5px; font: inherit; font-size: 12px; cursor: pointer; }
.search-error { color: var(--bad); font-size: 13px; margin: -6px 0 10px; }
.filters select { border: 1px solid #c8ceda; border-radius: 6px; padding: 5px 7px; font: inherit; background: #fff; }
.filters input#filter-q { width: 260px; }
header a.api { color: #c9d3e6; font-size: 13px; text-decoration: none; border-bottom: 1px dotted #8a96ad; }
.kv { display: grid; grid-template-columns: auto 1fr; gap: 1px 12px; font-size: 12.5px; }
.kv span:nth-child(odd) { color: var(--muted); }
.kv .warn { color: var(--bad); font-weight: 600; }
.kv .caution { color: var(--warn); font-weight: 600; }
code { font-family: var(--mono); font-size: 12px; background: var(--soft); padding: 0 4px; border-radius: 3px; }
</style>
</head>
<body>
<div id="app"><p class="empty">Loading the dashboard…</p></div>
<noscript><p class="empty">The dashboard needs JavaScript; the same data is at <a href="/api/snapshot">/api/snapshot</a>.</p></noscript>
<script type="module" src="/app.js"></script>
</body>
</html>
`;
