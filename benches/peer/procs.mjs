// What compare.mjs and curves.mjs share about the server processes they
// measure: starting one and knowing its address, stopping it, and reading
// its CPU time and memory from /proc.
import { spawn, fork, execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

// utalk's settings under the benchmarks. Every client is on 127.0.0.1: the
// per-address limits that guard a real server would throttle the load itself.
export const UTALK_BENCH_ENV = {
  UTALK_LOG: "info",
  UTALK_HTTP__REQUESTS_PER_MINUTE: "10000000",
  UTALK_SOCKET__MAX_SESSIONS: "50000",
  UTALK_SOCKET__MAX_ANONYMOUS_SESSIONS_PER_IP: "100000",
};

// Microseconds per clock tick of /proc/<pid>/stat.
export const TICK_US = 1e6 / Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim() || 100);

// User and system CPU time of `pid`, in clock ticks.
export function cpuTicks(pid) {
  // utime and stime are fields 14 and 15; the command name may hold spaces, so split after ")".
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return Number(f[11]) + Number(f[12]);
}

// Resident memory of `pid`, in KiB.
export function rssKb(pid) {
  return Number(readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+) kB/)[1]);
}

// Starts a server that prints {"addr": "..."} on stdout once listening, and
// resolves to {child, url}. `live`, when given, holds the child until it
// exits, so that the caller can kill whatever is left on its way out.
export function startServer(cmd, argv, env, live) {
  return new Promise((resolveStart, reject) => {
    const child = spawn(cmd, argv, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "inherit"] });
    if (live) {
      live.add(child);
      child.once("exit", () => live.delete(child));
    }
    let buf = "";
    const t = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${cmd} did not start within 60 s`));
    }, 60000);
    child.stdout.on("data", (d) => {
      buf += d;
      const m = buf.match(/"addr":"([^"]+)"/);
      if (m) {
        clearTimeout(t);
        // Keep reading its log so that it never blocks on a full pipe.
        child.stdout.removeAllListeners("data");
        child.stdout.resume();
        resolveStart({ child, url: `http://${m[1]}` });
      }
    });
    child.once("error", (e) => {
      clearTimeout(t);
      reject(e);
    });
    child.once("exit", (code) => {
      clearTimeout(t);
      reject(new Error(`${cmd} exited with ${code}`));
    });
  });
}

// Starts utalk `bin` on a new data directory under `dir` with one agent,
// logs in, and resolves to {server, token, headers}.
export async function startUtalk(bin, dir, env = {}) {
  const data = join(dir, "data");
  execFileSync(bin, ["user", "add", "--data-dir", data, "--email", "bench@example.com", "--role", "agent", "--password-stdin"], {
    input: "a-long-bench-password\n",
    env: { ...process.env, ...UTALK_BENCH_ENV },
  });
  const server = await startServer(bin, ["serve", "--listen", "127.0.0.1:0", "--data-dir", data], { ...UTALK_BENCH_ENV, ...env });
  const login = await fetch(`${server.url}/api/v1/auth/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email: "bench@example.com", password: "a-long-bench-password" }),
  }).then((r) => r.json());
  // Access tokens last 15 minutes by default, longer than any run here.
  const token = login.accessToken;
  return { server, token, headers: { "content-type": "application/json", authorization: `Bearer ${token}` } };
}

// Stops a server: SIGTERM, then SIGKILL if it is still there 10 s later.
export function stopServer(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((done) => {
    child.once("exit", done);
    child.kill("SIGTERM");
    setTimeout(() => child.kill("SIGKILL"), 10000).unref();
  });
}

// One load.mjs client process given `payload`; `next()` resolves to its next report.
export function worker(payload) {
  const w = fork(join(here, "load.mjs"), [JSON.stringify(payload)], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const next = () =>
    new Promise((resolve, reject) => {
      w.once("message", (m) => (m.error ? reject(new Error(m.error)) : resolve(m)));
      w.once("exit", (code) => code && reject(new Error(`a client process exited with ${code}`)));
    });
  return { w, next };
}

// The `p`th percentile of the ascending `sorted`.
export function percentile(sorted, p) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : NaN;
}
