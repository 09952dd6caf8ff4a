// One client process of the side-by-side load (compare.mjs forks several,
// so that the client is not the bottleneck). Given a server URL, a token
// and its share of conversation ids, it opens a sender and a receiver
// socket per conversation (the stock socket.io-client, websocket), joins
// both, keeps `inflight` sends outstanding per conversation for `seconds`,
// and reports to its parent: acks, ack latencies (ms), messages the
// receivers got, errors, and its own CPU time. With `idle`, it opens that
// many connected sockets, reports when they are all up, and holds them
// until told to stop.
import { io } from "socket.io-client";
import { randomUUID } from "node:crypto";

const cfg = JSON.parse(process.argv[2]);

function connect() {
  return new Promise((resolve, reject) => {
    const s = io(cfg.url, { auth: { token: cfg.token }, transports: ["websocket"], reconnection: false, forceNew: true });
    const t = setTimeout(() => reject(new Error("connect timeout")), 30000);
    s.once("connect", () => {
      clearTimeout(t);
      resolve(s);
    });
    s.once("connect_error", (e) => {
      clearTimeout(t);
      reject(e);
    });
  });
}

async function idle() {
  const sockets = [];
  for (let i = 0; i < cfg.idle; i += 50) {
    const batch = await Promise.all(Array.from({ length: Math.min(50, cfg.idle - i) }, connect));
    sockets.push(...batch);
  }
  process.send({ up: sockets.length });
  process.on("message", () => {
    for (const s of sockets) s.disconnect();
    process.exit(0);
  });
}

async function load() {
  const latencies = [];
  let acked = 0;
  let delivered = 0;
  let errors = 0;
  let sending = true;
  const pairs = [];
  for (const conv of cfg.conversations) {
    const [sender, receiver] = await Promise.all([connect(), connect()]);
    receiver.on("message:new", () => {
      delivered += 1;
    });
    for (const s of [sender, receiver]) {
      const joined = await s.timeout(30000).emitWithAck("conversation:join", { conversationId: conv });
      if (!joined?.ok) throw new Error(`join refused: ${JSON.stringify(joined)}`);
    }
    pairs.push({ conv, sender, receiver });
  }
  process.send({ ready: true });
  await new Promise((r) => process.once("message", r));
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  const text = "x".repeat(cfg.textBytes);
  const loops = [];
  for (const { conv, sender } of pairs) {
    for (let k = 0; k < cfg.inflight; k++) {
      loops.push(
        (async () => {
          while (sending) {
            const t0 = performance.now();
            try {
              const r = await sender.timeout(30000).emitWithAck("message:send", { conversationId: conv, messageId: randomUUID(), text });
              if (r?.ok) {
                acked += 1;
                latencies.push(performance.now() - t0);
              } else {
                errors += 1;
              }
            } catch {
              errors += 1;
            }
          }
        })(),
      );
    }
  }
  await new Promise((r) => setTimeout(r, cfg.seconds * 1000));
  sending = false;
  const elapsed = (performance.now() - started) / 1000;
  const ackedInWindow = acked;
  await Promise.all(loops);
  // Let the last fan-out arrive.
  await new Promise((r) => setTimeout(r, 500));
  const cpu = process.cpuUsage(cpu0);
  for (const { sender, receiver } of pairs) {
    sender.disconnect();
    receiver.disconnect();
  }
  // send() is asynchronous: exit once the report is out.
  process.send({ done: { acked: ackedInWindow, latencies, delivered, errors, elapsed, cpuMs: (cpu.user + cpu.system) / 1000 } }, () => process.exit(0));
}

(cfg.idle ? idle() : load()).catch((e) => {
  process.send({ error: String(e?.stack ?? e) }, () => process.exit(1));
});
