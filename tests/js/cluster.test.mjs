// Three utalk nodes over a real three-server NATS JetStream cluster, driven
// with the stock socket.io-client: what one node accepts reaches the sockets
// of every other node, once and in seq order.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { randomBytes } from "node:crypto";
import twilio from "twilio";
import { startFakeTwilio } from "./fake-twilio.mjs";
import { uuid, ADMIN, AGENT } from "./harness.mjs";
import { startCluster, startProxy, sleep, SHARDS } from "./cluster-harness.mjs";

const ACCOUNT_SID = "AC" + "0123456789abcdef".repeat(2);
const AUTH_TOKEN = "test-auth-token-" + randomBytes(8).toString("hex");
const PUBLIC_URL = "https://chat.example.test";
let fake;

// One cluster for the file, started by the first test that needs it, with a
// local stand-in for Twilio's API. Without nats-server every test fails with
// the message saying how to get one.
let starting;
const cluster = () =>
  (starting ??= (async () => {
    fake = await startFakeTwilio({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN });
    return startCluster({
      size: 3,
      leaseMs: 3000,
      env: {
        UTALK_TWILIO_ACCOUNT_SID: ACCOUNT_SID,
        UTALK_TWILIO_AUTH_TOKEN: AUTH_TOKEN,
        UTALK_TWILIO_FROM: "whatsapp:+14155238886",
        UTALK_TWILIO_API_BASE: fake.base,
        UTALK_PUBLIC_URL: PUBLIC_URL,
      },
    });
  })());

const sockets = [];

after(async () => {
  for (const s of sockets) s.close();
  if (starting) {
    const c = await starting.catch(() => null);
    await c?.stop();
  }
  await fake?.close();
});

const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

function connect(node, token, opts = {}) {
  const s = io(node.base, { auth: { token }, forceNew: true, reconnectionDelay: 100, reconnectionDelayMax: 200, ...opts });
  sockets.push(s);
  return s;
}

function connected(socket, ms = 20000) {
  if (socket.connected) return Promise.resolve(socket);
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("timed out waiting for connect")), ms);
    socket.once("connect", () => {
      clearTimeout(t);
      resolve(socket);
    });
    socket.once("connect_error", (e) => {
      clearTimeout(t);
      reject(new Error(`connect_error: ${e.message}`));
    });
  });
}

const ack = (socket, event, payload) => socket.timeout(15000).emitWithAck(event, payload);

