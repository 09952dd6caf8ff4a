// REST load at a fixed offered rate, against the operations manual's
// objective of 1,000 requests/s with p95 under 400 ms.
//
//   node rest.mjs [--rates 500,1000,2000] [--seconds 20] [--clients 2]
//                 [--conversations 200] [--utalk PATH]
//
// It starts utalk on a fresh data directory (a user, `--conversations`
// conversations with 5 messages each), then for each rate runs an open-loop
// load from `--clients` processes: requests are started on a fixed schedule
// whatever the answers do, and each latency is measured from the moment the
// request was due, so a slow server cannot slow the load down and hide its
// own queueing. The mix, by weight:
//
//   40  GET  /api/v1/conversations?limit=20            (the console's list)
//   20  GET  /api/v1/conversations/{id}/messages?limit=50
//   10  GET  /api/v1/conversations/{id}
//    5  GET  /api/v1/conversations?q=pedido&limit=20    (search)
//   25  POST /api/v1/conversations/{id}/messages         (a durable write)
//
// It prints a Markdown table per rate (answered/s, p50/p95/p99 in ms, errors,
// server and client cores busy) and the figures as JSON. Everything stops
// by itself; a process keeps at most 512 requests open and counts the
// requests it could not start as late.
import { fork } from "node:child_process";
import http from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { randomUUID } from "node:crypto";
import { TICK_US, cpuTicks, startUtalk, stopServer } from "./procs.mjs";

const MIX = [
  ["list", 40],
  ["messages", 20],
  ["conversation", 10],
  ["search", 5],
  ["send", 25],
];
const MAX_OPEN = 512;

function args() {
  const a = {};
  for (let i = 2; i < process.argv.length; i += 2) a[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
  return a;
}

function percentile(sorted, p) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : NaN;
}

// ---- a client process ----

