// The stock socket.io-client against the real utalk server.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import WebSocket from "ws";
import { startServer, once, waitFor, uuid, ADMIN, AGENT } from "./harness.mjs";

let server;
let agent;
let admin;

before(async () => {
  server = await startServer({
    UTALK_SOCKET__MAX_PAYLOAD_BYTES: "8192",
    UTALK_SOCKET__MAX_QUEUED: "64",
    UTALK_SOCKET__PING_INTERVAL_MS: "1000",
    UTALK_SOCKET__PING_TIMEOUT_MS: "1000",
  });
  agent = await server.login(AGENT);
  admin = await server.login(ADMIN);
});

after(async () => {
  await server.stop();
});

function connect(token, opts = {}) {
  return io(server.base, { auth: { token }, reconnectionDelay: 100, reconnectionDelayMax: 200, ...opts });
}

async function connected(socket) {
  if (!socket.connected) await once(socket, "connect");
  return socket;
}

const ack = (socket, event, payload) => socket.timeout(10000).emitWithAck(event, payload);

test("default transports connect over polling and upgrade to websocket", async () => {
  const socket = connect(agent.accessToken);
  await connected(socket);
  assert.equal(socket.io.engine.transport.name === "polling" || socket.io.engine.transport.name === "websocket", true);
  await waitFor(() => socket.io.engine.transport.name === "websocket", 10000, "upgrade to websocket");
  const conv = await server.conversation(agent.accessToken);
  const joined = await ack(socket, "conversation:join", { conversationId: conv });
  assert.equal(joined.ok, true);
  assert.equal(joined.lastSeq, 0);
  assert.match(joined.requestId, /.+/);
  const sent = await ack(socket, "message:send", { conversationId: conv, messageId: uuid(), text: "hola" });
  assert.equal(sent.ok, true);
  assert.equal(sent.message.seq, 1);
  socket.disconnect();
});

test("websocket-only and polling-only clients work", async () => {
  for (const transports of [["websocket"], ["polling"]]) {
    const socket = connect(agent.accessToken, { transports });
    await connected(socket);
    assert.equal(socket.io.engine.transport.name, transports[0]);
    const conv = await server.conversation(agent.accessToken);
    await ack(socket, "conversation:join", { conversationId: conv });
    const got = once(socket, "message:new");
    const sent = await ack(socket, "message:send", { conversationId: conv, messageId: uuid(), text: `via ${transports[0]}` });
    assert.equal(sent.ok, true);
    const [evt] = await got;
    assert.equal(evt.message.text, `via ${transports[0]}`);
    socket.disconnect();
  }
});

test("two clients in one conversation see every message once, in seq order, only after it is durable", async () => {
  const conv = await server.conversation(agent.accessToken);
  const a = await connected(connect(agent.accessToken));
  const b = await connected(connect(admin.accessToken, { transports: ["websocket"] }));
  await ack(a, "conversation:join", { conversationId: conv });
  await ack(b, "conversation:join", { conversationId: conv });
  const seen = [];
  b.on("message:new", async ({ message }) => {
    seen.push(message.seq);
  });
  const acks = await Promise.all(Array.from({ length: 50 }, (_, i) => ack(a, "message:send", { conversationId: conv, messageId: uuid(), text: `m${i}` })));
  assert.ok(acks.every((x) => x.ok));
  // Acked means durable: the REST read (straight from storage) has all of them.
  const list = await server.api("GET", `/api/v1/conversations/${conv}/messages?limit=200`, { token: agent.accessToken });
  assert.equal(list.body.items.length, 50);
  await waitFor(() => seen.length === 50, 10000, "50 deliveries");
  assert.deepEqual(seen, Array.from({ length: 50 }, (_, i) => i + 1));
  a.disconnect();
  b.disconnect();
});

