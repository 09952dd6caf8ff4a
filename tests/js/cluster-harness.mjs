// Three real NATS JetStream servers on loopback, clustered, and utalk nodes
// joined to them, each node with its own data directory.
import { spawn } from "node:child_process";
import { accessSync, closeSync, constants, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { connect as tcpConnect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { createInterface } from "node:readline";
import { randomBytes } from "node:crypto";
import { BIN, ADMIN, AGENT } from "./harness.mjs";

// Shards the cluster spreads over its nodes.
export const SHARDS = 64;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Every child started here, killed if the test process goes away first.
const children = new Set();
process.on("exit", () => {
  for (const c of children) {
    try {
      c.kill("SIGKILL");
    } catch {}
  }
});

function track(child) {
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

function exited(child) {
  return new Promise((resolve) => {
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once("exit", () => resolve());
    child.once("error", () => resolve());
  });
}

async function killChild(child) {
  if (!child) return;
  if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  await exited(child);
  children.delete(child);
}

function isExecutable(path) {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

// The nats-server binary: `NATS_SERVER_BIN` (scripts/test installs it), else
// `nats-server` on the PATH. Throws, saying how to get one, when there is none.
export function natsServerBin() {
  const configured = process.env.NATS_SERVER_BIN;
  if (configured) {
    if (!isExecutable(configured)) {
      throw new Error(`NATS_SERVER_BIN=${configured} is not an executable file: point it at a nats-server binary (scripts/test installs one)`);
    }
    return configured;
  }
  for (const dir of (process.env.PATH || "").split(delimiter)) {
    if (dir && isExecutable(join(dir, "nats-server"))) return join(dir, "nats-server");
  }
  throw new Error(
    "nats-server not found: NATS_SERVER_BIN is not set and there is no nats-server on the PATH. " +
      "The cluster tests need a real NATS server: run scripts/test (it installs nats-server) or set NATS_SERVER_BIN.",
  );
}

// `n` distinct free loopback ports (held together while picked, so none repeats).
export async function freePorts(n) {
  const servers = [];
  try {
    for (let i = 0; i < n; i++) {
      const s = createServer();
      await new Promise((resolve, reject) => {
        s.once("error", reject);
        s.listen(0, "127.0.0.1", resolve);
      });
      servers.push(s);
    }
    return servers.map((s) => s.address().port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(() => r()))));
  }
}

function tail(path, lines = 30) {
  try {
    return readFileSync(path, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

// A three-server JetStream cluster with `sync_interval: always`, waited on
// until every server answers `/healthz` (JetStream current).
export async function startNats({ size = 3 } = {}) {
  const bin = natsServerBin();
  const dir = mkdtempSync(join(tmpdir(), "utalk-nats-"));
  const ports = await freePorts(size * 3);
  const servers = Array.from({ length: size }, (_, i) => ({
    name: `n${i}`,
    client: ports[3 * i],
    http: ports[3 * i + 1],
    cluster: ports[3 * i + 2],
    config: join(dir, `n${i}.conf`),
    log: join(dir, `n${i}.log`),
    child: null,
  }));
  const routes = servers.map((s) => `nats-route://127.0.0.1:${s.cluster}`);
  for (const [i, s] of servers.entries()) {
    writeFileSync(
      s.config,
      [
        `server_name: n${i}`,
        `listen: 127.0.0.1:${s.client}`,
        `http: 127.0.0.1:${s.http}`,
        "jetstream {",
        `  store_dir: ${JSON.stringify(join(dir, `n${i}`))}`,
        "  sync_interval: always",
        "  max_memory_store: 256MB",
        "  max_file_store: 2GB",
        "}",
        "cluster {",
        "  name: utalk",
        `  listen: 127.0.0.1:${s.cluster}`,
        "  routes: [",
        ...routes.map((r) => `    ${r}`),
        "  ]",
        "}",
        "",
      ].join("\n"),
    );
  }

  const nats = {
    dir,
    servers,
    // The comma-separated URLs of all the servers.
    urls: servers.map((s) => `nats://127.0.0.1:${s.client}`).join(","),
    spawn(i) {
      const s = servers[i];
      const out = openSync(s.log, "a");
      try {
        s.child = track(spawn(bin, ["-c", s.config], { stdio: ["ignore", out, out] }));
      } finally {
        closeSync(out);
      }
      s.child.on("error", (e) => {
        s.error = e;
      });
    },
    // Waits until each of `which` answers `/healthz` with 200.
    async waitHealthy(which = servers.map((_, i) => i), ms = 60000) {
      const until = Date.now() + ms;
      for (const i of which) {
        const s = servers[i];
        for (;;) {
          if (s.error) throw new Error(`cannot start ${bin} (${s.error.message}): run scripts/test, which installs nats-server, or set NATS_SERVER_BIN`);
          if (s.child && (s.child.exitCode !== null || s.child.signalCode !== null)) {
            throw new Error(`NATS server ${s.name} exited (${s.child.exitCode ?? s.child.signalCode}):\n${tail(s.log)}`);
          }
          try {
            const r = await fetch(`http://127.0.0.1:${s.http}/healthz`);
            await r.arrayBuffer();
            if (r.status === 200) break;
          } catch {}
          if (Date.now() > until) throw new Error(`NATS server ${s.name} did not become healthy:\n${tail(s.log)}`);
          await sleep(100);
        }
      }
    },
    // Kills server `i` with SIGKILL.
    async kill(i) {
      await killChild(servers[i].child);
      servers[i].child = null;
    },
    // Starts server `i` again on its data.
    async restart(i) {
      nats.spawn(i);
      await nats.waitHealthy([i]);
    },
    async stop() {
      await Promise.all(servers.map((_, i) => nats.kill(i)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    for (let i = 0; i < size; i++) nats.spawn(i);
    await nats.waitHealthy();
  } catch (e) {
    await nats.stop();
    throw e;
  }
  return nats;
}

async function request(base, method, path, { token, body } = {}) {
  const res = await fetch(base + path, {
    method,
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = text;
    }
  }
  return { status: res.status, body: parsed };
}

// Starts one utalk node on a free loopback port with `dataDir` as its own
// data directory. Unlike harness.mjs's startServer it adds no users: in a
// cluster they come from the cluster's log (addClusterUser).
export async function startNode(env = {}, { dataDir } = {}) {
  if (!dataDir) throw new Error("startNode needs a dataDir of its own");
  mkdirSync(dataDir, { recursive: true });
  const child = track(
    spawn(BIN, ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir], {
      env: { ...process.env, UTALK_LOG: "info", UTALK_HTTP__WORKERS: "2", ...env },
      stdio: ["ignore", "pipe", "inherit"],
    }),
  );
  const logs = [];
  let base;
  try {
    base = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`node ${env.UTALK_NODE_ID ?? ""} did not say where it listens`)), 90000);
      createInterface({ input: child.stdout }).on("line", (line) => {
        logs.push(line);
        try {
          const v = JSON.parse(line);
          if (v.addr) {
            clearTimeout(timer);
            resolve(`http://${v.addr}`);
          }
        } catch {}
      });
      child.on("error", (e) => {
        clearTimeout(timer);
        reject(new Error(`cannot start ${BIN}: ${e.message}`));
      });
      child.on("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`node ${env.UTALK_NODE_ID ?? ""} exited with ${code ?? signal}:\n${logs.slice(-20).join("\n")}`));
      });
    });
  } catch (e) {
    await killChild(child);
    throw e;
  }
  const node = {
    base,
    logs,
    dataDir,
    nodeId: env.UTALK_NODE_ID,
    child,
    api: (method, path, opts) => request(base, method, path, opts),
    async login(user) {
      const r = await node.api("POST", "/api/v1/auth/login", { body: user });
      if (r.status !== 200) throw new Error(`login on ${node.nodeId} failed (${r.status}): ${JSON.stringify(r.body)}`);
      return r.body;
    },
    async conversation(token) {
      const r = await node.api("POST", "/api/v1/conversations", { token, body: { channel: "api", customer: { name: "Ana" } } });
      if (r.status !== 201) throw new Error(`create on ${node.nodeId} failed (${r.status}): ${JSON.stringify(r.body)}`);
      return r.body.id;
    },
    // `GET /health/cluster`.
    async health() {
      return (await node.api("GET", "/health/cluster")).body;
    },
    // SIGKILL, keeping the data.
    async kill() {
      await killChild(child);
    },
  };
  return node;
}

function run(cmd, args, { input, env, timeout = 120000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = track(spawn(cmd, args, { env, stdio: ["pipe", "pipe", "pipe"] }));
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeout);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr });
    });
    child.stdin.end(input ?? "");
  });
}

