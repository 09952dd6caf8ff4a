// Sends while a background migration runs: the send p99 with the search
// index backfill walking a store of about a million records, against the
// same load with nothing in the background, on the same data.
//
//   node benches/peer/migration.mjs [--fill-seconds 60] [--seconds 15] [--duty 10,25,100]
//                                   [--conversations 64] [--inflight 16] [--clients 4]
//                                   [--utalk PATH]
//
// 1. Fills a new data directory through the server itself: the stock
//    socket.io-client load for `--fill-seconds` (about 17,000 messages a
//    second on two cores: 60 s gives about a million records).
// 2. Baseline: starts the server again on it (the index is current) and
//    measures the load for `--seconds`.
// 3. For each `--duty` (search.backfill_duty_percent): removes the
//    search index, starts the server (it begins the backfill at once) and
//    measures the same load while the backfill runs, reading its progress
//    from GET /api/v1/admin/migrations before and after.
//
// It prints a Markdown table, then the figures as JSON. Everything stops by itself.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { UTALK_BENCH_ENV, percentile, startServer, startUtalk, stopServer, worker } from "./procs.mjs";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const cfg = {
  fillSeconds: Number(args["fill-seconds"] ?? 60),
  seconds: Number(args.seconds ?? 15),
  duties: String(args.duty ?? "10,25,100").split(",").map(Number),
  conversations: Number(args.conversations ?? 64),
  inflight: Number(args.inflight ?? 16),
  clients: Number(args.clients ?? 4),
  utalk: args.utalk ?? join(process.env.CARGO_TARGET_DIR ?? join(process.env.HOME, ".cache/utalk/target"), "release/utalk"),
};
const say = (m) => process.stderr.write(`migration: ${m}\n`);
const ADMIN = { email: "bench-admin@example.com", password: "a-long-bench-password" };

// The load of compare.mjs for `seconds`: acked msg/s and the ack latencies.
async function load(url, token, conversations, seconds) {
  const shares = Array.from({ length: cfg.clients }, (_, i) => conversations.filter((_, j) => j % cfg.clients === i));
  const workers = shares.map((share) => worker({ url, token, conversations: share, inflight: cfg.inflight, seconds, textBytes: 32 }));
  await Promise.all(workers.map((w) => w.next()));
  const results = workers.map((w) => w.next());
  for (const { w } of workers) w.send("go");
  const done = (await Promise.all(results)).map((m) => m.done);
  const acked = done.reduce((a, d) => a + d.acked, 0);
  const elapsed = Math.max(...done.map((d) => d.elapsed));
  const latencies = done.flatMap((d) => d.latencies).sort((a, b) => a - b);
  return {
    acked,
    ackedPerSec: Math.round(acked / elapsed),
    p50Ms: Number(percentile(latencies, 50).toFixed(2)),
    p99Ms: Number(percentile(latencies, 99).toFixed(2)),
    maxMs: Number((latencies.at(-1) ?? NaN).toFixed(2)),
    errors: done.reduce((a, d) => a + d.errors, 0),
  };
}

async function login(url, who) {
  const r = await fetch(`${url}/api/v1/auth/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(who),
  });
  if (!r.ok) throw new Error(`login ${who.email}: ${r.status}`);
  return (await r.json()).accessToken;
}

async function backfill(url, admin) {
  const r = await fetch(`${url}/api/v1/admin/migrations`, { headers: { authorization: `Bearer ${admin}` } }).then((r) => r.json());
  return r.items.find((m) => m.name === "search_index");
}

async function start(data, env) {
  const server = await startServer(cfg.utalk, ["serve", "--listen", "127.0.0.1:0", "--data-dir", data], { ...UTALK_BENCH_ENV, ...env });
  const token = await login(server.url, { email: "bench@example.com", password: "a-long-bench-password" });
  const admin = await login(server.url, ADMIN);
  return { server, token, admin };
}

const dir = mkdtempSync(join(tmpdir(), "utalk-migration-bench-"));
const data = join(dir, "data");
const rows = [];
let records = 0;
try {
  // 1. Fill.
  const first = await startUtalk(cfg.utalk, dir);
  execFileSync(cfg.utalk, ["user", "add", "--data-dir", data, "--email", ADMIN.email, "--role", "admin", "--password-stdin"], {
    input: `${ADMIN.password}\n`,
    env: { ...process.env, ...UTALK_BENCH_ENV },
  });
  const conversations = [];
  for (let i = 0; i < cfg.conversations; i++) {
    const c = await fetch(`${first.server.url}/api/v1/conversations`, { method: "POST", headers: first.headers, body: JSON.stringify({ channel: "api" }) });
    conversations.push((await c.json()).id);
  }
  say(`filling the store for ${cfg.fillSeconds} s`);
  const fill = await load(first.server.url, first.token, conversations, cfg.fillSeconds);
  records = fill.acked + cfg.conversations;
  say(`${fill.acked} messages stored`);
  await stopServer(first.server.child);

  // 2. Baseline: nothing in the background.
  {
    const { server, token, admin } = await start(data, {});
    const before = await backfill(server.url, admin);
    say(`baseline: search_index ${before.state}; sending for ${cfg.seconds} s`);
    rows.push({ case: "nothing in the background", ...(await load(server.url, token, conversations, cfg.seconds)), backfill: before.state });
    await stopServer(server.child);
  }

  // 3. The same load while the backfill walks the store.
  for (const duty of cfg.duties) {
    rmSync(join(data, "search"), { recursive: true, force: true });
    const { server, token, admin } = await start(data, { UTALK_SEARCH__BACKFILL_DUTY_PERCENT: String(duty) });
    const before = await backfill(server.url, admin);
    say(`duty ${duty}%: search_index ${before.state} at ${before.processed}; sending for ${cfg.seconds} s`);
    const r = await load(server.url, token, conversations, cfg.seconds);
    const after = await backfill(server.url, admin);
    say(`duty ${duty}%: search_index ${after.state} at ${after.processed}`);
    rows.push({
      case: `search index backfill at duty ${duty}%`,
      ...r,
      backfill: `${after.state}, ${before.processed} → ${after.processed} records`,
      backfillPerSec: Math.round((after.processed - before.processed) / cfg.seconds),
    });
    await stopServer(server.child);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

console.log(
  `\n${records} records in the store (${cfg.conversations} conversations), ${cfg.conversations} × ${cfg.inflight} sends in flight, ${cfg.seconds} s each, ${cfg.clients} client processes\n`,
);
console.log("| | acked msg/s | p50 ack ms | p99 ack ms | max ack ms | errors | backfill during the window |");
console.log("|---|---|---|---|---|---|---|");
for (const r of rows) {
  console.log(`| ${r.case} | ${r.ackedPerSec} | ${r.p50Ms} | ${r.p99Ms} | ${r.maxMs} | ${r.errors} | ${r.backfill} |`);
}
console.log(JSON.stringify({ config: cfg, records, results: rows }));