test("join replays what came after sinceSeq", async () => {
  const conv = await server.conversation(agent.accessToken);
  for (let i = 0; i < 5; i++) {
    await server.api("POST", `/api/v1/conversations/${conv}/messages`, { token: agent.accessToken, body: { messageId: uuid(), text: `r${i}` } });
  }
  const s = await connected(connect(agent.accessToken, { transports: ["websocket"] }));
  const joined = await ack(s, "conversation:join", { conversationId: conv, sinceSeq: 3 });
  assert.deepEqual(joined.messages.map((m) => m.seq), [4, 5]);
  assert.equal(joined.lastSeq, 5);
  assert.equal(joined.hasMore, false);
  s.disconnect();
});

test("a client that drops and comes back gets what it missed through connection state recovery", async () => {
  const conv = await server.conversation(agent.accessToken);
  const watcher = await connected(connect(agent.accessToken, { transports: ["websocket"] }));
  const sender = await connected(connect(admin.accessToken, { transports: ["websocket"] }));
  await ack(watcher, "conversation:join", { conversationId: conv });
  const seen = [];
  watcher.on("message:new", ({ message }) => seen.push(message.seq));
  await ack(sender, "message:send", { conversationId: conv, messageId: uuid(), text: "before" });
  await waitFor(() => seen.length === 1, 5000, "first delivery");

  // Drop the transport under the client; it reconnects by itself.
  const back = once(watcher, "connect", 15000);
  watcher.io.engine.close();
  for (let i = 0; i < 3; i++) {
    await ack(sender, "message:send", { conversationId: conv, messageId: uuid(), text: `while away ${i}` });
  }
  await back;
  assert.equal(watcher.recovered, true, "connection state recovered");
  await waitFor(() => seen.length === 4, 5000, "missed deliveries");
  assert.deepEqual(seen, [1, 2, 3, 4]);
  // Still joined after recovery: new messages keep arriving.
  await ack(sender, "message:send", { conversationId: conv, messageId: uuid(), text: "after" });
  await waitFor(() => seen.length === 5, 5000, "live delivery after recovery");
  watcher.disconnect();
  sender.disconnect();
});

test("bad tokens get connect_error whose message is the error code", async () => {
  for (const [auth, code] of [
    [{ token: "garbage" }, "invalid_token"],
    [{}, "missing_token"],
    [{ token: agent.accessToken.slice(0, -3) + "abc" }, "invalid_token"],
  ]) {
    const s = io(server.base, { auth, reconnection: false });
    const err = await once(s, "connect_error");
    assert.equal(err.message, code);
    s.close();
  }
});

test("unknown namespaces are refused", async () => {
  const s = io(server.base + "/admin", { auth: { token: agent.accessToken }, reconnection: false });
  const err = await once(s, "connect_error");
  assert.equal(err.message, "Invalid namespace");
  s.close();
});

test("widget tokens reach only their own conversation", async () => {
  const w = await server.api("POST", "/api/v1/widget/sessions", { body: { name: "Luis" } });
  const s = await connected(connect(w.body.token, { transports: ["websocket"] }));
  const own = await ack(s, "conversation:join", { conversationId: w.body.conversationId });
  assert.equal(own.ok, true);
  const other = await server.conversation(agent.accessToken);
  const refused = await ack(s, "conversation:join", { conversationId: other });
  assert.equal(refused.ok, false);
  assert.equal(refused.error.code, "forbidden");
  const send = await ack(s, "message:send", { conversationId: other, messageId: uuid(), text: "x" });
  assert.equal(send.error.code, "forbidden");
  const mine = await ack(s, "message:send", { conversationId: w.body.conversationId, messageId: uuid(), text: "hola" });
  assert.equal(mine.message.direction, "inbound");
  s.disconnect();
});

