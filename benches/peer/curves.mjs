// Cost curves for sizing a machine: how throughput, ack latency and memory
// grow with the load, measured with the same stock socket.io-client load as
// compare.mjs (load.mjs client processes), and drawn as SVG charts.
//
//   node benches/peer/curves.mjs [--server utalk|peer|both] [--curves conversations,subscribers,rss]
//        [--points-conversations 1,10,100,1000,10000] [--points-subscribers 1,10,100,1000]
//        [--points-idle 1000,5000,10000,19000] [--seconds 10] [--inflight 1] [--max-inflight 1024]
//        [--subscriber-conversations 4] [--subscriber-inflight 16] [--clients 4]
//        [--max-sockets-per-client 5000] [--max-senders 1000] [--text-bytes 32]
//        [--utalk PATH] [--out DIR]
//
// Three curves, each point on a freshly started server (so that no point
// inherits the conversations, sockets or memory of the one before):
//   conversations  acked msg/s and p99 ack against the number of conversations,
//                  one receiver socket each; `--inflight` sends outstanding per
//                  conversation, at most `--max-inflight` over all of them.
//                  Senders are agent-like sockets: one per conversation up to
//                  `--max-senders`, beyond that each serves several
//                  conversations, so that 10,000 conversations stay under the
//                  server's limit of open files.
//   subscribers    acked msg/s and p99 ack against receivers per conversation,
//                  over `--subscriber-conversations` conversations with
//                  `--subscriber-inflight` sends outstanding each.
//   rss            the server's RSS against idle connected sockets, spread over
//                  client processes of at most `--max-sockets-per-client` each.
// The client processes share the machine with the server, as in compare.mjs:
// a point where they used more CPU than the server on a full machine is
// marked client-bound (hollow marker in the charts).
//
// Output: curves-throughput-conversations.svg, curves-throughput-subscribers.svg
// and curves-rss-idle.svg in `--out` (default docs/benchmarks of the
// repository), a Markdown table per curve on stdout, then everything as JSON
// on the last line. Progress goes to stderr. A point that fails is reported
// and left out of its chart, and the run goes on; the exit status is then 1.
import { fork, execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir, cpus } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { randomUUID } from "node:crypto";
import { TICK_US, UTALK_BENCH_ENV, cpuTicks, percentile, rssKb, startServer, stopServer } from "./procs.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, "../..");

// ---------------------------------------------------------------- options

const DEFAULTS = {
  server: "utalk",
  curves: "conversations,subscribers,rss",
  "points-conversations": "1,10,100,1000,10000",
  "points-subscribers": "1,10,100,1000",
  "points-idle": "1000,5000,10000,19000",
  seconds: "10",
  inflight: "1",
  "max-inflight": "1024",
  "subscriber-conversations": "4",
  "subscriber-inflight": "16",
  clients: "4",
  "max-sockets-per-client": "5000",
  "max-senders": "1000",
  "text-bytes": "32",
  utalk: join(process.env.CARGO_TARGET_DIR ?? join(process.env.HOME ?? "/root", ".cache/utalk/target"), "release/utalk"),
  out: join(repoRoot, "docs/benchmarks"),
};

function fail(message) {
  throw new Error(message);
}

function parseArgs(argv) {
  const opts = { ...DEFAULTS };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--help" || a === "-h") {
      const usage = readFileSync(fileURLToPath(import.meta.url), "utf8").split("\n");
      process.stdout.write(usage.slice(0, usage.findIndex((l) => !l.startsWith("//"))).join("\n") + "\n");
      process.exit(0);
    }
    const name = a.startsWith("--") ? a.slice(2) : null;
    if (!name || !(name in DEFAULTS)) throw new Error(`unknown option ${a} (see --help)`);
    if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
    opts[name] = argv[++i];
  }
  const int = (name, min) => {
    const v = Number(opts[name]);
    if (!Number.isInteger(v) || v < min) throw new Error(`--${name} takes an integer of at least ${min}, not ${opts[name]}`);
    return v;
  };
  const list = (name) => {
    const v = opts[name].split(",").map((s) => Number(s.trim()));
    if (!v.length || v.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`--${name} takes positive integers separated by commas`);
    return [...new Set(v)].sort((a, b) => a - b);
  };
  const servers = { utalk: ["utalk"], peer: ["peer"], both: ["utalk", "peer"] }[opts.server];
  if (!servers) throw new Error("--server takes utalk, peer or both");
  const curves = opts.curves.split(",").map((s) => s.trim());
  for (const c of curves) if (!["conversations", "subscribers", "rss"].includes(c)) throw new Error(`unknown curve ${c}`);
  return {
    servers,
    curves,
    pointsConversations: list("points-conversations"),
    pointsSubscribers: list("points-subscribers"),
    pointsIdle: list("points-idle"),
    seconds: Number(opts.seconds) > 0 ? Number(opts.seconds) : fail("--seconds takes a positive number"),
    inflight: int("inflight", 1),
    maxInflight: int("max-inflight", 1),
    subscriberConversations: int("subscriber-conversations", 1),
    subscriberInflight: int("subscriber-inflight", 1),
    clients: int("clients", 1),
    maxSocketsPerClient: int("max-sockets-per-client", 1),
    maxSenders: int("max-senders", 1),
    textBytes: int("text-bytes", 1),
    utalk: resolve(opts.utalk),
    out: resolve(opts.out),
  };
}

