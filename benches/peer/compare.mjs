// The side-by-side benchmark: the same stock socket.io-client load against
// utalk (durable acks) and against the Node socket.io peer (server.mjs, in
// memory only), one after the other in one run, on 127.0.0.1.
//
//   node benches/peer/compare.mjs [--conversations 64] [--inflight 16] [--seconds 10]
//                                 [--clients 4] [--idle 2000] [--utalk PATH]
//                                 [--only utalk|peer]
//
// `--utalk` takes several binaries separated by commas (say, before and after
// a change): each is measured in turn, in the same run, and named by its path.
//
// For each server it reports acked msg/s, p50/p99 ack latency, messages
// delivered to the receivers, the server's CPU time per acked message (from
// /proc/<pid>/stat over the measured window) and its RSS per idle connected
// socket (`--idle` sockets over `--clients` processes), and says when the
// client processes were the bottleneck. It prints a Markdown table, then
// the figures as JSON. Everything stops by itself.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir, cpus } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { randomUUID } from "node:crypto";
import { TICK_US, cpuTicks, percentile, rssKb, startServer, startUtalk, stopServer, worker } from "./procs.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const cfg = {
  conversations: Number(args.conversations ?? 64),
  inflight: Number(args.inflight ?? 16),
  seconds: Number(args.seconds ?? 10),
  clients: Number(args.clients ?? 4),
  idle: Number(args.idle ?? 2000),
  textBytes: Number(args["text-bytes"] ?? 32),
  only: args.only ?? "both",
  utalk: args.utalk ?? join(process.env.CARGO_TARGET_DIR ?? join(process.env.HOME, ".cache/utalk/target"), "release/utalk"),
};

const say = (m) => process.stderr.write(`compare: ${m}\n`);

async function measure(name, server, token, conversations) {
  const pid = server.child.pid;
  // Idle sockets first, on the fresh server: measured after the load, the
  // allocator handing the load's memory back to the system would hide them.
  say(`${name}: opening ${cfg.idle} idle sockets`);
  await new Promise((r) => setTimeout(r, 1000));
  const before = rssKb(pid);
  const idleWorkers = Array.from({ length: cfg.clients }, (_, i) =>
    worker({ url: server.url, token, idle: Math.floor(cfg.idle / cfg.clients) + (i < cfg.idle % cfg.clients ? 1 : 0) }),
  );
  const up = (await Promise.all(idleWorkers.map((w) => w.next()))).reduce((a, m) => a + m.up, 0);
  await new Promise((r) => setTimeout(r, 2000));
  const after = rssKb(pid);
  for (const { w } of idleWorkers) w.send("stop");
  await new Promise((r) => setTimeout(r, 1000));
  say(`${name}: connecting ${conversations.length * 2} sockets over ${cfg.clients} client processes`);
  // The load.
  const shares = Array.from({ length: cfg.clients }, (_, i) => conversations.filter((_, j) => j % cfg.clients === i));
  const workers = shares.map((share) =>
    worker({ url: server.url, token, conversations: share, inflight: cfg.inflight, seconds: cfg.seconds, textBytes: cfg.textBytes }),
  );
  await Promise.all(workers.map((w) => w.next()));
  say(`${name}: sending for ${cfg.seconds} s`);
  const t0 = cpuTicks(pid);
  const results = workers.map((w) => w.next());
  for (const { w } of workers) w.send("go");
  const done = (await Promise.all(results)).map((m) => m.done);
  const serverCpuUs = (cpuTicks(pid) - t0) * TICK_US;
  const acked = done.reduce((a, d) => a + d.acked, 0);
  const elapsed = Math.max(...done.map((d) => d.elapsed));
  const latencies = done.flatMap((d) => d.latencies).sort((a, b) => a - b);
  const clientCpuMs = done.reduce((a, d) => a + d.cpuMs, 0);
  const clientCores = clientCpuMs / 1000 / elapsed;
  say(`${name}: ${acked} acked`);
  return {
    server: name,
    ackedPerSec: Math.round(acked / elapsed),
    p50Ms: Number(percentile(latencies, 50).toFixed(2)),
    p99Ms: Number(percentile(latencies, 99).toFixed(2)),
    delivered: done.reduce((a, d) => a + d.delivered, 0),
    sent: done.reduce((a, d) => a + d.latencies.length, 0),
    errors: done.reduce((a, d) => a + d.errors, 0),
    serverCpuUsPerMsg: Number((serverCpuUs / Math.max(1, acked)).toFixed(1)),
    rssKbPerIdleSocket: Number(((after - before) / Math.max(1, up)).toFixed(1)),
    idleSockets: up,
    serverCores: Number((serverCpuUs / 1e6 / elapsed).toFixed(2)),
    clientCores: Number(clientCores.toFixed(2)),
    // The machine is full when server and clients together use nearly every
    // core; then whichever used more is what holds the rate back.
    clientBound: serverCpuUs / 1e6 / elapsed + clientCores > cpus().length - 0.2 && clientCores > serverCpuUs / 1e6 / elapsed,
  };
}

async function utalk(bin, label) {
  const dir = mkdtempSync(join(tmpdir(), "utalk-bench-"));
  say(`starting ${bin}`);
  const { server, token, headers } = await startUtalk(bin, dir);
  try {
    const conversations = [];
    for (let i = 0; i < cfg.conversations; i++) {
      const c = await fetch(`${server.url}/api/v1/conversations`, { method: "POST", headers, body: JSON.stringify({ channel: "api" }) }).then((r) =>
        r.json(),
      );
      conversations.push(c.id);
    }
    return await measure(label, server, token, conversations);
  } finally {
    await stopServer(server.child);
    rmSync(dir, { recursive: true, force: true });
  }
}

async function peer() {
  const server = await startServer(process.execPath, [join(here, "server.mjs")], {});
  try {
    const conversations = Array.from({ length: cfg.conversations }, () => randomUUID());
    return await measure("Node socket.io 4.8 peer (in memory)", server, "none", conversations);
  } finally {
    await stopServer(server.child);
  }
}

if (!["both", "utalk", "peer"].includes(cfg.only)) throw new Error("--only takes utalk or peer");
const rows = [];
const bins = cfg.utalk.split(",").filter(Boolean);
if (cfg.only !== "peer") {
  for (const bin of bins) rows.push(await utalk(bin, bins.length > 1 ? `utalk ${bin} (durable acks)` : "utalk (durable acks)"));
}
if (cfg.only !== "utalk") rows.push(await peer());
console.log(`\n${cfg.conversations} conversations × ${cfg.inflight} sends in flight, ${cfg.seconds} s, ${cfg.clients} client processes, ${cfg.idle} idle sockets\n`);
console.log("| | acked msg/s | p50 ack ms | p99 ack ms | delivered / sent | server CPU µs per acked msg | RSS KB per idle socket | server cores busy | client cores busy |");
console.log("|---|---|---|---|---|---|---|---|---|");
for (const r of rows) {
  const bound = r.clientBound ? " (client-bound)" : "";
  console.log(
    `| ${r.server} | ${r.ackedPerSec}${bound} | ${r.p50Ms} | ${r.p99Ms} | ${r.delivered} / ${r.sent} | ${r.serverCpuUsPerMsg} | ${r.rssKbPerIdleSocket} | ${r.serverCores} | ${r.clientCores} |`,
  );
}
console.log(JSON.stringify({ config: cfg, results: rows }));