async function eventually(check, ms, what) {
  const until = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

// A conversation opened through another node reaches this node's copy shortly
// after, so a join may answer not_found for a moment; anything else is final.
async function join(socket, conversationId, sinceSeq) {
  const payload = sinceSeq === undefined ? { conversationId } : { conversationId, sinceSeq };
  const until = Date.now() + 10000;
  for (;;) {
    const r = await ack(socket, "conversation:join", payload);
    if (r.ok) return r;
    if (r.error?.code !== "not_found" || Date.now() > until) assert.fail(`conversation:join answered ${JSON.stringify(r)}`);
    await sleep(50);
  }
}

// Sends over REST; a 503 is retried with the same messageId, as the API says is safe.
async function post(node, token, conversationId, text) {
  const messageId = uuid();
  const until = Date.now() + 15000;
  for (let retry = false; ; retry = true) {
    const r = await node.api("POST", `/api/v1/conversations/${conversationId}/messages`, { token, body: { messageId, text } });
    if (r.status === 201 || (retry && r.status === 200)) {
      assert.equal(r.body.id, messageId);
      return r.body;
    }
    if (r.status !== 503 || Date.now() > until) assert.fail(`POST message on ${node.nodeId} answered ${r.status}: ${JSON.stringify(r.body)}`);
    await sleep(100);
  }
}

// Sends over a socket and waits for the ack; retryable refusals are retried with the same messageId.
async function send(socket, conversationId, text) {
  const messageId = uuid();
  const until = Date.now() + 15000;
  for (;;) {
    const r = await ack(socket, "message:send", { conversationId, messageId, text });
    if (r.ok) {
      assert.equal(r.message.id, messageId);
      return r.message;
    }
    const retryable = ["overloaded", "conversation_restarted", "storage_unavailable"].includes(r.error?.code);
    if (!retryable || Date.now() > until) assert.fail(`message:send answered ${JSON.stringify(r)}`);
    await sleep(100);
  }
}

function collect(socket, conversationId) {
  const got = [];
  socket.on("message:new", ({ message }) => {
    if (message.conversationId === conversationId) got.push(message);
  });
  return got;
}

// The shard of a conversation: FNV-1a over the id's 16 bytes, as the server computes it.
function shardOf(id) {
  const hex = id.replace(/-/g, "");
  let h = 0x811c9dc5;
  for (let i = 0; i < 32; i += 2) {
    h ^= parseInt(hex.slice(i, i + 2), 16);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % SHARDS;
}

// Posts a signed inbound WhatsApp message from `number` to `node`, as Twilio would.
async function inbound(node, number, text) {
  const params = {
    MessageSid: "SM" + randomBytes(16).toString("hex"),
    AccountSid: ACCOUNT_SID,
    From: `whatsapp:${number}`,
    To: "whatsapp:+14155238886",
    Body: text,
    ProfileName: "Ana",
    NumMedia: "0",
  };
  const path = "/webhooks/twilio/whatsapp";
  const sig = twilio.getExpectedTwilioSignature(AUTH_TOKEN, PUBLIC_URL + path, params);
  const res = await fetch(node.base + path, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", "x-twilio-signature": sig },
    body: new URLSearchParams(params).toString(),
  });
  assert.equal(res.status, 200, `${node.nodeId}: ${await res.text()}`);
}

// The WhatsApp conversations of `number` on `node`'s copy.
async function conversationsOf(node, token, number) {
  const found = [];
  let next = null;
  do {
    const r = await node.api("GET", "/api/v1/conversations?limit=200" + (next ? `&cursor=${next}` : ""), { token });
    assert.equal(r.status, 200);
    found.push(...r.body.items.filter((c) => c.channel === "whatsapp" && c.customer.phone === number));
    next = r.body.nextCursor;
  } while (next);
  return found;
}

test("first messages from a new number reaching three nodes at once open one conversation", { timeout: 300000 }, async () => {
  const { nodes } = await cluster();
  const admin = await nodes[0].login(ADMIN);
  for (let round = 0; round < 3; round++) {
    const number = "+52155" + String(Math.floor(Math.random() * 1e8)).padStart(8, "0");
    const texts = nodes.map((n) => `first via ${n.nodeId} (${round})`);
    await Promise.all(nodes.map((n, i) => inbound(n, number, texts[i])));
    for (const n of nodes) {
      const convs = await eventually(async () => {
        const c = await conversationsOf(n, admin.accessToken, number);
        return c.length > 0 && c;
      }, 10000, `${number}'s conversation on ${n.nodeId}`);
      assert.equal(convs.length, 1, `one conversation for ${number} on ${n.nodeId}: ${JSON.stringify(convs.map((c) => c.id))}`);
      const inConv = await eventually(async () => {
        const r = await n.api("GET", `/api/v1/conversations/${convs[0].id}/messages?limit=200`, { token: admin.accessToken });
        const got = r.body.items.filter((m) => m.direction === "inbound").map((m) => m.text);
        return got.length === texts.length && got;
      }, 10000, `the three first messages on ${n.nodeId}`);
      assert.deepEqual([...inConv].sort(), [...texts].sort());
    }
  }
});

// First in the file, so that no other test's socket puts an agent online on node 1.
test("an escalation owned by node 1 goes to an agent online only on node 3", { timeout: 300000 }, async () => {
  const {
    nodes: [n1, , n3],
  } = await cluster();
  const admin = await n1.login(ADMIN);
  const agent = await n3.login(AGENT);
  const socket = await connected(connect(n3, agent.accessToken, { transports: ["websocket"] }));
  // Staff news of conversations node 1 writes, heard on node 3 without joining.
  const news = [];
  for (const name of ["conversation:new", "conversation:updated", "conversation:assigned"]) {
    socket.on(name, ({ conversation }) => news.push({ name, conversation }));
  }
  const heard = (conv, name, pred = () => true) => news.filter((e) => e.name === name && e.conversation.id === conv && pred(e.conversation));

  const owned = new Set((await n1.health()).ownedShards);
  let conv;
  for (let i = 0; i < 200 && !conv; i++) {
    const id = await n1.conversation(admin.accessToken);
    if (owned.has(shardOf(id))) conv = id;
  }
  assert.ok(conv, "a conversation on a shard node 1 owns");
  const r = await n1.api("POST", `/api/v1/conversations/${conv}/escalate`, { token: admin.accessToken, body: { reason: "asked for a person" } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  // Node 1's assigner knows node 3's online staff: no wait for a periodic sweep (every 10 s).
  const assigned = await eventually(
    async () => {
      const c = (await n1.api("GET", `/api/v1/conversations/${conv}`, { token: admin.accessToken })).body;
      return c.assigneeId && c;
    },
    5000,
    "the escalation to be assigned",
  );
  assert.equal(assigned.assigneeId, agent.user.id);
  assert.equal(assigned.status, "escalated");
  await eventually(
    async () =>
      heard(conv, "conversation:new").length === 1 &&
      heard(conv, "conversation:updated", (c) => c.status === "escalated").length >= 1 &&
      heard(conv, "conversation:assigned", (c) => c.assigneeId === agent.user.id).length === 1,
    10000,
    "conversation:new, :updated and :assigned of node 1's conversation on node 3",
  );
  socket.close();
});

test("a socket on node 3 sees what node 1 accepts, in order", { timeout: 300000 }, async () => {
  const {
    nodes: [n1, n2, n3],
  } = await cluster();
  const agent = await n1.login(AGENT);
  const admin = await n2.login(ADMIN);
  const conv = await n1.conversation(agent.accessToken);

  // The agent signed in on node 1; its socket lands on node 3 (default transports: polling, then the upgrade).
  const watcher = await connected(connect(n3, agent.accessToken));
  const seen = collect(watcher, conv);
  const joined = await join(watcher, conv);
  assert.equal(joined.lastSeq, 0);
  assert.deepEqual(joined.messages, []);

  const sender = await connected(connect(n2, admin.accessToken, { transports: ["websocket"] }));
  const seenBySender = collect(sender, conv);
  await join(sender, conv);

  // Node 1 takes 20 over REST while node 2 takes 8 over a socket, at the same time.
  const viaRest = [];
  const viaSocket = [];
  await Promise.all([
    (async () => {
      for (let i = 0; i < 20; i++) viaRest.push(await post(n1, agent.accessToken, conv, `rest ${i}`));
    })(),
    (async () => {
      for (let i = 0; i < 8; i++) viaSocket.push(await send(sender, conv, `socket ${i}`));
    })(),
  ]);
  const total = viaRest.length + viaSocket.length;
  const accepted = [...viaRest, ...viaSocket].sort((a, b) => a.seq - b.seq);
  assert.deepEqual(
    accepted.map((m) => m.seq),
    range(1, total),
    "the accepted messages are numbered from 1 without gaps or repeats",
  );
  for (const [name, msgs] of [["REST on node 1", viaRest], ["socket on node 2", viaSocket]]) {
    const seqs = msgs.map((m) => m.seq);
    assert.ok(
      seqs.every((s, i) => i === 0 || s > seqs[i - 1]),
      `${name}: each message is numbered after the one acknowledged before it: ${seqs}`,
    );
  }

  await eventually(() => seen.length >= total, 30000, `${total} deliveries on node 3`);
  // Anything delivered twice would have shown up by now.
  await sleep(500);
  assert.deepEqual(
    seen.map((m) => m.seq),
    range(1, total),
    "node 3's socket got every message once, seqs strictly increasing by 1",
  );
  assert.deepEqual(
    seen.map((m) => m.id),
    accepted.map((m) => m.id),
  );
  assert.deepEqual(
    seen.map((m) => m.text),
    accepted.map((m) => m.text),
  );
  assert.ok(seen.every((m) => m.direction === "outbound" && m.author?.type === "agent"));

  // The sending socket on node 2 sees the same stream.
  await eventually(() => seenBySender.length >= total, 30000, `${total} deliveries on node 2`);
  assert.deepEqual(
    seenBySender.map((m) => m.id),
    accepted.map((m) => m.id),
    "node 2's socket got every message once, in seq order",
  );

  // Node 3 has them in its own storage too.
  const stored = await eventually(
    async () => {
      const r = await n3.api("GET", `/api/v1/conversations/${conv}/messages?limit=200`, { token: agent.accessToken });
      return r.status === 200 && r.body.items.length >= total ? r.body.items : null;
    },
    15000,
    "the messages in node 3's storage",
  );
  assert.deepEqual(
    stored.map((m) => m.id),
    accepted.map((m) => m.id),
  );

  watcher.disconnect();
  sender.disconnect();
});

test("a widget that comes back on another node gets what it missed", { timeout: 300000 }, async () => {
  const {
    nodes: [n1, n2, n3],
  } = await cluster();
  const agent = await n2.login(AGENT);
  const w = await n1.api("POST", "/api/v1/widget/sessions", { body: { name: "Vuelve" } });
  assert.equal(w.status, 201, JSON.stringify(w.body));
  const conv = w.body.conversationId;

  // The widget is first served by node 1 and gets a few staff messages there.
  const first = await connected(connect(n1, w.body.token, { transports: ["websocket"] }));
  const before = collect(first, conv);
  const j1 = await join(first, conv);
  assert.equal(j1.lastSeq, 0);
  const early = [];
  for (let i = 0; i < 4; i++) early.push(await post(n1, agent.accessToken, conv, `antes ${i}`));
  await eventually(() => before.length >= 4, 20000, "the first deliveries to the widget on node 1");
  assert.deepEqual(
    before.map((m) => m.seq),
    [1, 2, 3, 4],
  );
  assert.deepEqual(
    before.map((m) => m.id),
    early.map((m) => m.id),
  );
  const lastSeen = before.at(-1).seq;

  // It goes away; the conversation goes on through node 2.
  first.disconnect();
  const missed = [];
  for (let i = 0; i < 6; i++) missed.push(await post(n2, agent.accessToken, conv, `mientras ${i}`));
  assert.deepEqual(
    missed.map((m) => m.seq),
    range(5, 10),
  );
  assert.equal(before.length, 4, "a disconnected widget gets nothing");

  // It comes back on node 3 and rejoins with the last seq it saw.
  const back = await connected(connect(n3, w.body.token, { transports: ["websocket"] }));
  const live = collect(back, conv);
  const rejoined = await join(back, conv, lastSeen);
  assert.equal(rejoined.hasMore, false);
  assert.ok(
    rejoined.messages.every((m) => m.seq > lastSeen),
    `the replay starts after sinceSeq: ${rejoined.messages.map((m) => m.seq)}`,
  );

  // Then the conversation goes on through every node: REST on 1 and 2, a socket on 3.
  const staffOn3 = await connected(connect(n3, agent.accessToken, { transports: ["websocket"] }));
  await join(staffOn3, conv);
  const later = [];
  later.push(await post(n1, agent.accessToken, conv, "después 0"));
  later.push(await post(n2, agent.accessToken, conv, "después 1"));
  later.push(await send(staffOn3, conv, "después 2"));
  assert.deepEqual(
    later.map((m) => m.seq),
    range(11, 13),
  );

  const expected = [...missed, ...later];
  await eventually(() => rejoined.messages.length + live.length >= expected.length, 30000, "the missed and live messages on node 3");
  await sleep(500);
  const got = [...rejoined.messages, ...live];
  assert.deepEqual(
    got.map((m) => m.seq),
    range(lastSeen + 1, lastSeen + expected.length),
    "the replay and the live events together carry every message after the last one seen, once, in order",
  );
  assert.deepEqual(
    got.map((m) => m.id),
    expected.map((m) => m.id),
  );
  assert.deepEqual(
    got.map((m) => m.text),
    expected.map((m) => m.text),
  );
  // The live ones came as events, after the replay.
  assert.deepEqual(
    live.slice(-later.length).map((m) => m.id),
    later.map((m) => m.id),
  );

  back.disconnect();
  staffOn3.disconnect();
});

test("a socket recovers its session on another node, as behind a load balancer", { timeout: 300000 }, async () => {
  const {
    nodes: [n1, n2, n3],
  } = await cluster();
  const agent = await n1.login(AGENT);
  const conv = await n1.conversation(agent.accessToken);

  // The client only knows the proxy's address; the proxy sends it to node 1 for now.
  const proxy = await startProxy(n1.base);
  try {
    const socket = await connected(connect(proxy, agent.accessToken, { transports: ["websocket"] }));
    assert.deepEqual(proxy.targets, [new URL(n1.base).origin]);
    const firstId = socket.id;
    const seen = collect(socket, conv);
    await join(socket, conv);

    const early = [];
    for (let i = 0; i < 2; i++) early.push(await post(n1, agent.accessToken, conv, `first ${i}`));
    await eventually(() => seen.length >= 2, 20000, "the first deliveries through node 1");
    assert.deepEqual(
      seen.map((m) => m.id),
      early.map((m) => m.id),
    );

    // Node 1 is drained: the connection is cut and the client's next one is
    // held at the proxy, so what follows is sent while it is away.
    let reconnects = 0;
    socket.io.on("reconnect_attempt", () => reconnects++);
    const dropped = new Promise((resolve) => socket.once("disconnect", resolve));
    proxy.switchTo(n3.base, { paused: true });
    const reason = await dropped;
    assert.equal(reason, "transport close");
    assert.equal(socket.connected, false);

    const missed = [];
    for (let i = 0; i < 3; i++) missed.push(await post(n2, agent.accessToken, conv, `away ${i}`));
    assert.deepEqual(
      missed.map((m) => m.seq),
      range(3, 5),
    );
    await eventually(() => reconnects > 0, 10000, "the client to try to reconnect");
    assert.equal(socket.connected, false, "still away while the proxy holds the connection");
    assert.equal(seen.length, 2, "a disconnected socket gets nothing");

    // The proxy lets the client through, now to node 3.
    const back = connected(socket);
    proxy.resume();
    await back;
    assert.deepEqual(proxy.targets.slice(1), [new URL(n3.base).origin], "the client came back through node 3");
    assert.equal(socket.recovered, true, "the session was recovered on node 3");
    assert.equal(socket.id, firstId, "the recovered socket keeps its id");

    // Without a new join it gets exactly what it missed, once, in seq order.
    await eventually(() => seen.length >= 5, 20000, "the missed messages on node 3");
    await sleep(500);
    assert.deepEqual(
      seen.map((m) => m.seq),
      range(1, 5),
      "every message once, in seq order, across the move",
    );
    assert.deepEqual(
      seen.slice(2).map((m) => m.id),
      missed.map((m) => m.id),
    );
    assert.deepEqual(
      seen.slice(2).map((m) => m.text),
      missed.map((m) => m.text),
    );

    // Still in the conversation on node 3: a new message through node 1 arrives live.
    const later = await post(n1, agent.accessToken, conv, "back");
    assert.equal(later.seq, 6);
    await eventually(() => seen.length >= 6, 20000, "the live delivery after recovery");
    await sleep(500);
    assert.deepEqual(
      seen.map((m) => m.seq),
      range(1, 6),
    );
    assert.equal(seen.at(-1).id, later.id);
    assert.equal(socket.id, firstId);
    assert.deepEqual(proxy.targets.slice(1), [new URL(n3.base).origin], "no further reconnect");

    socket.disconnect();
  } finally {
    await proxy.close();
  }
});
