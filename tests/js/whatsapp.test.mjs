// WhatsApp through Twilio: signatures checked against the official `twilio`
// package, a local stand-in for Twilio's Messages API and media URLs with
// injected failures, and restarts after SIGKILL.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import twilio from "twilio";
import { io } from "socket.io-client";
import { startServer, once, waitFor, uuid, ADMIN, AGENT } from "./harness.mjs";
import { startFakeTwilio, PNG } from "./fake-twilio.mjs";

const ACCOUNT_SID = "AC" + "0123456789abcdef".repeat(2);
const AUTH_TOKEN = "test-auth-token-" + randomBytes(8).toString("hex");
const PUBLIC_URL = "https://chat.example.test";
const FROM = "whatsapp:+14155238886";

let fake;
let server;
let admin;
let agent;

function twilioEnv(extra = {}) {
  return {
    UTALK_TWILIO_ACCOUNT_SID: ACCOUNT_SID,
    UTALK_TWILIO_AUTH_TOKEN: AUTH_TOKEN,
    UTALK_TWILIO_FROM: FROM,
    UTALK_TWILIO_API_BASE: fake.base,
    UTALK_PUBLIC_URL: PUBLIC_URL,
    UTALK_DELIVERY__BACKOFF_BASE_MS: "50",
    UTALK_DELIVERY__BACKOFF_MAX_MS: "200",
    UTALK_DELIVERY__REQUEST_TIMEOUT_MS: "700",
    UTALK_MEDIA__MAX_BYTES: "4096",
    // Twilio's stand-in serves media on 127.0.0.1; "localhost" stays out, for the test of other hosts.
    UTALK_TWILIO_MEDIA_HOSTS: '["127.0.0.1"]',
    ...extra,
  };
}

before(async () => {
  fake = await startFakeTwilio({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN });
  server = await startServer(twilioEnv({ UTALK_MEDIA__URL_TTL_SECS: "2", UTALK_WEBHOOKS__ALLOW_PRIVATE_TARGETS: "true" }));
  // These tests are about the channel; the bot's answers would add messages (bot.test.mjs covers it).
  await server.setBot(false);
  admin = await server.login(ADMIN);
  agent = await server.login(AGENT);
});

after(async () => {
  await server.stop();
  await fake.close();
});

function phone() {
  return "+52155" + String(Math.floor(Math.random() * 1e8)).padStart(8, "0");
}

function inboundParams(from, extra = {}) {
  return {
    MessageSid: "SM" + randomBytes(16).toString("hex"),
    AccountSid: ACCOUNT_SID,
    From: `whatsapp:${from}`,
    To: FROM,
    Body: "Hola, ¿tienen café?",
    ProfileName: "Ana Pérez",
    NumMedia: "0",
    ...extra,
  };
}

// Posts a Twilio-style form to `path` on `srv`, signed by the twilio package unless told otherwise.
async function webhook(srv, path, params, { signUrl, signParams, signature, token = AUTH_TOKEN, headers = {} } = {}) {
  const sig = signature !== undefined ? signature : twilio.getExpectedTwilioSignature(token, signUrl ?? PUBLIC_URL + path, signParams ?? params);
  const h = { "content-type": "application/x-www-form-urlencoded", ...headers };
  if (sig !== null) h["x-twilio-signature"] = sig;
  const res = await fetch(srv.base + path, { method: "POST", headers: h, body: new URLSearchParams(params).toString() });
  return { status: res.status, type: res.headers.get("content-type"), text: await res.text() };
}

async function conversationOf(srv, token, number) {
  let next = null;
  do {
    const q = next ? `?limit=200&cursor=${next}` : "?limit=200";
    const r = await srv.api("GET", "/api/v1/conversations" + q, { token });
    const c = r.body.items.find((c) => c.channel === "whatsapp" && c.customer.phone === number);
    if (c) return c;
    next = r.body.nextCursor;
  } while (next);
  return null;
}

async function messages(srv, token, conv) {
  const r = await srv.api("GET", `/api/v1/conversations/${conv}/messages?limit=200`, { token });
  assert.equal(r.status, 200);
  return r.body.items;
}