// Adds a staff user through the cluster: `utalk user add` with
// `UTALK_CLUSTER_URL` appends the user to the cluster's log (it does not open
// `dataDir`, which is only there because the command names one).
export async function addClusterUser(urls, user, role, { dataDir } = {}) {
  const dir = dataDir ?? join(mkdtempSync(join(tmpdir(), "utalk-cli-")), "data");
  const r = await run(BIN, ["user", "add", "--email", user.email, "--role", role, "--password-stdin", "--data-dir", dir], {
    input: user.password + "\n",
    env: { ...process.env, UTALK_LOG: "warn", UTALK_CLUSTER_URL: urls },
  });
  if (r.status !== 0) throw new Error(`user add ${user.email} through the cluster failed (${r.status ?? r.signal}): ${r.stderr}${r.stdout}`);
}

function shardsSettled(healths, size) {
  if (!healths.every((h) => h && typeof h === "object" && h.mode === "nats" && h.nats?.connected === true)) return false;
  if (!healths.every((h) => Array.isArray(h.liveNodes) && h.liveNodes.length === size)) return false;
  const owned = healths.map((h) => h.ownedShards ?? []);
  const all = new Set(owned.flat());
  const total = owned.reduce((n, o) => n + o.length, 0);
  return all.size === SHARDS && total === SHARDS && owned.every((o) => o.length > 0);
}