const say = (m) => process.stderr.write(`curves: ${m}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ------------------------------------------------- processes and cleanup

// Everything this run started, so that an error, Ctrl-C or a kill leaves no
// server, client process or data directory behind.
const live = new Set();
const tempDirs = new Set();
process.on("exit", () => {
  for (const c of live) {
    try {
      c.kill("SIGKILL");
    } catch {}
  }
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, () => {
    say(`${sig}: stopping`);
    process.exit(130);
  });
}

// Every socket is one open file in the server: refuse a point that would run
// it out of files, rather than measure a server failing its accepts.
function checkFileRoom(pid, sockets) {
  const m = readFileSync(`/proc/${pid}/limits`, "utf8").match(/Max open files\s+(\d+|unlimited)/);
  const limit = m[1] === "unlimited" ? Infinity : Number(m[1]);
  const open = readdirSync(`/proc/${pid}/fd`).length;
  // Room for the files the server opens on its own under load (storage, REST).
  const room = limit - open - 200;
  if (sockets > room) throw new Error(`${sockets} sockets do not fit: the server may open ${limit} files and holds ${open} already`);
}

// One load.mjs client process. Its reports are queued, so none is lost
// whether it comes before or after the parent asks for it.
function worker(payload) {
  // Through a file: the ids of thousands of conversations exceed what one
  // command-line argument may hold.
  const file = join(mkdtempSync(join(tmpdir(), "utalk-load-")), "config.json");
  writeFileSync(file, JSON.stringify(payload));
  const w = fork(join(here, "load.mjs"), [`@${file}`], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  w.once("exit", () => rmSync(dirname(file), { recursive: true, force: true }));
  live.add(w);
  const inbox = [];
  let wake = null;
  let ended = null;
  const poke = () => {
    const f = wake;
    wake = null;
    f?.();
  };
  w.on("message", (m) => {
    inbox.push(m);
    poke();
  });
  // "close" comes after the last message has been read, unlike "exit".
  w.once("close", (code, signal) => {
    live.delete(w);
    ended = code ?? signal;
    poke();
  });
  return {
    next(what, ms) {
      return new Promise((res, reject) => {
        const timer = setTimeout(() => {
          wake = null;
          reject(new Error(`a client process did not ${what} within ${Math.round(ms / 1000)} s`));
        }, ms);
        const check = () => {
          if (inbox.length) {
            clearTimeout(timer);
            const m = inbox.shift();
            return m.error ? reject(new Error(m.error)) : res(m);
          }
          if (ended !== null) {
            clearTimeout(timer);
            return reject(new Error(`a client process ended (${ended}) before it could ${what}`));
          }
          wake = check;
        };
        check();
      });
    },
    send(m) {
      if (w.connected) w.send(m);
    },
    // Waits up to `ms` for it to end by itself, then makes sure it has.
    async finish(ms) {
      if (ended === null) {
        let timer;
        await new Promise((r) => {
          w.once("close", r);
          timer = setTimeout(r, ms);
        });
        clearTimeout(timer);
      }
      if (ended === null) w.kill("SIGKILL");
    },
  };
}

// ----------------------------------------------------------------- servers

function utalkName(cfg) {
  try {
    return `${execFileSync(cfg.utalk, ["--version"], { timeout: 10000 }).toString().trim()} (durable acks)`;
  } catch {
    return "utalk (durable acks)";
  }
}

function peerName() {
  const v = JSON.parse(readFileSync(join(here, "node_modules/socket.io/package.json"), "utf8")).version;
  return `Node socket.io ${v} peer (in memory)`;
}

// A fresh utalk in a fresh data directory, started as compare.mjs starts it.
async function startUtalk(cfg) {
  if (!existsSync(cfg.utalk)) throw new Error(`no utalk binary at ${cfg.utalk}: build it (cargo build --release) or pass --utalk PATH`);
  const dir = mkdtempSync(join(tmpdir(), "utalk-curves-"));
  tempDirs.add(dir);
  const data = join(dir, "data");
  const env = UTALK_BENCH_ENV;
  const close = async (child) => {
    if (child) await stopServer(child);
    rmSync(dir, { recursive: true, force: true });
    tempDirs.delete(dir);
  };
  let server;
  try {
    execFileSync(cfg.utalk, ["user", "add", "--data-dir", data, "--email", "bench@example.com", "--role", "agent", "--password-stdin"], {
      input: "a-long-bench-password\n",
      env: { ...process.env, ...env },
      stdio: ["pipe", "ignore", "inherit"],
    });
    server = await startServer(cfg.utalk, ["serve", "--listen", "127.0.0.1:0", "--data-dir", data], env, live);
    const res = await fetch(`${server.url}/api/v1/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: "bench@example.com", password: "a-long-bench-password" }),
    });
    const token = (await res.json())?.accessToken;
    if (!token) throw new Error(`login failed: HTTP ${res.status}`);
    const createOne = async () => {
      const r = await fetch(`${server.url}/api/v1/conversations`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body: JSON.stringify({ channel: "api" }),
      });
      const body = await r.json().catch(() => null);
      if (!body?.id) throw new Error(`creating a conversation failed: HTTP ${r.status} ${JSON.stringify(body)}`);
      return body.id;
    };
    return {
      pid: server.child.pid,
      url: server.url,
      token,
      // Through REST, a few at a time: 10,000 one by one would take longer than the measurement.
      async createConversations(n) {
        const ids = new Array(n);
        let nextIndex = 0;
        const lane = async () => {
          while (nextIndex < n) {
            const i = nextIndex++;
            ids[i] = await createOne();
          }
        };
        await Promise.all(Array.from({ length: Math.min(16, n) }, lane));
        return ids;
      },
      close: () => close(server.child),
    };
  } catch (e) {
    await close(server?.child);
    throw e;
  }
}