// Reads the message until `predicate` holds; one request at a time, so none is left in flight.
async function pollMessage(srv, token, conv, id, predicate, what, ms = 15000) {
  const start = Date.now();
  for (;;) {
    const r = await srv.api("GET", `/api/v1/conversations/${conv}/messages?limit=200`, { token });
    const m = r.body.items.find((m) => m.id === id);
    if (m && predicate(m)) return m;
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}; last seen ${JSON.stringify(m)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function whatsappConversation(srv, token) {
  const number = phone();
  const r = await webhook(srv, "/webhooks/twilio/whatsapp", inboundParams(number));
  assert.equal(r.status, 200, r.text);
  const c = await conversationOf(srv, token, number);
  assert.ok(c, "conversation opened");
  return { number, conv: c.id };
}

test("a signed inbound message is durable before the 200, which is empty TwiML", async () => {
  const number = phone();
  const params = inboundParams(number);
  // The signature our server checks is the one Twilio's own validator accepts.
  const sig = twilio.getExpectedTwilioSignature(AUTH_TOKEN, PUBLIC_URL + "/webhooks/twilio/whatsapp", params);
  assert.equal(twilio.validateRequest(AUTH_TOKEN, sig, PUBLIC_URL + "/webhooks/twilio/whatsapp", params), true);
  const r = await webhook(server, "/webhooks/twilio/whatsapp", params, { signature: sig });
  assert.equal(r.status, 200, r.text);
  assert.match(r.type, /^text\/xml/);
  assert.equal(r.text, "<Response></Response>");
  const c = await conversationOf(server, admin.accessToken, number);
  assert.equal(c.status, "open");
  assert.equal(c.customer.name, "Ana Pérez");
  const items = await messages(server, admin.accessToken, c.id);
  assert.equal(items.length, 1);
  assert.equal(items[0].text, "Hola, ¿tienen café?");
  assert.equal(items[0].direction, "inbound");
  assert.equal(items[0].author.type, "customer");
  assert.equal(items[0].status, "received");
  assert.equal(items[0].providerId, params.MessageSid);
  // The same number's next message lands in the same conversation.
  const again = await webhook(server, "/webhooks/twilio/whatsapp", inboundParams(number, { Body: "¿y té?" }));
  assert.equal(again.status, 200);
  assert.deepEqual((await messages(server, admin.accessToken, c.id)).map((m) => m.seq), [1, 2]);
});

test("forged body, wrong URL, wrong token and missing header get 403 and store nothing", async () => {
  const number = phone();
  const params = inboundParams(number);
  const path = "/webhooks/twilio/whatsapp";
  const cases = {
    "forged body": { signParams: { ...params, Body: "something else" } },
    "wrong URL": { signUrl: "https://attacker.example/webhooks/twilio/whatsapp" },
    "wrong path": { signUrl: PUBLIC_URL + "/webhooks/twilio/status" },
    "wrong token": { token: "not-the-token" },
    "missing header": { signature: null },
    "garbage header": { signature: "%%%not-base64" },
  };
  for (const [name, opts] of Object.entries(cases)) {
    const r = await webhook(server, path, params, opts);
    assert.equal(r.status, 403, `${name}: ${r.text}`);
    const code = JSON.parse(r.text).error.code;
    assert.equal(code, name === "missing header" ? "missing_signature" : "invalid_signature", name);
    // Twilio's validator agrees that these are not Twilio's.
    if (opts.signature !== null && opts.signature !== "%%%not-base64") {
      const sig = twilio.getExpectedTwilioSignature(opts.token ?? AUTH_TOKEN, opts.signUrl ?? PUBLIC_URL + path, opts.signParams ?? params);
      assert.equal(twilio.validateRequest(AUTH_TOKEN, sig, PUBLIC_URL + path, params), false, name);
    }
  }
  const other = await webhook(server, path, { ...params, AccountSid: "AC" + "f".repeat(32) });
  assert.equal(other.status, 403);
  assert.equal(JSON.parse(other.text).error.code, "wrong_account");
  const plain = await fetch(server.base + path, { method: "POST", headers: { "content-type": "text/plain" }, body: "hi" });
  assert.equal(plain.status, 415);
  // Signed but unusable: no MessageSid, or a sender that is not WhatsApp.
  const { MessageSid, ...noSid } = params;
  const r1 = await webhook(server, path, noSid);
  assert.equal(r1.status, 400);
  assert.equal(JSON.parse(r1.text).error.code, "missing_parameter");
  const r2 = await webhook(server, path, { ...params, From: number });
  assert.equal(r2.status, 400);
  assert.equal(JSON.parse(r2.text).error.code, "invalid_parameter");
  assert.equal(await conversationOf(server, admin.accessToken, number), null, "nothing stored");
  // And the server keeps serving valid requests.
  const ok = await webhook(server, path, params);
  assert.equal(ok.status, 200);
});

test("a redelivered MessageSid or idempotency token stores one message", async () => {
  const number = phone();
  const params = inboundParams(number);
  const token = "idem-" + randomBytes(8).toString("hex");
  for (let i = 0; i < 3; i++) {
    const r = await webhook(server, "/webhooks/twilio/whatsapp", params, { headers: { "i-twilio-idempotency-token": token } });
    assert.equal(r.status, 200);
    assert.equal(r.text, "<Response></Response>");
  }
  // Concurrent redeliveries too.
  const rs = await Promise.all([1, 2, 3, 4].map(() => webhook(server, "/webhooks/twilio/whatsapp", params)));
  assert.deepEqual(rs.map((r) => r.status), [200, 200, 200, 200]);
  const c = await conversationOf(server, admin.accessToken, number);
  const items = await messages(server, admin.accessToken, c.id);
  assert.equal(items.length, 1);
});

test("first messages from a new number racing each other open one conversation", async () => {
  const number = phone();
  const rs = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => webhook(server, "/webhooks/twilio/whatsapp", inboundParams(number, { Body: `m${i}` }))));
  assert.deepEqual(rs.map((r) => r.status), [200, 200, 200, 200, 200, 200]);
  const all = [];
  let next = null;
  do {
    const r = await server.api("GET", "/api/v1/conversations?limit=200" + (next ? `&cursor=${next}` : ""), { token: admin.accessToken });
    all.push(...r.body.items.filter((c) => c.customer.phone === number));
    next = r.body.nextCursor;
  } while (next);
  assert.equal(all.length, 1);
  assert.deepEqual((await messages(server, admin.accessToken, all[0].id)).map((m) => m.seq), [1, 2, 3, 4, 5, 6]);
});