// Waits until every node sees all of them live and their shards cover the
// 64 shards, each owned by exactly one node, every node owning some.
export async function waitForCluster(nodes, ms = 90000) {
  const until = Date.now() + ms;
  let last;
  for (;;) {
    last = await Promise.all(nodes.map((n) => n.health().catch((e) => ({ error: String(e) }))));
    if (shardsSettled(last, nodes.length)) return last;
    if (Date.now() > until) throw new Error(`the cluster never settled: ${JSON.stringify(last)}`);
    await sleep(200);
  }
}

// Waits until `user` can log in on every node. Nodes apply the log on their
// own; a failed login counts against the account's throttle, so this tries
// only a few times per node, spaced out.
export async function waitForLogin(nodes, user) {
  for (const node of nodes) {
    let last;
    for (const wait of [0, 300, 1000, 3000]) {
      await sleep(wait);
      last = await node.api("POST", "/api/v1/auth/login", { body: user });
      if (last.status === 200) break;
    }
    if (last.status !== 200) throw new Error(`${user.email} cannot log in on ${node.nodeId}: ${last.status} ${JSON.stringify(last.body)}`);
  }
}

// NATS, then `size` nodes (n1, n2, …) with a shared token secret and a short
// lease, waited on until the shards are spread; then ADMIN and AGENT are added
// through the cluster and can log in on every node.
export async function startCluster({ size = 3, leaseMs = 3000, env = {} } = {}) {
  const root = mkdtempSync(join(tmpdir(), "utalk-cluster-"));
  const secret = "k3J9xQ2vL8mN4pR7" + randomBytes(16).toString("hex");
  const cluster = {
    root,
    secret,
    nats: null,
    nodes: [],
    async stop() {
      await Promise.all(cluster.nodes.map((n) => n.kill()));
      if (cluster.nats) await cluster.nats.stop();
      if (existsSync(root)) rmSync(root, { recursive: true, force: true });
    },
  };
  try {
    cluster.nats = await startNats();
    const urls = cluster.nats.urls;
    const started = await Promise.allSettled(
      Array.from({ length: size }, (_, i) =>
        startNode(
          {
            UTALK_CLUSTER_URL: urls,
            UTALK_NODE_ID: `n${i + 1}`,
            UTALK_CLUSTER__LEASE_MS: String(leaseMs),
            UTALK_CLUSTER__FORWARD_TIMEOUT_MS: "8000",
            UTALK_JWT_SECRET: secret,
            ...env,
          },
          { dataDir: join(root, `n${i + 1}`, "data") },
        ),
      ),
    );
    cluster.nodes = started.filter((s) => s.status === "fulfilled").map((s) => s.value);
    const failed = started.find((s) => s.status === "rejected");
    if (failed) throw failed.reason;
    await waitForCluster(cluster.nodes);
    await addClusterUser(urls, ADMIN, "admin", { dataDir: join(root, "cli", "data") });
    await addClusterUser(urls, AGENT, "agent", { dataDir: join(root, "cli", "data") });
    await waitForLogin(cluster.nodes, ADMIN);
    await waitForLogin(cluster.nodes, AGENT);
  } catch (e) {
    await cluster.stop();
    throw e;
  }
  return cluster;
}