test("typing goes to others only; read markers are stored and broadcast; unknown events get a typed error", async () => {
  const conv = await server.conversation(agent.accessToken);
  const a = await connected(connect(agent.accessToken, { transports: ["websocket"] }));
  const b = await connected(connect(admin.accessToken, { transports: ["websocket"] }));
  await ack(a, "conversation:join", { conversationId: conv });
  await ack(b, "conversation:join", { conversationId: conv });
  let aTyping = 0;
  a.on("typing", () => aTyping++);
  const typing = once(b, "typing");
  a.emit("typing:start", { conversationId: conv });
  const t = await typing;
  assert.equal(t.typing, true);
  assert.equal(t.user.type, "agent");
  await ack(a, "message:send", { conversationId: conv, messageId: uuid(), text: "read me" });
  const readEvt = once(a, "message:read");
  const r = await ack(b, "message:read", { conversationId: conv, seq: 1 });
  assert.equal(r.ok, true);
  const re = await readEvt;
  assert.equal(re.seq, 1);
  const past = await ack(b, "message:read", { conversationId: conv, seq: 99 });
  assert.equal(past.error.code, "invalid_seq");
  const unknown = await ack(a, "no:such:event", { requestId: "js-req-42" });
  assert.equal(unknown.ok, false);
  assert.equal(unknown.error.code, "unknown_event");
  // The event's request id is in its ack and on the server's log line for it.
  assert.equal(unknown.requestId, "js-req-42");
  await waitFor(() => server.logs.some((l) => l.includes('"request_id":"js-req-42"')), 5000, "log line with the request id");
  assert.equal(aTyping, 0, "the typist does not get its own typing event");
  a.disconnect();
  b.disconnect();
});

test("garbage frames, binary frames and oversize payloads close only the offending socket, with a reason", async () => {
  const healthy = await connected(connect(agent.accessToken, { transports: ["websocket"] }));
  const url = server.base.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket";
  const cases = [
    [(ws) => ws.send("4garbage"), 1002, /parse_error/],
    [(ws) => ws.send(Buffer.from([1, 2, 3])), 1003, /binary/],
    [(ws) => ws.send("42" + JSON.stringify(["message:send", { text: "x".repeat(10000) }])), 1009, /too_large|payload/],
  ];
  for (const [send, code, reason] of cases) {
    const ws = new WebSocket(url);
    await once(ws, "message"); // open packet
    ws.send(`40${JSON.stringify({ token: agent.accessToken })}`);
    await once(ws, "message"); // CONNECT answer
    const closed = once(ws, "close");
    send(ws);
    const [gotCode, gotReason] = await closed;
    assert.equal(gotCode, code);
    assert.match(gotReason.toString(), reason);
  }
  // Oversize polling POST gets 413.
  const open = await fetch(server.base + "/socket.io/?EIO=4&transport=polling").then((r) => r.text());
  const sid = JSON.parse(open.slice(1)).sid;
  const post = await fetch(`${server.base}/socket.io/?EIO=4&transport=polling&sid=${sid}`, { method: "POST", body: "4" + "x".repeat(10000) });
  assert.equal(post.status, 413);
  // The others keep being served.
  const conv = await server.conversation(agent.accessToken);
  await ack(healthy, "conversation:join", { conversationId: conv });
  const sent = await ack(healthy, "message:send", { conversationId: conv, messageId: uuid(), text: "still here" });
  assert.equal(sent.ok, true);
  healthy.disconnect();
});