test("our validator agrees with twilio.validateRequest on random parameters", async () => {
  const path = "/webhooks/twilio/status";
  const alphabet = "abcXYZ09 +&=?%/éñ😀:";
  const pick = (n) => Array.from({ length: n }, () => alphabet[Math.floor(Math.random() * alphabet.length)]).join("");
  for (let i = 0; i < 40; i++) {
    const params = {};
    for (let k = 0; k < 1 + (i % 6); k++) params["P" + pick(3).replace(/[^A-Za-z0-9]/g, "x") + k] = pick(i % 9);
    const forge = i % 2 === 1;
    const signParams = forge ? { ...params, Extra: "1" } : params;
    const sig = twilio.getExpectedTwilioSignature(AUTH_TOKEN, PUBLIC_URL + path, signParams);
    const valid = twilio.validateRequest(AUTH_TOKEN, sig, PUBLIC_URL + path, params);
    assert.equal(valid, !forge);
    const r = await webhook(server, path, params, { signature: sig });
    assert.equal(r.status, valid ? 200 : 403, `params ${JSON.stringify(params)}: ${r.text}`);
  }
});

test("inbound media is fetched after the 200 with the account's credentials, within limits", async () => {
  const number = phone();
  const names = ["image", "redirect", "big", "exe", "missing", "flaky"];
  const extra = { NumMedia: String(names.length), Body: "" };
  names.forEach((n, i) => {
    extra[`MediaUrl${i}`] = `${fake.base}/media/${n}`;
    extra[`MediaContentType${i}`] = n === "exe" ? "application/x-msdownload" : "image/png";
  });
  const socket = io(server.base, { auth: { token: agent.accessToken }, transports: ["websocket"] });
  await once(socket, "connect");
  const r = await webhook(server, "/webhooks/twilio/whatsapp", inboundParams(number, extra));
  assert.equal(r.status, 200, r.text);
  const c = await conversationOf(server, admin.accessToken, number);
  const updates = [];
  socket.on("message:updated", (p) => updates.push(p.message));
  const joined = await socket.timeout(5000).emitWithAck("conversation:join", { conversationId: c.id });
  assert.equal(joined.ok, true);
  const [first] = joined.messages;
  assert.equal(first.mediaId, first.media[0].id);
  const m = await pollMessage(server, admin.accessToken, c.id, first.id, (m) => m.media.every((a) => a.status !== "pending"), "media settled");
  const byName = Object.fromEntries(names.map((n, i) => [n, m.media[i]]));
  assert.equal(byName.image.status, "stored");
  assert.equal(byName.redirect.status, "stored", JSON.stringify(byName.redirect));
  assert.equal(byName.flaky.status, "stored", "a 503 is retried");
  assert.equal(byName.big.status, "failed");
  assert.match(byName.big.error, /exceeds the limit of 4096 bytes/);
  assert.equal(byName.exe.status, "failed");
  assert.match(byName.exe.error, /not accepted/);
  assert.equal(byName.missing.status, "failed");
  assert.match(byName.missing.error, /HTTP 404/);
  // Our credentials went to Twilio's URLs, never to the redirect's other host.
  assert.ok(fake.mediaRequests.filter((q) => q.name === "image").every((q) => q.authorization));
  assert.ok(fake.mediaRequests.some((q) => q.name === "s3-image" && q.authorization === null));
  await waitFor(() => updates.filter((u) => u.id === first.id).length >= 1, 5000, "message:updated on the socket");
  socket.disconnect();

  // The stored file through its signed URL, no token needed.
  const meta = await server.api("GET", `/api/v1/media/${byName.image.id}`, { token: agent.accessToken });
  assert.equal(meta.status, 200);
  assert.equal(meta.body.status, "stored");
  assert.equal(meta.body.size, PNG.length);
  assert.ok(meta.body.url.startsWith(`${PUBLIC_URL}/api/v1/media/${byName.image.id}?expires=`));
  const local = meta.body.url.replace(PUBLIC_URL, server.base);
  const file = await fetch(local);
  assert.equal(file.status, 200);
  assert.equal(file.headers.get("content-type"), "image/png");
  assert.deepEqual(Buffer.from(await file.arrayBuffer()), PNG);
  const tampered = await fetch(local.replace(/expires=(\d+)/, (_, e) => `expires=${Number(e) + 3600}`));
  assert.equal(tampered.status, 403);
  assert.equal((await tampered.json()).error.code, "bad_signature");
  const failed = await server.api("GET", `/api/v1/media/${byName.big.id}`, { token: agent.accessToken });
  assert.equal(failed.body.status, "failed");
  assert.equal((await fetch(failed.body.url.replace(PUBLIC_URL, server.base))).status, 409);

  // URLs expire (this server signs for 2 s); regenerate-urls renews them.
  await new Promise((r) => setTimeout(r, 2100));
  const expired = await fetch(local);
  assert.equal(expired.status, 403);
  assert.equal((await expired.json()).error.code, "url_expired");
  const unknown = uuid();
  const regen = await server.api("POST", "/api/v1/media/regenerate-urls", {
    token: agent.accessToken,
    body: { ids: [byName.image.id, unknown], ttlSecs: 600 },
  });
  assert.equal(regen.status, 200);
  assert.deepEqual(regen.body.missing, [unknown]);
  const fresh = await fetch(regen.body.items[0].url.replace(PUBLIC_URL, server.base));
  assert.equal(fresh.status, 200);
  const bad = await server.api("POST", "/api/v1/media/regenerate-urls", { token: agent.accessToken, body: { ids: [] } });
  assert.equal(bad.status, 422);
});