async function startPeer() {
  const server = await startServer(process.execPath, [join(here, "server.mjs")], {}, live);
  return {
    pid: server.child.pid,
    url: server.url,
    token: "none",
    // The peer makes a conversation when it is first joined.
    async createConversations(n) {
      return Array.from({ length: n }, () => randomUUID());
    },
    close: () => stopServer(server.child),
  };
}

// ------------------------------------------------------------ measurements

const round = (v, digits) => (Number.isFinite(v) ? Number(v.toFixed(digits)) : null);

// Spreads C conversations with R receivers each over client processes: the
// sender of conversation j lives in process j mod P, and its receivers are
// dealt out starting there, so that every process gets about as many sockets.
function plan(ids, receivers, perSender, processes) {
  const P = processes;
  const shares = Array.from({ length: P }, () => ({ conversations: [], sending: 0, sockets: 0 }));
  ids.forEach((id, j) => {
    for (let i = 0; i < P; i++) {
      const offset = (i - (j % P) + P) % P;
      const n = Math.floor(receivers / P) + (offset < receivers % P ? 1 : 0);
      const send = offset === 0;
      if (!n && !send) continue;
      shares[i].conversations.push({ id, send, receivers: n });
      shares[i].sending += send ? 1 : 0;
      shares[i].sockets += n;
    }
  });
  for (const s of shares) s.sockets += Math.ceil(s.sending / perSender);
  return shares.filter((s) => s.conversations.length);
}