test("staff presence goes online, away and offline", async () => {
  const watcher = await connected(connect(agent.accessToken, { transports: ["websocket"] }));
  const seen = [];
  watcher.on("presence", (p) => {
    if (p.userId === admin.user.id) seen.push(p.status);
  });
  const other = await connected(connect(admin.accessToken, { transports: ["websocket"] }));
  await waitFor(() => seen.includes("online"), 5000, "online");
  const set = await ack(other, "presence:set", { status: "away" });
  assert.equal(set.status, "away");
  await waitFor(() => seen.includes("away"), 5000, "away");
  const bad = await ack(other, "presence:set", { status: "sleeping" });
  assert.equal(bad.error.code, "invalid_request");
  // A session that connects now hears who is present, with their status, at once.
  const late = connect(agent.accessToken, { transports: ["websocket"] });
  const snapshot = [];
  late.on("presence", (p) => snapshot.push(p));
  await connected(late);
  await waitFor(() => snapshot.some((p) => p.userId === admin.user.id), 5000, "the snapshot");
  assert.deepEqual(snapshot.find((p) => p.userId === admin.user.id), { userId: admin.user.id, status: "away" });
  late.disconnect();
  other.disconnect();
  await waitFor(() => seen.includes("offline"), 5000, "offline");
  assert.deepEqual(seen, ["online", "away", "offline"]);
  watcher.disconnect();
});

test("malformed event payloads get invalid_request and store nothing", async () => {
  const conv = await server.conversation(agent.accessToken);
  const s = await connected(connect(agent.accessToken, { transports: ["websocket"] }));
  const cases = [
    ["conversation:join", { conversationId: "not-a-uuid" }],
    ["conversation:join", { conversationId: conv, sinceSeq: -1 }],
    ["message:send", { conversationId: conv, text: "no id" }],
    ["message:send", { conversationId: conv, messageId: "abc", text: "x" }],
    ["message:send", { conversationId: conv, messageId: uuid(), text: 42 }],
    ["message:send", { conversationId: conv, messageId: uuid(), mediaId: "nope" }],
    ["message:read", { conversationId: conv, seq: "one" }],
  ];
  for (const [event, payload] of cases) {
    const r = await ack(s, event, payload);
    assert.equal(r.ok, false, `${event} ${JSON.stringify(payload)}`);
    assert.equal(r.error.code, "invalid_request", `${event} ${JSON.stringify(payload)}`);
  }
  const empty = await ack(s, "message:send", { conversationId: conv, messageId: uuid() });
  assert.equal(empty.error.code, "empty_message");
  const long = await ack(s, "message:send", { conversationId: conv, messageId: uuid(), text: "x".repeat(4097) });
  assert.equal(long.error.code, "text_too_long");
  const c = await server.api("GET", `/api/v1/conversations/${conv}`, { token: agent.accessToken });
  assert.equal(c.body.lastSeq, 0, "nothing was stored");
  // Still connected and serving.
  const ok = await ack(s, "message:send", { conversationId: conv, messageId: uuid(), text: "fine" });
  assert.equal(ok.message.seq, 1);
  s.disconnect();
});

test("socket traffic shows in /metrics with event names as labels, never a client's own name", async () => {
  const s = connect(admin.accessToken, { transports: ["websocket"] });
  await connected(s);
  const conv = await server.conversation(admin.accessToken);
  const join = await s.timeout(5000).emitWithAck("conversation:join", { conversationId: conv });
  assert.equal(join.ok, true);
  const sent = await s.timeout(5000).emitWithAck("message:send", { conversationId: conv, messageId: uuid(), text: "medido" });
  assert.equal(sent.ok, true);
  const odd = await s.timeout(5000).emitWithAck("made:up-by-client", {});
  assert.equal(odd.ok, false);
  const text = await (await fetch(server.base + "/metrics")).text();
  const value = (series) => Number(text.split("\n").find((l) => l.startsWith(series + " "))?.split(" ")[1]);
  assert.ok(value('socket_events_total{event="message:send"}') >= 1, text);
  assert.ok(value('socket_events_total{event="conversation:join"}') >= 1);
  assert.ok(value('socket_events_total{event="unknown"}') >= 1);
  assert.ok(value('socket_event_duration_seconds_count{event="message:send"}') >= 1);
  // From the event's arrival to its ack, the durable write included.
  assert.ok(value('socket_ack_duration_seconds_count{event="message:send"}') >= 1, text);
  assert.ok(value('socket_errors_total{code="unknown_event"}') >= 1, "the refusal is counted by its code");
  assert.ok(value('socket_connections_active{transport="websocket"}') >= 1);
  assert.ok(!text.includes("made:up-by-client"), "a client's event name is not a label");
  // A disconnect is counted by its reason, one of a fixed few.
  const closedBefore = value('socket_disconnects_total{reason="client_close"}') || 0;
  s.disconnect();
  let after = closedBefore;
  for (let i = 0; i < 50 && after <= closedBefore; i++) {
    await new Promise((r) => setTimeout(r, 100));
    const t = await (await fetch(server.base + "/metrics")).text();
    after = Number(t.split("\n").find((l) => l.startsWith('socket_disconnects_total{reason="client_close"} '))?.split(" ")[1]);
  }
  assert.ok(after > closedBefore, `client_close disconnects: ${closedBefore} then ${after}`);
});