test("media on a host outside twilio_media_hosts is not requested: the credentials stay home", async () => {
  // A receiver that is not Twilio: it records whatever reaches it.
  const seen = [];
  const receiver = createServer((req, res) => {
    seen.push({ url: req.url, authorization: req.headers.authorization ?? null });
    res.writeHead(200, { "content-type": "image/png" });
    res.end(PNG);
  });
  await new Promise((r) => receiver.listen(0, "127.0.0.1", r));
  const port = receiver.address().port;
  try {
    const number = phone();
    // Same machine, other host names: a name the list lacks, and the allowed host as user info before it.
    const urls = [`http://localhost:${port}/steal`, `http://127.0.0.1@localhost:${port}/steal2`, `${fake.base}/media/image`];
    const extra = { NumMedia: String(urls.length), Body: "" };
    urls.forEach((u, i) => {
      extra[`MediaUrl${i}`] = u;
      extra[`MediaContentType${i}`] = "image/png";
    });
    const r = await webhook(server, "/webhooks/twilio/whatsapp", inboundParams(number, extra));
    assert.equal(r.status, 200, r.text);
    const c = await conversationOf(server, admin.accessToken, number);
    const [first] = await messages(server, admin.accessToken, c.id);
    const m = await pollMessage(server, admin.accessToken, c.id, first.id, (m) => m.media.every((a) => a.status !== "pending"), "media settled");
    assert.equal(m.media[0].status, "failed");
    assert.match(m.media[0].error, /host `localhost` is not allowed/);
    assert.equal(m.media[1].status, "failed");
    assert.match(m.media[1].error, /host `localhost` is not allowed/);
    assert.equal(m.media[2].status, "stored", "Twilio's own host is still fetched");
    assert.deepEqual(seen, [], "the receiver got no request at all, so no Authorization header");
  } finally {
    receiver.closeAllConnections();
    await new Promise((r) => receiver.close(r));
  }
});