async function throughputPoint(cfg, kind, conversations, receivers, inflight) {
  const server = kind === "utalk" ? await startUtalk(cfg) : await startPeer();
  const workers = [];
  let ok = false;
  try {
    const perSender = Math.ceil(conversations / Math.min(conversations, cfg.maxSenders));
    const sockets = conversations * receivers + Math.ceil(conversations / perSender);
    const processes = Math.min(conversations * receivers, Math.max(cfg.clients, Math.ceil(sockets / cfg.maxSocketsPerClient)));
    // Senders are grouped within each process, so there may be one more per process.
    checkFileRoom(server.pid, sockets + processes);
    say(`  creating ${conversations} conversations`);
    const ids = await server.createConversations(conversations);
    const shares = plan(ids, receivers, perSender, processes);
    // The total bound on sends in flight, dealt out by the conversations each process sends to.
    const bounded = conversations * inflight > cfg.maxInflight;
    say(
      `  connecting ${shares.reduce((a, sh) => a + sh.sockets, 0)} sockets over ${shares.length} client processes ` +
        `(${receivers} receiver${receivers > 1 ? "s" : ""} per conversation, ${perSender} conversation${perSender > 1 ? "s" : ""} per sender)`,
    );
    for (const s of shares) {
      workers.push(
        worker({
          url: server.url,
          token: server.token,
          conversations: s.conversations,
          inflight,
          seconds: cfg.seconds,
          textBytes: cfg.textBytes,
          conversationsPerSender: perSender,
          maxInflight: bounded ? Math.max(1, Math.floor((cfg.maxInflight * s.sending) / conversations)) : undefined,
          quietMs: 1000,
        }),
      );
    }
    const setupMs = 120000 + 50 * Math.max(...shares.map((s) => s.sockets));
    await Promise.all(workers.map((w) => w.next("connect and join", setupMs)));
    say(`  sending for ${cfg.seconds} s`);
    const t0 = cpuTicks(server.pid);
    const results = workers.map((w) => w.next("finish sending", (cfg.seconds + 120) * 1000));
    for (const w of workers) w.send("go");
    const done = (await Promise.all(results)).map((m) => m.done);
    const serverCpuUs = (cpuTicks(server.pid) - t0) * TICK_US;
    const rssAfterKb = rssKb(server.pid);
    const acked = done.reduce((a, d) => a + d.acked, 0);
    const elapsed = Math.max(...done.map((d) => d.elapsed));
    const latencies = Float64Array.from(done.flatMap((d) => d.latencies)).sort();
    const sent = latencies.length;
    const serverCores = serverCpuUs / 1e6 / elapsed;
    const clientCores = done.reduce((a, d) => a + d.cpuMs, 0) / 1000 / elapsed;
    const point = {
      conversations,
      receivers,
      sockets: done.reduce((a, d) => a + d.sockets, 0),
      clientProcesses: shares.length,
      inflight: done.reduce((a, d) => a + d.inflight, 0),
      ackedPerSec: Math.round(acked / elapsed),
      fanoutPerSec: Math.round((acked * receivers) / elapsed),
      p50Ms: round(percentile(latencies, 50), 2),
      p99Ms: round(percentile(latencies, 99), 2),
      sent,
      delivered: done.reduce((a, d) => a + d.delivered, 0),
      expectedDeliveries: sent * receivers,
      errors: done.reduce((a, d) => a + d.errors, 0),
      disconnects: done.reduce((a, d) => a + d.disconnects, 0),
      serverCpuUsPerMsg: round(serverCpuUs / Math.max(1, acked), 1),
      serverCores: round(serverCores, 2),
      clientCores: round(clientCores, 2),
      // As in compare.mjs: on a full machine, whichever used more CPU holds the rate back.
      clientBound: serverCores + clientCores > cpus().length - 0.2 && clientCores > serverCores,
      serverRssMiB: round(rssAfterKb / 1024, 1),
    };
    say(
      `  ${point.ackedPerSec} acked msg/s, p99 ${point.p99Ms} ms, delivered ${point.delivered} of ${point.expectedDeliveries}` +
        (point.errors || point.disconnects ? `, ${point.errors} errors, ${point.disconnects} sockets closed by the server` : ""),
    );
    ok = true;
    return point;
  } finally {
    // After a failure, clients still connecting would only wait for their own timeouts.
    await Promise.all(workers.map((w) => w.finish(ok ? 15000 : 0)));
    await server.close();
  }
}

async function idlePoint(cfg, kind, count) {
  const server = kind === "utalk" ? await startUtalk(cfg) : await startPeer();
  const workers = [];
  let ok = false;
  try {
    checkFileRoom(server.pid, count);
    // Let the freshly started server settle before the baseline.
    await sleep(1000);
    const beforeKb = rssKb(server.pid);
    const processes = Math.min(count, Math.max(cfg.clients, Math.ceil(count / cfg.maxSocketsPerClient)));
    say(`  opening ${count} idle sockets over ${processes} client processes`);
    for (let i = 0; i < processes; i++) {
      const idle = Math.floor(count / processes) + (i < count % processes ? 1 : 0);
      workers.push({ idle, w: worker({ url: server.url, token: server.token, idle }) });
    }
    const reports = await Promise.all(workers.map(({ w, idle }) => w.next("connect its idle sockets", 120000 + 50 * idle)));
    const up = reports.reduce((a, m) => a + m.up, 0);
    // As compare.mjs: give the server time to finish setting the sessions up.
    await sleep(2000);
    const afterKb = rssKb(server.pid);
    const point = {
      idleSockets: up,
      clientProcesses: processes,
      rssMiB: round(afterKb / 1024, 1),
      rssBeforeMiB: round(beforeKb / 1024, 1),
      kibPerSocket: round((afterKb - beforeKb) / Math.max(1, up), 2),
    };
    say(`  RSS ${point.rssMiB} MiB (${point.rssBeforeMiB} MiB before), ${point.kibPerSocket} KiB per idle socket`);
    ok = true;
    return point;
  } finally {
    for (const { w } of workers) w.send("stop");
    await Promise.all(workers.map(({ w }) => w.finish(ok ? 15000 : 0)));
    await server.close();
  }
}