test("staff hear of new, changed and assigned conversations without joining; widgets and integration keys do not", async () => {
  // Collects every conversation event a socket gets, by name.
  const listen = (socket) => {
    const got = [];
    for (const name of ["conversation:new", "conversation:updated", "conversation:assigned"]) {
      socket.on(name, ({ conversation }) => got.push({ name, id: conversation.id, conversation }));
    }
    return got;
  };
  const of = (got, id, name) => got.filter((e) => e.id === id && e.name === name);
  const key = await server.api("POST", "/api/v1/api-keys", { token: admin.accessToken, body: { name: "staff-news", role: "integration" } });
  assert.equal(key.status, 201, JSON.stringify(key.body));
  const a = await connected(connect(agent.accessToken, { transports: ["websocket"] }));
  const b = await connected(connect(admin.accessToken));
  const k = await connected(connect(key.body.key, { transports: ["websocket"] }));
  const [gotA, gotB, gotK] = [listen(a), listen(b), listen(k)];

  // A widget opens a conversation: every staff session hears of it, once.
  const w = await server.api("POST", "/api/v1/widget/sessions", { body: { name: "Marta" } });
  assert.equal(w.status, 201, JSON.stringify(w.body));
  const conv = w.body.conversationId;
  const ws = await connected(connect(w.body.token, { transports: ["websocket"] }));
  const gotW = listen(ws);
  await ack(ws, "conversation:join", { conversationId: conv });
  await waitFor(() => of(gotA, conv, "conversation:new").length === 1 && of(gotB, conv, "conversation:new").length === 1, 10000, "conversation:new to staff");
  assert.equal(of(gotA, conv, "conversation:new")[0].conversation.channel, "web");

  // The admin joins it; the agent does not. An escalation reaches both once.
  await ack(b, "conversation:join", { conversationId: conv });
  const esc = await server.api("POST", `/api/v1/conversations/${conv}/escalate`, { token: agent.accessToken, body: { reason: "asks for a person" } });
  assert.equal(esc.status, 200, JSON.stringify(esc.body));
  const escalated = (got) => got.filter((e) => e.id === conv && e.name === "conversation:updated" && e.conversation.status === "escalated");
  await waitFor(() => escalated(gotA).length >= 1 && escalated(gotB).length >= 1 && escalated(gotW).length >= 1, 10000, "conversation:updated");

  // Taking it assigns it: conversation:assigned follows conversation:updated.
  const me = agent.user.id;
  const take = await server.api("PATCH", `/api/v1/conversations/${conv}`, { token: agent.accessToken, body: { assigneeId: me } });
  assert.equal(take.status, 200, JSON.stringify(take.body));
  await waitFor(() => of(gotA, conv, "conversation:assigned").length === 1 && of(gotB, conv, "conversation:assigned").length === 1, 10000, "conversation:assigned");
  for (const got of [gotA, gotB]) {
    const [assigned] = of(got, conv, "conversation:assigned");
    assert.equal(assigned.conversation.assigneeId, me);
    const names = got.filter((e) => e.id === conv).map((e) => e.name);
    assert.equal(names.lastIndexOf("conversation:updated"), names.indexOf("conversation:assigned") - 1, names.join(","));
  }
  // The same assignee again is no new assignment.
  const again = await server.api("PATCH", `/api/v1/conversations/${conv}`, { token: agent.accessToken, body: { assigneeId: me } });
  assert.equal(again.status, 200, JSON.stringify(again.body));

  // A conversation made over REST while everyone listens.
  const other = await server.conversation(agent.accessToken);
  await waitFor(() => of(gotA, other, "conversation:new").length === 1, 10000, "conversation:new of a REST conversation");
  // The admin joined and still hears each change once: as many as the agent,
  // who did not join, and still so a moment later.
  const updates = (got) => of(got, conv, "conversation:updated").length;
  await waitFor(() => updates(gotA) >= 2 && updates(gotB) === updates(gotA), 10000, "the same updates on both staff sessions");
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(updates(gotB), updates(gotA), "a staff session joined to the conversation hears each change once");
  assert.equal(of(gotA, conv, "conversation:assigned").length, 1);
  // The widget heard its own conversation change, and nothing of staff news.
  assert.deepEqual(gotW.filter((e) => e.name !== "conversation:updated"), []);
  assert.ok(gotW.every((e) => e.id === conv));
  // An integration key hears nothing of conversations it did not join.
  assert.deepEqual(gotK, []);
  for (const s of [a, b, k, ws]) s.disconnect();
});