test("media uploads over REST are checked and served through signed URLs", async () => {
  const form = new FormData();
  form.append("file", new Blob([PNG], { type: "image/png" }), "dot.png");
  const up = await fetch(server.base + "/api/v1/media", { method: "POST", headers: { authorization: `Bearer ${agent.accessToken}` }, body: form });
  assert.equal(up.status, 201);
  const media = await up.json();
  assert.equal(media.contentType, "image/png");
  assert.equal(media.size, PNG.length);
  assert.equal(media.source, "upload");
  const got = await fetch(media.url.replace(PUBLIC_URL, server.base));
  assert.deepEqual(Buffer.from(await got.arrayBuffer()), PNG);

  const big = new FormData();
  big.append("file", new Blob([Buffer.alloc(5000)], { type: "image/png" }), "big.png");
  const tooBig = await fetch(server.base + "/api/v1/media", { method: "POST", headers: { authorization: `Bearer ${agent.accessToken}` }, body: big });
  assert.equal(tooBig.status, 413);
  assert.equal((await tooBig.json()).error.code, "media_too_large");
  const exe = new FormData();
  exe.append("file", new Blob([Buffer.from("MZ")], { type: "application/x-msdownload" }), "x.exe");
  const refused = await fetch(server.base + "/api/v1/media", { method: "POST", headers: { authorization: `Bearer ${agent.accessToken}` }, body: exe });
  assert.equal(refused.status, 415);
  assert.equal((await refused.json()).error.code, "media_type_not_allowed");
  const none = new FormData();
  none.append("other", "x");
  const missing = await fetch(server.base + "/api/v1/media", { method: "POST", headers: { authorization: `Bearer ${agent.accessToken}` }, body: none });
  assert.equal(missing.status, 400);
  const anon = await fetch(server.base + "/api/v1/media", { method: "POST", body: form });
  assert.equal(anon.status, 401);
  const noSig = await fetch(server.base + `/api/v1/media/${media.id}`);
  assert.equal(noSig.status, 401);
});

test("an agent's message is sent once through 500s and a timeout, and statuses only move forward", async () => {
  const { number, conv } = await whatsappConversation(server, agent.accessToken);
  const socket = io(server.base, { auth: { token: agent.accessToken }, transports: ["websocket"] });
  await once(socket, "connect");
  await socket.timeout(5000).emitWithAck("conversation:join", { conversationId: conv });
  const statuses = [];
  socket.on("message:status", (s) => statuses.push(s));
  // An integrator hears the same statuses as `message.status` webhooks.
  const hooks = [];
  const receiver = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      hooks.push(JSON.parse(Buffer.concat(chunks).toString()));
      res.writeHead(204).end();
    });
  });
  await new Promise((r) => receiver.listen(0, "127.0.0.1", r));
  const sub = await server.api("POST", "/api/v1/webhooks", {
    token: admin.accessToken,
    body: { url: `http://127.0.0.1:${receiver.address().port}/status`, events: ["message.status"] },
  });
  assert.equal(sub.status, 201, JSON.stringify(sub.body));

  const attemptsBefore = fake.attempts.length;
  const sentBefore = fake.sent.length;
  fake.script.push("500", "timeout", "503", "ok");
  const messageId = uuid();
  const r = await server.api("POST", `/api/v1/conversations/${conv}/messages`, {
    token: agent.accessToken,
    body: { messageId, text: "Sí, tenemos café de Chiapas." },
  });
  assert.equal(r.status, 201);
  assert.equal(r.body.status, "queued");
  const m = await pollMessage(server, agent.accessToken, conv, messageId, (m) => m.providerId, "providerId recorded");
  assert.equal(fake.attempts.length - attemptsBefore, 4);
  // Each request to Twilio is counted by its outcome.
  const metrics = await (await fetch(server.base + "/metrics")).text();
  const count = (series) => Number(metrics.split("\n").find((l) => l.startsWith(series + " "))?.split(" ")[1] || 0);
  assert.ok(count('twilio_requests_total{outcome="error"}') >= 3, metrics);
  assert.ok(count('twilio_requests_total{outcome="ok"}') >= 1);
  const mine = fake.sent.slice(sentBefore);
  assert.equal(mine.length, 1, "sent exactly once");
  assert.equal(m.providerId, mine[0].sid);
  assert.equal(mine[0].to, `whatsapp:${number}`);
  assert.equal(mine[0].from, FROM);
  assert.equal(mine[0].body, "Sí, tenemos café de Chiapas.");
  const callback = mine[0].statusCallback;
  assert.equal(callback, `${PUBLIC_URL}/webhooks/twilio/status?conversationId=${conv}&messageId=${messageId}`);

  // Status callbacks, out of order: a late "sent" after "delivered" changes nothing.
  const path = callback.slice(PUBLIC_URL.length);
  for (const status of ["sent", "delivered", "sent", "queued"]) {
    const cb = await webhook(server, path, { MessageSid: m.providerId, MessageStatus: status, AccountSid: ACCOUNT_SID }, { signUrl: callback });
    assert.equal(cb.status, 200, cb.text);
  }
  let now = await pollMessage(server, agent.accessToken, conv, messageId, (m) => m.status === "delivered", "delivered");
  assert.equal(now.status, "delivered");
  await webhook(server, path, { MessageSid: m.providerId, MessageStatus: "read", AccountSid: ACCOUNT_SID }, { signUrl: callback });
  now = await pollMessage(server, agent.accessToken, conv, messageId, (m) => m.status === "read", "read");
  await waitFor(() => statuses.some((s) => s.status === "read"), 5000, "message:status read");
  const seen = statuses.filter((s) => s.messageId === messageId).map((s) => s.status);
  assert.deepEqual(seen.filter((s) => s !== "queued"), ["sent", "delivered", "read"], `events: ${seen}`);
  assert.ok(statuses.every((s) => s.conversationId === conv));
  // A forged callback changes nothing.
  const real = { MessageSid: m.providerId, MessageStatus: "failed", AccountSid: ACCOUNT_SID };
  const forged = await webhook(server, path, real, { signUrl: callback, signParams: { ...real, MessageStatus: "read" } });
  assert.equal(forged.status, 403);
  assert.equal((await pollMessage(server, agent.accessToken, conv, messageId, () => true, "message")).status, "read");
  socket.disconnect();
  await waitFor(() => hooks.some((h) => h.data.message.id === messageId && h.data.message.status === "read"), 5000, "message.status read webhook");
  const hooked = hooks.filter((h) => h.type === "message.status" && h.data.message.id === messageId).map((h) => h.data.message.status);
  assert.deepEqual(hooked.filter((s) => s !== "queued"), ["sent", "delivered", "read"], `webhooks: ${hooked}`);
  assert.ok(hooks.every((h) => h.data.conversation.id === conv && h.data.conversation.channel === "whatsapp"));
  assert.equal((await server.api("DELETE", `/api/v1/webhooks/${sub.body.id}`, { token: admin.accessToken })).status, 204);
  receiver.close();
});

