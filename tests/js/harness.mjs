// Starts the real utalk binary on a free loopback port with a temp data dir.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir, homedir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { randomUUID } from "node:crypto";

export const BIN = process.env.UTALK_BIN || join(process.env.CARGO_TARGET_DIR || join(homedir(), ".cache/utalk/target"), "debug/utalk");

export const ADMIN = { email: "admin@example.com", password: "admin-password-1" };
export const AGENT = { email: "agent@example.com", password: "agent-password-1" };

function addUser(dataDir, user, role, bin = BIN) {
  const r = spawnSync(bin, ["user", "add", "--email", user.email, "--role", role, "--password-stdin", "--data-dir", dataDir], {
    input: user.password + "\n",
    env: { ...process.env, UTALK_LOG: "warn" },
  });
  if (r.status !== 0) throw new Error(`user add failed: ${r.stderr}`);
}

// Starts a server; `reuse` (a stopped server's `dir`) restarts on its data;
// `bin` runs another utalk binary (an older release's) instead of this build;
// `listen` picks the address (a restart on the same port), by default a free port.
export async function startServer(env = {}, { reuse, bin = BIN, listen = "127.0.0.1:0" } = {}) {
  const dir = reuse ?? mkdtempSync(join(tmpdir(), "utalk-js-"));
  const dataDir = join(dir, "data");
  if (!reuse) {
    addUser(dataDir, ADMIN, "admin", bin);
    addUser(dataDir, AGENT, "agent", bin);
  }
  const child = spawn(bin, ["serve", "--listen", listen, "--data-dir", dataDir], {
    env: { ...process.env, UTALK_LOG: "info", UTALK_HTTP__WORKERS: "2", ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const logs = [];
  const base = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("server did not say where it listens")), 60000);
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
    child.on("exit", (code) => reject(new Error(`server exited with ${code}`)));
  });
  const server = {
    base,
    logs,
    dir,
    // SIGKILL, keeping the data for a restart.
    async kill() {
      child.kill("SIGKILL");
      await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.on("exit", r)));
    },
    // SIGTERM, as an operator stops it (requests finish, the writer flushes);
    // resolves with the exit code, keeping the data.
    async term() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        await new Promise((r) => child.on("exit", r));
      }
      return child.exitCode;
    },
    async stop() {
      await server.kill();
      rmSync(dir, { recursive: true, force: true });
    },
    async api(method, path, { token, body } = {}) {
      const res = await fetch(base + path, {
        method,
        headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null };
    },
    async login(user) {
      const r = await server.api("POST", "/api/v1/auth/login", { body: user });
      if (r.status !== 200) throw new Error(`login failed: ${JSON.stringify(r.body)}`);
      return r.body;
    },
    // Switches the bot off (or on), so tests about other things see only their own messages.
    async setBot(enabled, changes = {}) {
      const admin = await server.login(ADMIN);
      const cur = await server.api("GET", "/api/v1/ai/config", { token: admin.accessToken });
      const { updatedAt, updatedBy, ...rest } = cur.body;
      const r = await server.api("PUT", "/api/v1/ai/config", { token: admin.accessToken, body: { ...rest, enabled, ...changes } });
      if (r.status !== 200) throw new Error(`ai config failed: ${JSON.stringify(r.body)}`);
      return r.body;
    },
    async conversation(token) {
      const r = await server.api("POST", "/api/v1/conversations", { token, body: { channel: "api", customer: { name: "Ana" } } });
      if (r.status !== 201) throw new Error(`create failed: ${JSON.stringify(r.body)}`);
      return r.body.id;
    },
  };
  return server;
}

export function once(emitter, event, ms = 10000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out waiting for ${event}`)), ms);
    emitter.once(event, (...args) => {
      clearTimeout(t);
      resolve(args.length > 1 ? args : args[0]);
    });
  });
}

// Waits until `fn` (sync or async) gives a truthy value and returns it; the
// error names `what` and the last value seen.
export async function until(fn, what = "condition", ms = 20000) {
  const start = Date.now();
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function waitFor(predicate, ms = 10000, what = "condition") {
  return new Promise((resolve, reject) => {
    const start = Date.now();
    const tick = () => {
      const v = predicate();
      if (v) return resolve(v);
      if (Date.now() - start > ms) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 20);
    };
    tick();
  });
}

export const uuid = randomUUID;