test("staff hear canned responses made, changed and deleted; widgets and integration keys do not", async () => {
  const key = await server.api("POST", "/api/v1/api-keys", { token: admin.accessToken, body: { name: "canned-news", role: "integration" } });
  assert.equal(key.status, 201, JSON.stringify(key.body));
  const w = await server.api("POST", "/api/v1/widget/sessions", { body: { name: "Eva" } });
  const sockets = {
    agent: await connected(connect(agent.accessToken, { transports: ["websocket"] })),
    key: await connected(connect(key.body.key, { transports: ["websocket"] })),
    widget: await connected(connect(w.body.token, { transports: ["websocket"] })),
  };
  const heard = { agent: [], key: [], widget: [] };
  for (const [who, s] of Object.entries(sockets)) s.on("canned:changed", (ev) => heard[who].push(ev));

  const made = await server.api("POST", "/api/v1/canned-responses", { token: admin.accessToken, body: { shortCode: "live-news", content: "Hola" } });
  assert.equal(made.status, 201, JSON.stringify(made.body));
  const id = made.body.id;
  await waitFor(() => heard.agent.length === 1, 5000, "canned:changed created");
  assert.deepEqual(heard.agent[0], { id, change: "created" });
  const changed = await server.api("PATCH", `/api/v1/canned-responses/${id}`, { token: admin.accessToken, body: { content: "Hola de nuevo" } });
  assert.equal(changed.status, 200, JSON.stringify(changed.body));
  const gone = await server.api("DELETE", `/api/v1/canned-responses/${id}`, { token: admin.accessToken });
  assert.equal(gone.status, 204);
  await waitFor(() => heard.agent.length === 3, 5000, "canned:changed updated and deleted");
  assert.deepEqual(heard.agent.map((e) => e.change), ["created", "updated", "deleted"]);
  // A refused change announces nothing.
  const bad = await server.api("POST", "/api/v1/canned-responses", { token: admin.accessToken, body: { shortCode: "Not Valid", content: "x" } });
  assert.equal(bad.status, 422);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(heard.agent.length, 3);
  assert.deepEqual(heard.key, [], "integration keys hear no staff news");
  assert.deepEqual(heard.widget, [], "customers hear no staff news");
  for (const s of Object.values(sockets)) s.disconnect();
});