test("a WhatsApp conversation opened over REST gets the customer's replies", async () => {
  const digits = phone().slice(1);
  const c = await server.api("POST", "/api/v1/conversations", { token: agent.accessToken, body: { channel: "whatsapp", customer: { phone: digits } } });
  assert.equal(c.status, 201);
  assert.equal(c.body.customer.phone, `+${digits}`, "normalized to E.164");
  assert.deepEqual(c.body.whatsappWindow, { open: false, until: null }, "the customer never wrote");
  // Outside the 24-hour window free text is refused; an approved template goes through the outbox.
  const refused = await server.api("POST", `/api/v1/conversations/${c.body.id}/messages`, { token: agent.accessToken, body: { messageId: uuid(), text: "Hola" } });
  assert.equal(refused.status, 409);
  assert.equal(refused.body.error.code, "whatsapp_window_closed");
  const before = fake.sent.length;
  const messageId = uuid();
  const template = { contentSid: "HX" + "1a".repeat(16), variables: { 1: "Ana", 2: "pedido 1042" } };
  const sent = await server.api("POST", `/api/v1/conversations/${c.body.id}/messages`, { token: agent.accessToken, body: { messageId, template } });
  assert.equal(sent.status, 201, JSON.stringify(sent.body));
  await pollMessage(server, agent.accessToken, c.body.id, messageId, (m) => m.providerId, "sent");
  const out = fake.sent.slice(before)[0];
  assert.equal(out.to, `whatsapp:+${digits}`);
  assert.equal(out.contentSid, template.contentSid, "Twilio gets the template's ContentSid");
  assert.deepEqual(JSON.parse(out.contentVariables), { 1: "Ana", 2: "pedido 1042" }, "and its variables");
  assert.equal(out.body, null, "and no free text");
  const reply = await webhook(server, "/webhooks/twilio/whatsapp", inboundParams(`+${digits}`, { Body: "gracias" }));
  assert.equal(reply.status, 200);
  assert.deepEqual((await messages(server, agent.accessToken, c.body.id)).map((m) => m.text ?? null), [null, "gracias"]);
  // The customer wrote: the window is open for 24 hours, and free text goes out.
  const now = (await server.api("GET", `/api/v1/conversations/${c.body.id}`, { token: agent.accessToken })).body;
  assert.equal(now.whatsappWindow.open, true);
  assert.ok(Date.parse(now.whatsappWindow.until) > Date.now() + 23 * 3600e3);
  const free = await server.api("POST", `/api/v1/conversations/${c.body.id}/messages`, { token: agent.accessToken, body: { messageId: uuid(), text: "¡De nada!" } });
  assert.equal(free.status, 201);
  const none = await server.api("POST", "/api/v1/conversations", { token: agent.accessToken, body: { channel: "whatsapp", customer: {} } });
  assert.equal(none.status, 422);
});