// ------------------------------------------------------------------ charts

const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

function fmt(v) {
  if (v >= 1e6) return `${+(v / 1e6).toFixed(2)}M`;
  if (v >= 1e4) return `${+(v / 1e3).toFixed(1)}k`;
  if (v >= 100) return String(Math.round(v));
  return String(+v.toFixed(2));
}

// A round upper bound and step for a linear axis from 0.
function niceAxis(max) {
  if (!(max > 0)) return { max: 1, step: 0.2 };
  const raw = max / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  return { max: Math.ceil(max / step - 1e-9) * step, step };
}

function wrap(line, width) {
  const out = [];
  let cur = "";
  for (const word of line.split(" ")) {
    if (cur && cur.length + 1 + word.length > width) {
      out.push(cur);
      cur = word;
    } else {
      cur = cur ? `${cur} ${word}` : word;
    }
  }
  return cur ? [...out, cur] : out;
}

// series: [{label, axis: "left"|"right", color, dashed, points: [{x, y, hollow}]}]
function chart({ title, xLabel, leftLabel, rightLabel, series, caption: captionLines }) {
  const W = 880;
  // SVG text does not wrap: break the caption at about the width of the plot.
  const caption = captionLines.flatMap((line) => wrap(line, 140));
  const plot = { left: 90, right: W - 90, top: 60, height: 320 };
  plot.bottom = plot.top + plot.height;
  // Legend: two entries a row when the labels fit (about 6.6 px a character at 12 px), else one.
  const longest = Math.max(0, ...series.map((s) => s.label.length));
  const legendColumns = 2 * (36 + longest * 6.6 + 16) <= W - plot.left - 10 ? 2 : 1;
  const legendRows = Math.ceil(series.length / legendColumns);
  const H = plot.bottom + 56 + legendRows * 20 + 12 + caption.length * 16 + 10;
  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  out.push(`<text x="${W / 2}" y="28" text-anchor="middle" font-size="16" font-weight="bold">${esc(title)}</text>`);

  const xs = [...new Set(series.flatMap((s) => s.points.map((p) => p.x)))].sort((a, b) => a - b);
  let lo = Math.log10(xs[0] ?? 1);
  let hi = Math.log10(xs[xs.length - 1] ?? 10);
  const pad = hi > lo ? (hi - lo) * 0.06 : 0.5;
  lo -= pad;
  hi += pad;
  const X = (x) => plot.left + ((Math.log10(x) - lo) / (hi - lo)) * (plot.right - plot.left);
  const axes = {};
  for (const side of ["left", "right"]) {
    const ys = series.filter((s) => s.axis === side).flatMap((s) => s.points.map((p) => p.y));
    const a = niceAxis(Math.max(0, ...ys));
    axes[side] = { ...a, Y: (y) => plot.bottom - (y / a.max) * plot.height, used: ys.length > 0 || series.some((s) => s.axis === side) };
  }

  // Log x axis: faint lines at each decade, short ticks at 2..9 times it, labels at the measured points.
  for (let d = Math.floor(lo); d <= Math.ceil(hi); d++) {
    for (let m = 1; m < 10; m++) {
      const v = m * 10 ** d;
      if (Math.log10(v) < lo || Math.log10(v) > hi) continue;
      const x = X(v).toFixed(1);
      if (m === 1) out.push(`<line x1="${x}" y1="${plot.top}" x2="${x}" y2="${plot.bottom}" stroke="#e4e4e4"/>`);
      out.push(`<line x1="${x}" y1="${plot.bottom}" x2="${x}" y2="${plot.bottom + (m === 1 ? 6 : 3)}" stroke="#555"/>`);
    }
  }
  for (const v of xs) {
    out.push(`<text x="${X(v).toFixed(1)}" y="${plot.bottom + 20}" text-anchor="middle">${esc(v.toLocaleString("en-US"))}</text>`);
  }
  out.push(`<text x="${(plot.left + plot.right) / 2}" y="${plot.bottom + 42}" text-anchor="middle" font-size="13">${esc(xLabel)} (log scale)</text>`);

  // Linear y axes from 0: left for the solid series, right for the dashed ones.
  const left = axes.left;
  for (let v = 0; v <= left.max + 1e-9; v += left.step) {
    const y = left.Y(v).toFixed(1);
    out.push(`<line x1="${plot.left}" y1="${y}" x2="${plot.right}" y2="${y}" stroke="#eee"/>`);
    out.push(`<text x="${plot.left - 8}" y="${y}" text-anchor="end" dominant-baseline="middle">${fmt(v)}</text>`);
  }
  const midY = plot.top + plot.height / 2;
  out.push(`<text transform="translate(24 ${midY}) rotate(-90)" text-anchor="middle" font-size="13">${esc(leftLabel)}</text>`);
  if (rightLabel) {
    const right = axes.right;
    for (let v = 0; v <= right.max + 1e-9; v += right.step) {
      out.push(`<text x="${plot.right + 8}" y="${right.Y(v).toFixed(1)}" dominant-baseline="middle">${fmt(v)}</text>`);
    }
    out.push(`<text transform="translate(${W - 20} ${midY}) rotate(90)" text-anchor="middle" font-size="13">${esc(rightLabel)}</text>`);
  }
  out.push(`<rect x="${plot.left}" y="${plot.top}" width="${plot.right - plot.left}" height="${plot.height}" fill="none" stroke="#555"/>`);

  for (const s of series) {
    const { Y } = axes[s.axis];
    const pts = [...s.points].sort((a, b) => a.x - b.x);
    const d = pts.map((p, i) => `${i ? "L" : "M"}${X(p.x).toFixed(1)} ${Y(p.y).toFixed(1)}`).join(" ");
    if (pts.length > 1) {
      out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ""}/>`);
    }
    for (const p of pts) {
      const [x, y] = [X(p.x).toFixed(1), Y(p.y).toFixed(1)];
      const fill = p.hollow ? "#fff" : s.color;
      const tip = `<title>${esc(`${s.label}: ${p.y} at ${p.x}`)}</title>`;
      out.push(
        s.dashed
          ? `<rect x="${(x - 3.5).toFixed(1)}" y="${(y - 3.5).toFixed(1)}" width="7" height="7" fill="${fill}" stroke="${s.color}" stroke-width="1.5">${tip}</rect>`
          : `<circle cx="${x}" cy="${y}" r="4" fill="${fill}" stroke="${s.color}" stroke-width="1.5">${tip}</circle>`,
      );
    }
  }

  // Legend, below the x axis label.
  const legendTop = plot.bottom + 62;
  series.forEach((s, i) => {
    const x = plot.left + (i % legendColumns) * ((W - plot.left) / 2);
    const y = legendTop + Math.floor(i / legendColumns) * 20;
    out.push(`<line x1="${x}" y1="${y}" x2="${x + 28}" y2="${y}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ""}/>`);
    out.push(`<text x="${x + 36}" y="${y}" dominant-baseline="middle">${esc(s.label)}</text>`);
  });
  const captionTop = legendTop + legendRows * 20 + 12;
  caption.forEach((line, i) => {
    out.push(`<text x="${plot.left}" y="${captionTop + i * 16}" font-size="11" fill="#555">${esc(line)}</text>`);
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}

const COLORS = { utalk: "#1f6fb4", peer: "#d9480f" };

// --------------------------------------------------------------------- run

function machine() {
  let commit = "unknown commit";
  try {
    const head = execFileSync("git", ["-C", repoRoot, "rev-parse", "--short", "HEAD"], { stdio: ["ignore", "pipe", "ignore"] }).toString().trim();
    const dirty = execFileSync("git", ["-C", repoRoot, "status", "--porcelain", "--untracked-files=no"], { stdio: ["ignore", "pipe", "ignore"] })
      .toString()
      .trim();
    commit = `commit ${head}${dirty ? " with local changes" : ""}`;
  } catch {}
  return {
    date: new Date().toISOString().slice(0, 10),
    cores: cpus().length,
    cpu: cpus()[0]?.model?.trim() ?? "unknown CPU",
    node: process.version,
    commit,
  };
}

const num = (v) => (v === null || v === undefined ? "—" : typeof v === "number" ? v.toLocaleString("en-US") : v);

function throughputTable(title, rows) {
  const lines = [
    `### ${title}`,
    "",
    "| server | conversations | receivers per conversation | sockets | sends in flight | acked msg/s | p50 ack ms | p99 ack ms | deliveries/s (acked × receivers) | delivered / expected | errors | sockets closed by server | server CPU µs per acked msg | server cores busy | client cores busy | server RSS MiB at end |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const r of rows) {
    if (r.error) {
      lines.push(`| ${r.server} | ${num(r.conversations)} | ${num(r.receivers)} | failed: ${r.error.replace(/\|/g, "\\|").split("\n")[0]} |||||||||||||`);
      continue;
    }
    lines.push(
      `| ${r.server} | ${num(r.conversations)} | ${num(r.receivers)} | ${num(r.sockets)} | ${num(r.inflight)} | ${num(r.ackedPerSec)}${r.clientBound ? " (client-bound)" : ""} | ${num(r.p50Ms)} | ${num(r.p99Ms)} | ${num(r.fanoutPerSec)} | ${num(r.delivered)} / ${num(r.expectedDeliveries)} | ${num(r.errors)} | ${num(r.disconnects)} | ${num(r.serverCpuUsPerMsg)} | ${num(r.serverCores)} | ${num(r.clientCores)} | ${num(r.serverRssMiB)} |`,
    );
  }
  return lines.join("\n");
}

function idleTable(rows) {
  const lines = [
    "### Server RSS against idle connected sockets",
    "",
    "| server | idle sockets | client processes | server RSS MiB | RSS before MiB | KiB per idle socket |",
    "|---|---|---|---|---|---|",
  ];
  for (const r of rows) {
    if (r.error) lines.push(`| ${r.server} | ${num(r.target)} | failed: ${r.error.replace(/\|/g, "\\|").split("\n")[0]} ||||`);
    else lines.push(`| ${r.server} | ${num(r.idleSockets)} | ${num(r.clientProcesses)} | ${num(r.rssMiB)} | ${num(r.rssBeforeMiB)} | ${num(r.kibPerSocket)} |`);
  }
  return lines.join("\n");
}

async function main() {
  const cfg = parseArgs(process.argv.slice(2));
  const names = {};
  for (const s of cfg.servers) names[s] = s === "utalk" ? utalkName(cfg) : peerName();
  if (cfg.servers.includes("utalk") && !existsSync(cfg.utalk)) throw new Error(`no utalk binary at ${cfg.utalk}: build it or pass --utalk PATH`);
  const host = machine();
  const results = { conversations: [], subscribers: [], rss: [] };
  const started = Date.now();

  const jobs = [];
  if (cfg.curves.includes("conversations")) {
    for (const c of cfg.pointsConversations) jobs.push({ curve: "conversations", x: c, run: (k) => throughputPoint(cfg, k, c, 1, cfg.inflight) });
  }
  if (cfg.curves.includes("subscribers")) {
    for (const r of cfg.pointsSubscribers) {
      jobs.push({ curve: "subscribers", x: r, run: (k) => throughputPoint(cfg, k, cfg.subscriberConversations, r, cfg.subscriberInflight) });
    }
  }
  if (cfg.curves.includes("rss")) {
    for (const n of cfg.pointsIdle) jobs.push({ curve: "rss", x: n, run: (k) => idlePoint(cfg, k, n) });
  }
  // Servers alternate point by point, so that a slow spell of the machine does not fall on one server's whole curve.
  const steps = jobs.flatMap((j) => cfg.servers.map((kind) => ({ ...j, kind })));
  let failures = 0;
  for (const [i, step] of steps.entries()) {
    const what = { conversations: "conversations", subscribers: "receivers per conversation", rss: "idle sockets" }[step.curve];
    say(`[${i + 1}/${steps.length}] ${step.kind}: ${step.x} ${what} (${Math.round((Date.now() - started) / 1000)} s so far)`);
    try {
      results[step.curve].push({ server: names[step.kind], kind: step.kind, ...(await step.run(step.kind)) });
    } catch (e) {
      failures += 1;
      say(`  failed: ${e?.stack ?? e}`);
      const at = step.curve === "conversations" ? { conversations: step.x, receivers: 1 } : step.curve === "subscribers" ? { conversations: cfg.subscriberConversations, receivers: step.x } : { target: step.x };
      results[step.curve].push({ server: names[step.kind], kind: step.kind, ...at, error: String(e?.message ?? e) });
    }
  }

  // Charts, for the curves that ran.
  mkdirSync(cfg.out, { recursive: true });
  const serversLine = `Servers: ${cfg.servers.map((k) => names[k]).join("; ")} · ${host.commit}`;
  const machineLine = `${host.date} · ${host.cores} cores (${host.cpu}) shared by server and clients · Node.js ${host.node} · loopback, stock socket.io-client over websocket`;
  const hollowNote = "Hollow marker: client-bound (the client processes, not the server, held the rate back).";
  const throughputSeries = (rows, x) =>
    cfg.servers.flatMap((k) => {
      const ok = rows.filter((r) => r.kind === k && !r.error);
      return [
        { label: `${names[k]}: acked msg/s`, axis: "left", color: COLORS[k], points: ok.map((r) => ({ x: x(r), y: r.ackedPerSec, hollow: r.clientBound })) },
        { label: `${names[k]}: p99 ack ms`, axis: "right", color: COLORS[k], dashed: true, points: ok.map((r) => ({ x: x(r), y: r.p99Ms, hollow: r.clientBound })) },
      ];
    });
  const written = [];
  // A curve without one measured point would only erase the chart of an earlier run.
  const write = (file, rows, svg) => {
    const path = join(cfg.out, file);
    if (!rows.some((r) => !r.error)) return say(`not writing ${path}: no point of its curve was measured`);
    writeFileSync(path, svg);
    written.push(path);
  };
  // Acked msg/s and p99 against one variable, with what each point ran.
  const throughputChart = (file, rows, { title, xLabel, x, detail }) =>
    write(
      file,
      rows,
      chart({
        title,
        xLabel,
        leftLabel: "acked msg/s (solid)",
        rightLabel: "p99 ack ms (dashed)",
        series: throughputSeries(rows, x),
        caption: [serversLine, machineLine, detail, ...(rows.some((r) => r.clientBound) ? [hollowNote] : [])],
      }),
    );
  if (cfg.curves.includes("conversations")) {
    throughputChart("curves-throughput-conversations.svg", results.conversations, {
      title: "Acked messages/s and p99 ack latency against conversations",
      xLabel: "conversations (one receiver socket each)",
      x: (r) => r.conversations,
      detail: `${cfg.seconds} s per point, ${cfg.inflight} send${cfg.inflight > 1 ? "s" : ""} in flight per conversation and at most ${cfg.maxInflight} in all, ${cfg.textBytes}-byte texts, ≥ ${cfg.clients} client processes; one sender socket per conversation up to ${cfg.maxSenders}, then shared.`,
    });
  }
  if (cfg.curves.includes("subscribers")) {
    throughputChart("curves-throughput-subscribers.svg", results.subscribers, {
      title: "Acked messages/s and p99 ack latency against subscribers per conversation",
      xLabel: `receiver sockets per conversation (${cfg.subscriberConversations} conversations)`,
      x: (r) => r.receivers,
      detail: `${cfg.seconds} s per point, ${cfg.subscriberConversations} conversations with ${cfg.subscriberInflight} send${cfg.subscriberInflight > 1 ? "s" : ""} in flight each, ${cfg.textBytes}-byte texts, ≥ ${cfg.clients} client processes; each acked message is delivered to every receiver.`,
    });
  }
  if (cfg.curves.includes("rss")) {
    write(
      "curves-rss-idle.svg",
      results.rss,
      chart({
        title: "Server memory against idle connected sockets",
        xLabel: "idle connected sockets",
        leftLabel: "server RSS MiB (solid)",
        rightLabel: "KiB per idle socket (dashed)",
        series: cfg.servers.flatMap((k) => {
          const ok = results.rss.filter((r) => r.kind === k && !r.error);
          return [
            { label: `${names[k]}: RSS MiB`, axis: "left", color: COLORS[k], points: ok.map((r) => ({ x: r.idleSockets, y: r.rssMiB })) },
            { label: `${names[k]}: KiB per socket`, axis: "right", color: COLORS[k], dashed: true, points: ok.map((r) => ({ x: r.idleSockets, y: r.kibPerSocket })) },
          ];
        }),
        caption: [
          serversLine,
          machineLine,
          `Authenticated sockets that join nothing, at most ${cfg.maxSocketsPerClient} per client process (≥ ${cfg.clients} processes); RSS read 2 s after the last one connected; KiB per socket is the growth over the server's RSS before they connected, divided by their number.`,
        ],
      }),
    );
  }

  const tables = [];
  if (cfg.curves.includes("conversations")) tables.push(throughputTable("Throughput against conversations (one receiver each)", results.conversations));
  if (cfg.curves.includes("subscribers")) {
    tables.push(throughputTable(`Throughput against receivers per conversation (${cfg.subscriberConversations} conversations)`, results.subscribers));
  }
  if (cfg.curves.includes("rss")) tables.push(idleTable(results.rss));
  console.log(`\n${host.date}, ${host.cores} cores (${host.cpu}), Node.js ${host.node}, ${host.commit}\n`);
  console.log(tables.join("\n\n"));
  console.log(`\nCharts: ${written.join(", ") || "none"}\n`);
  console.log(JSON.stringify({ config: cfg, machine: host, servers: names, results }));
  say(`done in ${Math.round((Date.now() - started) / 1000)} s${failures ? `, ${failures} point(s) failed` : ""}`);
  if (failures) process.exitCode = 1;
}

main().catch((e) => {
  say(`error: ${e?.stack ?? e}`);
  process.exitCode = 1;
});