// A plain TCP proxy on a free loopback port, standing in for a load balancer
// in front of the nodes: each accepted connection is piped to the current
// target (`http://host:port`). `switchTo(base)` points it at another target
// and cuts every connection piped so far, on both sides, as when a node is
// drained; with `{ paused: true }` new connections are held, unanswered,
// until `resume()`. `targets` lists, in order, where each connection went.
export async function startProxy(target) {
  let current = new URL(target);
  let paused = false;
  const held = new Set();
  const piped = new Set();
  const targets = [];

  function pipeTo(client) {
    const to = current;
    targets.push(to.origin);
    const upstream = tcpConnect({ host: to.hostname, port: Number(to.port) });
    const pair = { client, upstream };
    piped.add(pair);
    const cut = () => {
      piped.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", cut).on("close", cut);
    upstream.on("error", cut).on("close", cut);
    client.pipe(upstream);
    upstream.pipe(client);
  }

  const server = createServer((client) => {
    if (!paused) return pipeTo(client);
    // Not read from until resume(): what the client sends waits in the socket.
    held.add(client);
    const drop = () => {
      held.delete(client);
      client.destroy();
    };
    client.on("error", drop).on("close", drop);
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });

  const proxy = {
    base: `http://127.0.0.1:${server.address().port}`,
    targets,
    get target() {
      return current.origin;
    },
    switchTo(base, { paused: pause = false } = {}) {
      current = new URL(base);
      paused = pause;
      for (const { client, upstream } of [...piped]) {
        client.destroy();
        upstream.destroy();
      }
      piped.clear();
    },
    // Pipes the held connections to the current target, and new ones from now on.
    resume() {
      paused = false;
      for (const client of [...held]) {
        held.delete(client);
        client.removeAllListeners("error").removeAllListeners("close");
        if (client.destroyed) continue;
        pipeTo(client);
      }
    },
    async close() {
      for (const client of held) client.destroy();
      held.clear();
      for (const { client, upstream } of piped) {
        client.destroy();
        upstream.destroy();
      }
      piped.clear();
      await new Promise((r) => server.close(() => r()));
    },
  };
  return proxy;
}
