// Sends while a background migration runs: the send p99 with a migration
// walking a large store, against the same load with nothing in the
// background, on the same data.
//
//   node benches/peer/migration.mjs [--migration search_index|contact_links|message_format]
//                                   [--fill-seconds 60] [--records 100000]
//                                   [--seconds 15] [--duty 10,25,100]
//                                   [--conversations 64] [--inflight 16] [--clients 4]
//                                   [--utalk PATH]
//
// 1. Fills a new data directory. `search_index` (the default): through the
//    server itself, the stock socket.io-client load for `--fill-seconds`
//    (about 17,000 messages a second on two cores: 60 s gives about a
//    million records). `message_format`: the same, with the migration job
//    never scheduled, so that every message is stored in format 1.
//    `contact_links`: `--records` conversations written
//    as release 0.1.0 stored them, with no contact
//    (`cargo bench --bench legacy_conversations`, the server stopped).
// 2. Baseline: starts the server again on it (the index is current, the
//    migration job is not scheduled) and measures the load for `--seconds`.
// 3. For each `--duty`, the same load while the migration runs, its
//    progress read from GET /api/v1/admin/migrations before and after.
//    `search_index`: removes the index and starts the server with
//    search.backfill_duty_percent, which begins the backfill at once.
//    `contact_links` and `message_format`: starts the server with
//    jobs.data_migration_duty_percent and runs the data_migrations job by
//    hand (it works for at most 50 s).
//    A duty whose migration finishes before the load ends has its progress
//    start again on a fresh copy of the data.
//
// It prints a Markdown table, then the figures as JSON. Everything stops by itself.
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { UTALK_BENCH_ENV, percentile, startServer, startUtalk, stopServer, worker } from "./procs.mjs";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const cfg = {
  migration: args.migration ?? "search_index",
  records: Number(args.records ?? 100000),
  fillSeconds: Number(args["fill-seconds"] ?? 60),
  seconds: Number(args.seconds ?? 15),
  duties: String(args.duty ?? "10,25,100").split(",").map(Number),
  conversations: Number(args.conversations ?? 64),
  inflight: Number(args.inflight ?? 16),
  clients: Number(args.clients ?? 4),
  utalk: args.utalk ?? join(process.env.CARGO_TARGET_DIR ?? join(process.env.HOME, ".cache/utalk/target"), "release/utalk"),
};
const here = dirname(fileURLToPath(import.meta.url));
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

async function progress(url, admin, name = cfg.migration) {
  const r = await fetch(`${url}/api/v1/admin/migrations`, { headers: { authorization: `Bearer ${admin}` } }).then((r) => r.json());
  return r.items.find((m) => m.name === name);
}

// A stopped server may leave its control socket behind: not data, and not copyable.
const notSocket = (path) => !path.endsWith(".sock");

// Never on its own during a measurement: run by hand when measured.
const NO_SCHEDULE = { UTALK_JOBS__DATA_MIGRATIONS: "0 0 0 1 1 *" };

async function start(data, env) {
  const server = await startServer(cfg.utalk, ["serve", "--listen", "127.0.0.1:0", "--data-dir", data], { ...UTALK_BENCH_ENV, ...env });
  const token = await login(server.url, { email: "bench@example.com", password: "a-long-bench-password" });
  const admin = await login(server.url, ADMIN);
  return { server, token, admin };
}