test("a 400 is not retried: the message fails with Twilio's error code", async () => {
  const { conv } = await whatsappConversation(server, agent.accessToken);
  const before = fake.attempts.length;
  fake.script.push("400");
  const messageId = uuid();
  const r = await server.api("POST", `/api/v1/conversations/${conv}/messages`, { token: agent.accessToken, body: { messageId, text: "hola" } });
  assert.equal(r.status, 201);
  const m = await pollMessage(server, agent.accessToken, conv, messageId, (m) => m.status === "failed", "failed");
  assert.equal(m.errorCode, "21211");
  assert.match(m.errorMessage, /not a valid phone number/);
  await new Promise((r) => setTimeout(r, 600));
  assert.equal(fake.attempts.length - before, 1, "no retry after a 400");

  // An undelivered report after acceptance keeps Twilio's ErrorCode.
  const id2 = uuid();
  await server.api("POST", `/api/v1/conversations/${conv}/messages`, { token: agent.accessToken, body: { messageId: id2, text: "¿sigues ahí?" } });
  const m2 = await pollMessage(server, agent.accessToken, conv, id2, (m) => m.providerId, "accepted");
  const cb = `${PUBLIC_URL}/webhooks/twilio/status?conversationId=${conv}&messageId=${id2}`;
  const res = await webhook(server, cb.slice(PUBLIC_URL.length), { MessageSid: m2.providerId, MessageStatus: "undelivered", ErrorCode: "63016", AccountSid: ACCOUNT_SID }, { signUrl: cb });
  assert.equal(res.status, 200);
  const u = await pollMessage(server, agent.accessToken, conv, id2, (m) => m.status === "undelivered", "undelivered");
  assert.equal(u.errorCode, "63016");
});

test("the outbox lists waiting entries for operators only", async () => {
  const r = await server.api("GET", "/api/v1/admin/outbox", { token: admin.accessToken });
  assert.equal(r.status, 200);
  assert.equal(r.body.configured, true);
  assert.equal(r.body.breaker, "closed");
  assert.ok(Array.isArray(r.body.items));
  const denied = await server.api("GET", "/api/v1/admin/outbox", { token: agent.accessToken });
  assert.equal(denied.status, 403);
  const h = await server.api("GET", "/health/whatsapp");
  assert.equal(h.body.configured, true);
  assert.ok(h.body.sent >= 1);
});

test("the circuit breaker stops sends while Twilio keeps failing, then resumes", async () => {
  const srv = await startServer(
    twilioEnv({
      UTALK_DELIVERY__BREAKER_FAILURES: "3",
      UTALK_DELIVERY__BREAKER_COOLDOWN_SECS: "2",
      UTALK_DELIVERY__MAX_ATTEMPTS: "100",
      UTALK_DELIVERY__BACKOFF_BASE_MS: "10",
      UTALK_DELIVERY__BACKOFF_MAX_MS: "20",
    }),
  );
  try {
    await srv.setBot(false);
    const token = (await srv.login(AGENT)).accessToken;
    const { conv } = await whatsappConversation(srv, token);
    fake.fallback = "500";
    const before = fake.attempts.length;
    const messageId = uuid();
    await srv.api("POST", `/api/v1/conversations/${conv}/messages`, { token, body: { messageId, text: "breaker" } });
    await waitFor(() => fake.attempts.length - before >= 3, 5000, "three failures");
    await new Promise((r) => setTimeout(r, 1000));
    // Without the breaker, 10–20 ms backoff would have made dozens of attempts by now.
    assert.equal(fake.attempts.length - before, 3, "no attempts while open");
    assert.equal((await srv.api("GET", "/health/whatsapp")).body.breaker, "open");
    // After the cool-down one trial goes through; it fails and the breaker reopens.
    await waitFor(() => fake.attempts.length - before === 4, 5000, "the half-open trial");
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(fake.attempts.length - before, 4);
    fake.fallback = "ok";
    const m = await pollMessage(srv, token, conv, messageId, (m) => m.providerId, "sent after the breaker closed");
    assert.equal(fake.sent.filter((s) => s.sid === m.providerId).length, 1);
    assert.equal((await srv.api("GET", "/health/whatsapp")).body.breaker, "closed");
  } finally {
    fake.fallback = "ok";
    await srv.stop();
  }
});