async function worker(job) {
  const { url, token, conversations, rate, seconds } = job;
  // node:http with a keep-alive pool: a third of fetch's CPU per request,
  // which matters when the generator shares the server's two cores.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 128 });
  const { hostname, port } = new URL(url);
  const headers = { authorization: `Bearer ${token}`, "content-type": "application/json", "accept-encoding": "gzip" };
  const call = (method, path, body) =>
    new Promise((resolve, reject) => {
      const req = http.request({ hostname, port, path, method, headers, agent }, (res) => {
        res.on("data", () => {});
        res.on("end", () => resolve({ status: res.statusCode }));
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end(body);
    });
  const total = MIX.reduce((a, [, w]) => a + w, 0);
  const pick = () => {
    let r = Math.random() * total;
    for (const [k, w] of MIX) if ((r -= w) < 0) return k;
    return MIX[0][0];
  };
  const conv = () => conversations[Math.floor(Math.random() * conversations.length)];
  const request = (kind) => {
    switch (kind) {
      case "list":
        return call("GET", "/api/v1/conversations?limit=20");
      case "messages":
        return call("GET", `/api/v1/conversations/${conv()}/messages?limit=50`);
      case "conversation":
        return call("GET", `/api/v1/conversations/${conv()}`);
      case "search":
        return call("GET", "/api/v1/conversations?q=pedido&limit=20");
      default:
        return call(
          "POST",
          `/api/v1/conversations/${conv()}/messages`,
          JSON.stringify({ messageId: randomUUID(), text: "hola, mi pedido no llegó todavía" }),
        );
    }
  };
  const lat = Object.fromEntries(MIX.map(([k]) => [k, []]));
  const errors = {};
  let open = 0;
  let late = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  const interval = 1000 / rate;
  let due = t0;
  const pending = new Set();
  await new Promise((done) => {
    const tick = () => {
      const now = performance.now();
      while (due <= now && due < end) {
        const at = due;
        due += interval;
        if (open >= MAX_OPEN) {
          late++;
          continue;
        }
        const kind = pick();
        open++;
        const p = request(kind)
          .then((r) => {
            if (r.status >= 400) errors[r.status] = (errors[r.status] ?? 0) + 1;
            else lat[kind].push(performance.now() - at);
          })
          .catch((e) => {
            errors[e.code ?? "network"] = (errors[e.code ?? "network"] ?? 0) + 1;
          })
          .finally(() => {
            open--;
            pending.delete(p);
          });
        pending.add(p);
      }
      if (due < end) setTimeout(tick, Math.max(0, Math.min(5, due - performance.now())));
      else Promise.allSettled([...pending]).then(done);
    };
    tick();
  });
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { lat, errors, late, elapsed, cpuMs: (cpu.user + cpu.system) / 1000 };
}

if (process.argv[2] === "--worker") {
  process.once("message", async (job) => {
    try {
      process.send({ done: await worker(job) });
    } catch (e) {
      process.send({ error: String(e) });
    }
  });
} else {
  await main();
}

// ---- the orchestrator ----

async function main() {
  const a = args();
  const cfg = {
    rates: (a.rates ?? "500,1000,2000").split(",").map(Number),
    seconds: Number(a.seconds ?? 20),
    clients: Number(a.clients ?? 2),
    conversations: Number(a.conversations ?? 200),
    utalk:
      a.utalk ?? join(process.env.CARGO_TARGET_DIR ?? join(fileURLToPath(new URL("../..", import.meta.url)), "target"), "release/utalk"),
  };
  const say = (m) => process.stderr.write(`rest: ${m}\n`);
  const dir = mkdtempSync(join(tmpdir(), "utalk-rest-"));
  const { server, token, headers } = await startUtalk(cfg.utalk, dir);
  const rows = [];
  try {
    say(`seeding ${cfg.conversations} conversations`);
    const conversations = [];
    for (let i = 0; i < cfg.conversations; i++) {
      const c = await fetch(`${server.url}/api/v1/conversations`, {
        method: "POST",
        headers,
        body: JSON.stringify({ channel: "api", customer: { name: `Cliente ${i}` } }),
      }).then((r) => r.json());
      conversations.push(c.id);
      for (let j = 0; j < 5; j++) {
        await fetch(`${server.url}/api/v1/conversations/${c.id}/messages`, {
          method: "POST",
          headers,
          body: JSON.stringify({ messageId: randomUUID(), text: `mensaje ${j} sobre el pedido ${i}` }),
        });
      }
    }
    for (const rate of cfg.rates) {
      say(`${rate} requests/s for ${cfg.seconds} s from ${cfg.clients} processes`);
      const share = rate / cfg.clients;
      const procs = Array.from({ length: cfg.clients }, () =>
        fork(fileURLToPath(import.meta.url), ["--worker"], { stdio: ["ignore", "inherit", "inherit", "ipc"] }),
      );
      const c0 = cpuTicks(server.child.pid);
      const results = await Promise.all(
        procs.map(
          (p) =>
            new Promise((resolve, reject) => {
              p.once("message", (m) => (m.error ? reject(new Error(m.error)) : resolve(m.done)));
              p.send({ url: server.url, token, conversations, rate: share, seconds: cfg.seconds });
            }),
        ),
      );
      const serverCores = ((cpuTicks(server.child.pid) - c0) * TICK_US) / 1e6;
      procs.forEach((p) => p.kill());
      const elapsed = Math.max(...results.map((r) => r.elapsed));
      const all = results.flatMap((r) => Object.values(r.lat).flat()).sort((x, y) => x - y);
      const byKind = Object.fromEntries(
        MIX.map(([k]) => {
          const l = results.flatMap((r) => r.lat[k]).sort((x, y) => x - y);
          return [k, { n: l.length, p95: Number(percentile(l, 95).toFixed(1)) }];
        }),
      );
      const errors = {};
      for (const r of results) for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
      rows.push({
        offered: rate,
        answered: Math.round(all.length / elapsed),
        p50: Number(percentile(all, 50).toFixed(1)),
        p95: Number(percentile(all, 95).toFixed(1)),
        p99: Number(percentile(all, 99).toFixed(1)),
        errors,
        late: results.reduce((x, r) => x + r.late, 0),
        serverCores: Number((serverCores / elapsed).toFixed(2)),
        clientCores: Number((results.reduce((x, r) => x + r.cpuMs, 0) / 1000 / elapsed).toFixed(2)),
        byKind,
      });
    }
  } finally {
    await stopServer(server.child);
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`\n${cfg.conversations} conversations, ${cfg.seconds} s per rate, ${cfg.clients} client processes\n`);
  console.log(
    "| offered req/s | answered req/s | p50 ms | p95 ms | p99 ms | errors | not started (client full) | server cores | client cores | p95 by kind (list / messages / conversation / search / send) |",
  );
  console.log("|---|---|---|---|---|---|---|---|---|---|");
  for (const r of rows) {
    const k = r.byKind;
    const errs =
      Object.entries(r.errors)
        .map(([c, n]) => `${n}×${c}`)
        .join(", ") || "0";
    console.log(
      `| ${r.offered} | ${r.answered} | ${r.p50} | ${r.p95} | ${r.p99} | ${errs} | ${r.late} | ${r.serverCores} | ${r.clientCores} | ${k.list.p95} / ${k.messages.p95} / ${k.conversation.p95} / ${k.search.p95} / ${k.send.p95} |`,
    );
  }
  console.log(JSON.stringify({ config: cfg, results: rows }));
}