if (!["search_index", "contact_links", "message_format"].includes(cfg.migration)) {
  throw new Error("--migration takes search_index, contact_links or message_format");
}
// The job walks the store's copy made after the fill; the backfill starts over by itself.
const byJob = cfg.migration !== "search_index";
const dir = mkdtempSync(join(tmpdir(), "utalk-migration-bench-"));
const data = join(dir, "data");
const pristine = join(dir, "pristine");
const rows = [];
let records = 0;
try {
  // 1. Fill.
  const first = await startUtalk(cfg.utalk, dir, NO_SCHEDULE);
  execFileSync(cfg.utalk, ["user", "add", "--data-dir", data, "--email", ADMIN.email, "--role", "admin", "--password-stdin"], {
    input: `${ADMIN.password}\n`,
    env: { ...process.env, ...UTALK_BENCH_ENV },
  });
  const conversations = [];
  for (let i = 0; i < cfg.conversations; i++) {
    const c = await fetch(`${first.server.url}/api/v1/conversations`, { method: "POST", headers: first.headers, body: JSON.stringify({ channel: "api" }) });
    conversations.push((await c.json()).id);
  }
  if (cfg.migration !== "contact_links") {
    say(`filling the store for ${cfg.fillSeconds} s`);
    const fill = await load(first.server.url, first.token, conversations, cfg.fillSeconds);
    records = fill.acked + cfg.conversations;
    say(`${fill.acked} messages stored`);
    await stopServer(first.server.child);
    if (byJob) cpSync(data, pristine, { recursive: true, filter: notSocket });
  } else {
    await stopServer(first.server.child);
    say(`writing ${cfg.records} conversations as release 0.1.0 stored them`);
    execFileSync("cargo", ["bench", "--bench", "legacy_conversations", "--", "--data-dir", data, "--count", String(cfg.records)], {
      cwd: join(here, "..", ".."),
      stdio: ["ignore", "inherit", "inherit"],
    });
    records = cfg.records + cfg.conversations;
    // The search index of the new conversations is filled first, so that
    // no backfill runs beside the measurements.
    const { server, admin } = await start(data, { ...NO_SCHEDULE, UTALK_SEARCH__BACKFILL_DUTY_PERCENT: "100" });
    while ((await progress(server.url, admin, "search_index")).state !== "done") await new Promise((r) => setTimeout(r, 500));
    await stopServer(server.child);
    cpSync(data, pristine, { recursive: true, filter: notSocket });
  }

  // 2. Baseline: nothing in the background.
  {
    const { server, token, admin } = await start(data, NO_SCHEDULE);
    const before = await progress(server.url, admin);
    say(`baseline: ${cfg.migration} ${before.state}; sending for ${cfg.seconds} s`);
    rows.push({ case: "nothing in the background", ...(await load(server.url, token, conversations, cfg.seconds)), progress: before.state });
    await stopServer(server.child);
  }

  // 3. The same load while the migration walks the store.
  for (const duty of cfg.duties) {
    let env = { ...NO_SCHEDULE };
    if (cfg.migration === "search_index") {
      rmSync(join(data, "search"), { recursive: true, force: true });
      env.UTALK_SEARCH__BACKFILL_DUTY_PERCENT = String(duty);
    } else {
      rmSync(data, { recursive: true, force: true });
      cpSync(pristine, data, { recursive: true, filter: notSocket });
      env.UTALK_JOBS__DATA_MIGRATION_DUTY_PERCENT = String(duty);
    }
    const { server, token, admin } = await start(data, env);
    let run = null;
    if (byJob) {
      run = fetch(`${server.url}/api/v1/admin/jobs/data_migrations/run`, { method: "POST", headers: { authorization: `Bearer ${admin}` } }).catch(
        () => null,
      );
      await new Promise((r) => setTimeout(r, 500));
    }
    const before = await progress(server.url, admin);
    say(`duty ${duty}%: ${cfg.migration} ${before.state} at ${before.processed}; sending for ${cfg.seconds} s`);
    const r = await load(server.url, token, conversations, cfg.seconds);
    const after = await progress(server.url, admin);
    say(`duty ${duty}%: ${cfg.migration} ${after.state} at ${after.processed}`);
    rows.push({
      case: `${cfg.migration} at duty ${duty}%`,
      ...r,
      progress: `${after.state}, ${before.processed} → ${after.processed} records`,
      recordsPerSec: Math.round((after.processed - before.processed) / cfg.seconds),
    });
    await stopServer(server.child);
    await run;
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

console.log(
  `\n${records} records in the store (${cfg.conversations} conversations), ${cfg.conversations} × ${cfg.inflight} sends in flight, ${cfg.seconds} s each, ${cfg.clients} client processes\n`,
);
console.log(`| | acked msg/s | p50 ack ms | p99 ack ms | max ack ms | errors | ${cfg.migration} during the window |`);
console.log("|---|---|---|---|---|---|---|");
for (const r of rows) {
  console.log(`| ${r.case} | ${r.ackedPerSec} | ${r.p50Ms} | ${r.p99Ms} | ${r.maxMs} | ${r.errors} | ${r.progress} |`);
}
console.log(JSON.stringify({ config: cfg, records, results: rows }));