test("an outbox left by SIGKILL is delivered after restart, each message once", async () => {
  let srv = await startServer(twilioEnv({ UTALK_DELIVERY__MAX_ATTEMPTS: "1000", UTALK_DELIVERY__BREAKER_FAILURES: "1000" }));
  try {
    await srv.setBot(false);
    let token = (await srv.login(AGENT)).accessToken;
    const { conv } = await whatsappConversation(srv, token);
    fake.fallback = "503";
    const ids = [];
    for (let i = 0; i < 5; i++) {
      const messageId = uuid();
      ids.push(messageId);
      const r = await srv.api("POST", `/api/v1/conversations/${conv}/messages`, { token, body: { messageId, text: `kill-${i}` } });
      assert.equal(r.status, 201);
    }
    const before = fake.attempts.length;
    await waitFor(() => fake.attempts.length - before >= 3, 5000, "failing attempts");
    // Inbound webhooks in flight when the process dies: every one answered 200 must be stored.
    const answered = [];
    const inflight = [];
    let stop = false;
    const producer = (async () => {
      for (let i = 0; i < 200 && !stop; i++) {
        const params = inboundParams(phone(), { Body: `in-${i}` });
        inflight.push(
          webhook(srv, "/webhooks/twilio/whatsapp", params).then(
            (r) => r.status === 200 && answered.push(params),
            () => {},
          ),
        );
        await new Promise((r) => setTimeout(r, 3));
      }
    })();
    await waitFor(() => answered.length >= 10, 10000, "webhooks answered under load");
    await srv.kill();
    stop = true;
    await producer;
    await Promise.all(inflight);
    await srv.kill();
    fake.fallback = "ok";
    const sentBefore = fake.sent.length;
    srv = await startServer(twilioEnv(), { reuse: srv.dir });
    token = (await srv.login(AGENT)).accessToken;
    for (const id of ids) await pollMessage(srv, token, conv, id, (m) => m.providerId, `message ${id} sent after restart`);
    await new Promise((r) => setTimeout(r, 500));
    const bodies = fake.sent.slice(sentBefore).map((s) => s.body);
    assert.deepEqual(bodies, ["kill-0", "kill-1", "kill-2", "kill-3", "kill-4"], "each once, in order");
    const adminToken = (await srv.login(ADMIN)).accessToken;
    const left = await srv.api("GET", "/api/v1/admin/outbox", { token: adminToken });
    assert.equal(left.body.items.length, 0);
    assert.ok(answered.length > 0, "some webhooks were answered before the kill");
    for (const p of answered) {
      const c = await conversationOf(srv, adminToken, p.From.slice("whatsapp:".length));
      assert.ok(c, `conversation of acknowledged ${p.MessageSid}`);
      const items = await messages(srv, adminToken, c.id);
      assert.deepEqual(items.map((m) => m.providerId), [p.MessageSid], "acknowledged webhook stored once");
    }
  } finally {
    fake.fallback = "ok";
    await srv.stop();
  }
});

test("without Twilio settings WhatsApp sends wait as not_configured, web chat works, and a restart with settings sends them", async () => {
  let srv = await startServer({});
  try {
    await srv.setBot(false);
    assert.ok(
      srv.logs.some((l) => l.includes("not configured")),
      "the server says so at start",
    );
    let token = (await srv.login(AGENT)).accessToken;
    const number = phone();
    const c = await srv.api("POST", "/api/v1/conversations", { token, body: { channel: "whatsapp", customer: { phone: number } } });
    assert.equal(c.status, 201);
    const messageId = uuid();
    // The customer never wrote, so the business starts with a template.
    const template = { contentSid: "HX" + "2b".repeat(16), variables: { 1: "queued until configured" } };
    const r = await srv.api("POST", `/api/v1/conversations/${c.body.id}/messages`, { token, body: { messageId, template } });
    assert.equal(r.status, 201);
    assert.equal(r.body.status, "not_configured");
    const web = await srv.conversation(token);
    const w = await srv.api("POST", `/api/v1/conversations/${web}/messages`, { token, body: { messageId: uuid(), text: "web chat" } });
    assert.equal(w.status, 201);
    assert.equal(w.body.status, "sent");
    const hook = await webhook(srv, "/webhooks/twilio/whatsapp", inboundParams(number));
    assert.equal(hook.status, 503);
    assert.equal(JSON.parse(hook.text).error.code, "whatsapp_not_configured");
    const admin2 = (await srv.login(ADMIN)).accessToken;
    const ob = await srv.api("GET", "/api/v1/admin/outbox", { token: admin2 });
    assert.equal(ob.body.configured, false);
    assert.equal(ob.body.items.length, 1);
    assert.equal(ob.body.items[0].state, "not_configured");

    await srv.kill();
    const sentBefore = fake.sent.length;
    srv = await startServer(twilioEnv(), { reuse: srv.dir });
    token = (await srv.login(AGENT)).accessToken;
    const m = await pollMessage(srv, token, c.body.id, messageId, (m) => m.providerId, "sent once configured");
    assert.equal(m.status, "queued");
    assert.deepEqual(fake.sent.slice(sentBefore).map((s) => s.to), [`whatsapp:${number}`]);
  } finally {
    await srv.stop();
  }
});
