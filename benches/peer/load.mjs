// One client process of the side-by-side load (compare.mjs and curves.mjs
// fork several, so that the client is not the bottleneck). Given a server
// URL, a token and its share of conversation ids, it opens a sender and a
// receiver socket per conversation (the stock socket.io-client, websocket),
// joins both, keeps `inflight` sends outstanding per conversation for
// `seconds`, and reports to its parent: acks, ack latencies (ms), messages
// the receivers got, errors, and its own CPU time. With `idle`, it opens
// that many connected sockets, reports when they are all up, and holds them
// until told to stop.
//
// Optional fields, all absent for compare.mjs, which then gets the load
// described above (only the set-up runs BATCH connections at a time):
//   receivers              receiver sockets per conversation (default 1);
//                          every one joins and counts the deliveries it gets.
//   conversations[i]       may also be {id, send, receivers}: the receivers of
//                          one busy conversation can then be spread over
//                          several processes, its sender living in one.
//   conversationsPerSender one sender socket joins and sends to this many
//                          conversations (default 1), so that thousands of
//                          conversations fit under the per-process file limit
//                          of the server (an agent's socket serves many
//                          conversations, a customer's one).
//   maxInflight            bound on the sends outstanding in this process
//                          over all its conversations (default: unbounded,
//                          i.e. conversations × inflight).
//   quietMs                after sending, wait until the receivers got nothing
//                          for this long (at most 30 s) instead of a fixed
//                          500 ms, so that a wide fan-out is counted whole.
import { io } from "socket.io-client";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";

// The configuration as JSON, or `@file` holding it: thousands of
// conversation ids do not fit in one command-line argument (128 KiB).
const arg = process.argv[2];
const cfg = JSON.parse(arg.startsWith("@") ? readFileSync(arg.slice(1), "utf8") : arg);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// Connections and joins are set up this many at a time: fast, yet well
// below the server's limit of unauthenticated sessions per address.
const BATCH = 50;

// The parent is gone (it was killed, or it failed): leave no orphan behind.
process.on("disconnect", () => process.exit(0));

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

async function join(s, conversationId) {
  const joined = await s.timeout(30000).emitWithAck("conversation:join", { conversationId });
  if (!joined?.ok) throw new Error(`join refused: ${JSON.stringify(joined)}`);
}

// Runs make(0..n-1), BATCH at a time, and returns the results in order.
async function inBatches(n, make) {
  const out = [];
  for (let i = 0; i < n; i += BATCH) {
    out.push(...(await Promise.all(Array.from({ length: Math.min(BATCH, n - i) }, (_, k) => make(i + k)))));
  }
  return out;
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
  // Sockets the server closed during the run (say as slow consumers): their
  // deliveries are missing from `delivered`, and this says why.
  let disconnects = 0;
  let closing = false;
  let sending = true;
  const sockets = [];
  const watch = (s) => {
    sockets.push(s);
    s.on("disconnect", () => {
      if (!closing) disconnects += 1;
    });
    return s;
  };

  const entries = cfg.conversations.map((c) =>
    typeof c === "string" ? { id: c, send: true, receivers: cfg.receivers ?? 1 } : { send: true, receivers: cfg.receivers ?? 1, ...c },
  );
  const receiving = entries.flatMap((e) => Array.from({ length: e.receivers }, () => e.id));
  await inBatches(receiving.length, async (i) => {
    const receiver = watch(await connect());
    receiver.on("message:new", () => {
      delivered += 1;
    });
    await join(receiver, receiving[i]);
  });
  const sent = entries.filter((e) => e.send).map((e) => e.id);
  const perSender = Math.max(1, cfg.conversationsPerSender ?? 1);
  const groups = Array.from({ length: Math.ceil(sent.length / perSender) }, (_, g) => sent.slice(g * perSender, (g + 1) * perSender));
  const pairs = (
    await inBatches(groups.length, async (g) => {
      const sender = watch(await connect());
      for (const conv of groups[g]) await join(sender, conv);
      return groups[g].map((conv) => ({ conv, sender }));
    })
  ).flat();
  process.send({ ready: true });
  await new Promise((r) => process.once("message", r));
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  const text = "x".repeat(cfg.textBytes);

  // In-flight slots: `inflight` per conversation, queued round-robin over the
  // conversations. A sending loop takes the oldest free slot, sends on it and
  // puts it back once acked, so no conversation ever has more than `inflight`
  // sends outstanding and the process no more than `maxInflight`. Without a
  // bound there is one loop per slot and each keeps its own conversation,
  // exactly one send after another per slot.
  const capacity = pairs.length * cfg.inflight;
  const slots = new Array(capacity);
  for (let k = 0; k < cfg.inflight; k++) pairs.forEach((p, c) => (slots[k * pairs.length + c] = p));
  let head = 0;
  let free = capacity;
  const take = () => {
    const p = slots[head];
    head = (head + 1) % capacity;
    free -= 1;
    return p;
  };
  const give = (p) => {
    slots[(head + free) % capacity] = p;
    free += 1;
  };
  const loopCount = Math.min(capacity, cfg.maxInflight ?? Infinity);
  const loops = Array.from({ length: loopCount }, async () => {
    let p = take();
    while (sending) {
      const t0 = performance.now();
      try {
        const r = await p.sender.timeout(30000).emitWithAck("message:send", { conversationId: p.conv, messageId: randomUUID(), text });
        if (r?.ok) {
          acked += 1;
          latencies.push(performance.now() - t0);
        } else {
          errors += 1;
        }
      } catch {
        errors += 1;
      }
      give(p);
      p = take();
    }
  });
  await sleep(cfg.seconds * 1000);
  sending = false;
  const elapsed = (performance.now() - started) / 1000;
  const ackedInWindow = acked;
  await Promise.all(loops);
  // Let the last fan-out arrive.
  if (cfg.quietMs) {
    const until = performance.now() + 30000;
    let before;
    do {
      before = delivered;
      await sleep(cfg.quietMs);
    } while (delivered !== before && performance.now() < until);
  } else {
    await sleep(500);
  }
  const cpu = process.cpuUsage(cpu0);
  closing = true;
  for (const s of sockets) s.disconnect();
  // send() is asynchronous: exit once the report is out.
  process.send(
    {
      done: {
        acked: ackedInWindow,
        latencies,
        delivered,
        errors,
        elapsed,
        cpuMs: (cpu.user + cpu.system) / 1000,
        disconnects,
        sockets: sockets.length,
        inflight: loopCount,
      },
    },
    () => process.exit(0),
  );
}

(cfg.idle ? idle() : load()).catch((e) => {
  process.send({ error: String(e?.stack ?? e) }, () => process.exit(1));
});