test("private notes reach staff sockets only: live, on join and through recovery", async () => {
  const w = await server.api("POST", "/api/v1/widget/sessions", { body: { name: "Rosa" } });
  const conv = w.body.conversationId;
  const customer = await connected(connect(w.body.token, { transports: ["websocket"] }));
  const staff = await connected(connect(agent.accessToken, { transports: ["websocket"] }));
  await ack(customer, "conversation:join", { conversationId: conv });
  await ack(staff, "conversation:join", { conversationId: conv });
  const heard = { customer: [], staff: [] };
  customer.on("message:new", ({ message }) => heard.customer.push(message.text));
  staff.on("message:new", ({ message }) => heard.staff.push(message.text));

  // A customer may not write a note.
  const refused = await ack(customer, "message:send", { conversationId: conv, messageId: uuid(), text: "x", private: true });
  assert.equal(refused.error.code, "forbidden");
  const bad = await ack(staff, "message:send", { conversationId: conv, messageId: uuid(), text: "x", private: "yes" });
  assert.equal(bad.error.code, "invalid_request");

  const note = await ack(staff, "message:send", { conversationId: conv, messageId: uuid(), text: "nota: cliente frecuente", private: true });
  assert.equal(note.ok, true);
  assert.equal(note.message.private, true);
  await ack(staff, "message:send", { conversationId: conv, messageId: uuid(), text: "¡Hola Rosa!" });
  await waitFor(() => heard.staff.length === 2 && heard.customer.length === 1, 5000, "deliveries");
  assert.deepEqual(heard.staff, ["nota: cliente frecuente", "¡Hola Rosa!"]);
  assert.deepEqual(heard.customer, ["¡Hola Rosa!"]);

  // A join replays the history without the note for the customer, with it for staff.
  const replayCustomer = await ack(customer, "conversation:join", { conversationId: conv, sinceSeq: 0 });
  assert.deepEqual(replayCustomer.messages.map((m) => m.text), ["¡Hola Rosa!"]);
  const replayStaff = await ack(staff, "conversation:join", { conversationId: conv, sinceSeq: 0 });
  assert.deepEqual(replayStaff.messages.map((m) => m.text), ["nota: cliente frecuente", "¡Hola Rosa!"]);

  // Recovery after a dropped transport leaves the note out too.
  const back = once(customer, "connect", 15000);
  customer.io.engine.close();
  await ack(staff, "message:send", { conversationId: conv, messageId: uuid(), text: "otra nota", private: true });
  await ack(staff, "message:send", { conversationId: conv, messageId: uuid(), text: "¿Sigues ahí?" });
  await back;
  assert.equal(customer.recovered, true);
  await waitFor(() => heard.customer.length === 2, 5000, "missed delivery");
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(heard.customer, ["¡Hola Rosa!", "¿Sigues ahí?"]);
  customer.disconnect();
  staff.disconnect();
});

test("message:send checks a template's shape and that it goes to WhatsApp only", async () => {
  const conv = await server.conversation(agent.accessToken);
  const s = await connected(connect(agent.accessToken, { transports: ["websocket"] }));
  const bad = await ack(s, "message:send", { conversationId: conv, messageId: uuid(), template: { contentSid: 7 } });
  assert.equal(bad.error.code, "invalid_request");
  const extra = await ack(s, "message:send", { conversationId: conv, messageId: uuid(), template: { contentSid: "HX" + "0".repeat(32), body: "x" } });
  assert.equal(extra.error.code, "invalid_request");
  const malformed = await ack(s, "message:send", { conversationId: conv, messageId: uuid(), template: { contentSid: "HX12" } });
  assert.equal(malformed.error.code, "invalid_template");
  const web = await ack(s, "message:send", { conversationId: conv, messageId: uuid(), template: { contentSid: "HX" + "0".repeat(32), variables: { 1: "Ana" } } });
  assert.equal(web.error.code, "template_not_supported");
  const r = await server.api("GET", `/api/v1/conversations/${conv}/messages`, { token: agent.accessToken });
  assert.equal(r.body.items.length, 0, "nothing stored");
  s.disconnect();
});
