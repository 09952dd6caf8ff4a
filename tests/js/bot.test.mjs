// The bot answers first, hands over to people, and stops once escalated:
// driven through the real server with Twilio's stand-in, the stock
// socket.io-client for the agent, and a stand-in for an OpenAI-compatible model.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { randomBytes } from "node:crypto";
import twilio from "twilio";
import { io } from "socket.io-client";
import { startServer, once, waitFor, until, uuid, ADMIN, AGENT } from "./harness.mjs";
import { startFakeTwilio } from "./fake-twilio.mjs";

const ACCOUNT_SID = "AC" + "abcdef0123456789".repeat(2);
const AUTH_TOKEN = "bot-auth-token-" + randomBytes(6).toString("hex");
const PUBLIC_URL = "https://chat.example.test";
const FROM = "whatsapp:+14155238886";

let fake;
let model;
let server;
let admin;
let agent;

// A chat-completions stand-in: the next answers are scripted ("ok", "slow", "500", "escalate").
async function startFakeModel() {
  const m = { script: [], requests: [] };
  const srv = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      const parsed = JSON.parse(body || "{}");
      const mode = m.script.length ? m.script.shift() : "ok";
      m.requests.push({ auth: req.headers.authorization, host: req.headers.host, path: req.url, body: parsed, mode });
      const reply = (content) => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ id: "chatcmpl-1", object: "chat.completion", choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop" }] }));
      };
      if (mode === "slow") return setTimeout(() => reply("too late"), 3000);
      if (mode === "500") {
        res.writeHead(500, { "content-type": "application/json" });
        return res.end(JSON.stringify({ error: { message: "boom" } }));
      }
      if (mode === "escalate") return reply("ESCALATE");
      reply("Respuesta del modelo: sí, tenemos café.");
    });
  });
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  m.base = `http://127.0.0.1:${srv.address().port}/v1`;
  m.close = () => new Promise((r) => {
    srv.closeAllConnections();
    srv.close(r);
  });
  return m;
}

function botEnv(extra = {}) {
  return {
    UTALK_TWILIO_ACCOUNT_SID: ACCOUNT_SID,
    UTALK_TWILIO_AUTH_TOKEN: AUTH_TOKEN,
    UTALK_TWILIO_FROM: FROM,
    UTALK_TWILIO_API_BASE: fake.base,
    UTALK_PUBLIC_URL: PUBLIC_URL,
    UTALK_OPENAI_API_KEY: "test-model-key",
    UTALK_BOT__MODEL_TIMEOUT_MS: "500",
    UTALK_BOT__BREAKER_FAILURES: "3",
    UTALK_BOT__BREAKER_COOLDOWN_SECS: "60",
    UTALK_AUTH__WIDGET_SESSIONS_PER_IP_PER_MINUTE: "1000",
    UTALK_DELIVERY__BACKOFF_BASE_MS: "50",
    UTALK_DELIVERY__BACKOFF_MAX_MS: "200",
    UTALK_DELIVERY__MAX_ATTEMPTS: "1000",
    UTALK_DELIVERY__BREAKER_FAILURES: "1000",
    // The model's stand-in listens on 127.0.0.1: the key may go there, and nowhere else.
    UTALK_BOT__ALLOWED_MODEL_HOSTS: '["127.0.0.1"]',
    ...extra,
  };
}

before(async () => {
  fake = await startFakeTwilio({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN });
  model = await startFakeModel();
  server = await startServer(botEnv());
  admin = await server.login(ADMIN);
  agent = await server.login(AGENT);
});

after(async () => {
  await server.stop();
  await fake.close();
  await model.close();
});

function phone() {
  return "+52155" + String(Math.floor(Math.random() * 1e8)).padStart(8, "0");
}

async function customerSays(number, body, srv = server) {
  const params = { MessageSid: "SM" + randomBytes(16).toString("hex"), AccountSid: ACCOUNT_SID, From: `whatsapp:${number}`, To: FROM, Body: body, NumMedia: "0" };
  const sig = twilio.getExpectedTwilioSignature(AUTH_TOKEN, PUBLIC_URL + "/webhooks/twilio/whatsapp", params);
  const res = await fetch(srv.base + "/webhooks/twilio/whatsapp", {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", "x-twilio-signature": sig },
    body: new URLSearchParams(params).toString(),
  });
  assert.equal(res.status, 200);
  return params.MessageSid;
}

async function conversationOf(number, srv = server, token = admin.accessToken) {
  for (let next = null, first = true; first || next; first = false) {
    const r = await srv.api("GET", "/api/v1/conversations?limit=200" + (next ? `&cursor=${next}` : ""), { token });
    const c = r.body.items.find((c) => c.customer.phone === number);
    if (c) return c;
    next = r.body.nextCursor;
  }
  return null;
}

async function messagesOf(conv) {
  return (await server.api("GET", `/api/v1/conversations/${conv}/messages?limit=200`, { token: admin.accessToken })).body.items;
}


const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test("a WhatsApp customer is answered by the rule bot, handed to the online agent, served, closed and rated", async () => {
  const number = phone();
  const socket = io(server.base, { auth: { token: agent.accessToken }, transports: ["websocket"] });
  await once(socket, "connect");
  await sleep(100); // presence reaches the hub

  await customerSays(number, "Hola, buenos días");
  let conv = await until(() => conversationOf(number), "conversation");
  let msgs = await until(async () => {
    const m = await messagesOf(conv.id);
    return m.length >= 2 && m;
  }, "the bot's greeting");
  assert.equal(msgs[1].author.type, "bot");
  assert.match(msgs[1].text, /^¡Hola!/);
  await until(() => fake.sent.some((s) => s.to === `whatsapp:${number}` && /^¡Hola!/.test(s.body)), "greeting sent through Twilio");

  await customerSays(number, "¿Cuál es su horario?");
  msgs = await until(async () => {
    const m = await messagesOf(conv.id);
    return m.length >= 4 && m;
  }, "the hours answer");
  assert.match(msgs[3].text, /^Abrimos/);

  const joined = await socket.timeout(5000).emitWithAck("conversation:join", { conversationId: conv.id });
  assert.equal(joined.ok, true);
  const updates = [];
  socket.on("conversation:updated", (u) => updates.push(u.conversation));
  await customerSays(number, "quiero hablar con un agente");
  conv = await until(async () => {
    const c = (await server.api("GET", `/api/v1/conversations/${conv.id}`, { token: admin.accessToken })).body;
    return c.status === "escalated" && c.assigneeId && c;
  }, "escalated and assigned");
  assert.equal(conv.botEnabled, false);
  assert.equal(conv.assigneeId, agent.user.id);
  assert.ok(conv.escalatedAt);
  await until(() => updates.some((u) => u.status === "escalated"), "conversation:updated to the agent");
  msgs = await messagesOf(conv.id);
  assert.match(msgs[msgs.length - 1].text, /Te comunico con una persona/);

  // Escalated: the bot stays quiet.
  const before = (await messagesOf(conv.id)).length;
  await customerSays(number, "¿hola? ¿alguien?");
  await sleep(700);
  msgs = await messagesOf(conv.id);
  assert.equal(msgs.length, before + 1);
  assert.equal(msgs[msgs.length - 1].author.type, "customer");

  // The agent answers over the socket; it goes out through Twilio.
  const sent = await socket.timeout(5000).emitWithAck("message:send", { conversationId: conv.id, messageId: uuid(), text: "Hola, soy Ana. ¿En qué te ayudo?" });
  assert.equal(sent.ok, true);
  await until(() => fake.sent.some((s) => s.body === "Hola, soy Ana. ¿En qué te ayudo?"), "agent reply sent");
  conv = (await server.api("GET", `/api/v1/conversations/${conv.id}`, { token: admin.accessToken })).body;
  assert.ok(conv.firstAgentReplyAt, "first agent reply timed");

  // Close: a CSAT question goes out; the customer's "5" is the rating, then NPS.
  const closed = await server.api("POST", `/api/v1/conversations/${conv.id}/close`, { token: agent.accessToken, body: { resolution: "informó horarios" } });
  assert.equal(closed.status, 200);
  assert.equal(closed.body.status, "closed");
  assert.equal(closed.body.firstContactResolution, true);
  assert.equal(closed.body.awaitingRating, "csat");
  await until(() => fake.sent.some((s) => s.to === `whatsapp:${number}` && /del 1 al 5/.test(s.body)), "CSAT question sent");
  await customerSays(number, "5");
  await until(async () => (await server.api("GET", `/api/v1/conversations/${conv.id}`, { token: admin.accessToken })).body.csat === 5, "csat stored");
  await until(() => fake.sent.some((s) => s.to === `whatsapp:${number}` && /del 0 al 10/.test(s.body)), "NPS question sent");
  await customerSays(number, "9");
  conv = await until(async () => {
    const c = (await server.api("GET", `/api/v1/conversations/${conv.id}`, { token: admin.accessToken })).body;
    return c.nps === 9 && c;
  }, "nps stored");
  assert.equal(conv.status, "closed", "ratings do not reopen");

  // Anything else reopens, with the bot answering again.
  await customerSays(number, "gracias");
  conv = await until(async () => {
    const c = (await server.api("GET", `/api/v1/conversations/${conv.id}`, { token: admin.accessToken })).body;
    return c.status === "open" && c;
  }, "reopened");
  assert.equal(conv.reopened, 1);
  await until(async () => (await messagesOf(conv.id)).at(-1).author.type === "bot", "the bot answers after the reopen");

  // A run is recorded just after its answer is stored: wait for the fourth.
  const mine = await until(async () => {
    const r = (await server.api("GET", "/api/v1/ai/runs?limit=200", { token: admin.accessToken })).body.items.filter((r) => r.conversationId === conv.id);
    return r.length >= 4 && r;
  }, "four bot runs recorded");
  assert.deepEqual(mine.map((r) => r.outcome), ["answered", "answered", "escalated", "answered"]);
  assert.deepEqual(mine.map((r) => r.intent).slice(0, 2), ["greeting", "hours"]);
  assert.equal(mine[2].escalationReason, "explicit");
  assert.ok(mine.every((r) => r.latencyMs >= 0 && r.provider === "rules"));
  socket.disconnect();
});

test("a message racing an escalation never gets a bot answer after it (40 rounds)", async () => {
  const socket = io(server.base, { auth: { token: admin.accessToken }, transports: ["websocket"] });
  await once(socket, "connect");
  for (let round = 0; round < 40; round++) {
    const w = await server.api("POST", "/api/v1/widget/sessions", { body: { name: `race ${round}` } });
    assert.equal(w.status, 201);
    const conv = w.body.conversationId;
    const events = [];
    const onMsg = (p) => p.message.conversationId === conv && events.push(["message", p.message.author.type, p.message.seq]);
    const onUpd = (p) => p.conversation.id === conv && events.push(["updated", p.conversation.status]);
    socket.on("message:new", onMsg);
    socket.on("conversation:updated", onUpd);
    await socket.timeout(5000).emitWithAck("conversation:join", { conversationId: conv });
    const send = server.api("POST", `/api/v1/conversations/${conv}/messages`, { token: w.body.token, body: { messageId: uuid(), text: "Hola" } });
    if (round % 2) await sleep(round % 5);
    const esc = server.api("POST", `/api/v1/conversations/${conv}/escalate`, { token: admin.accessToken, body: { reason: "race" } });
    const [s, e] = await Promise.all([send, esc]);
    assert.equal(s.status, 201);
    assert.equal(e.status, 200);
    await sleep(150);
    socket.off("message:new", onMsg);
    socket.off("conversation:updated", onUpd);
    const escalatedAt = events.findIndex((x) => x[0] === "updated" && x[1] === "escalated");
    assert.ok(escalatedAt >= 0, `round ${round}: escalation seen: ${JSON.stringify(events)}`);
    const botAfter = events.slice(escalatedAt).filter((x) => x[0] === "message" && x[1] === "bot");
    assert.deepEqual(botAfter, [], `round ${round}: ${JSON.stringify(events)}`);
    const stored = (await server.api("GET", `/api/v1/conversations/${conv}/messages`, { token: admin.accessToken })).body.items;
    assert.equal(stored.filter((m) => m.author.type === "bot").length, events.filter((x) => x[1] === "bot").length);
  }
  socket.disconnect();
});

test("the OpenAI-compatible responder answers, falls back to the rules when slow or failing, and opens its breaker", async () => {
  const cfg = await server.setBot(true, { provider: "openai", baseUrl: model.base, model: "test-model", autoEscalate: false });
  assert.equal(cfg.provider, "openai");
  const number = phone();
  const reqsBefore = model.requests.length;
  await customerSays(number, "¿tienen café?");
  const conv = await until(() => conversationOf(number), "conversation");
  let msgs = await until(async () => {
    const m = await messagesOf(conv.id);
    return m.length >= 2 && m;
  }, "the model's answer");
  assert.equal(msgs[1].text, "Respuesta del modelo: sí, tenemos café.");
  const first = model.requests[reqsBefore];
  assert.equal(first.auth, "Bearer test-model-key");
  assert.equal(first.path, "/v1/chat/completions");
  assert.equal(first.body.model, "test-model");
  assert.equal(first.body.messages.at(-1).content, "¿tienen café?");

  // Slow, then failing: the rules answer instead, and the run says so.
  for (const mode of ["slow", "500"]) {
    model.script.push(mode);
    const n = (await messagesOf(conv.id)).length;
    await customerSays(number, "Hola");
    msgs = await until(async () => {
      const m = await messagesOf(conv.id);
      return m.length >= n + 2 && m;
    }, `fallback after ${mode}`);
    assert.match(msgs.at(-1).text, /^¡Hola!/, mode);
  }
  // A run is recorded just after its answer is stored: wait for the third.
  const runs = await until(async () => {
    const r = (await server.api("GET", "/api/v1/ai/runs?limit=200", { token: admin.accessToken })).body.items.filter((r) => r.conversationId === conv.id);
    return r.length >= 3 && r;
  }, "three bot runs recorded");
  assert.deepEqual(runs.map((r) => r.provider), ["openai", "rules_fallback", "rules_fallback"]);
  // Each request to the model is counted by its outcome.
  const metrics = await (await fetch(server.base + "/metrics")).text();
  const count = (series) => Number(metrics.split("\n").find((l) => l.startsWith(series + " "))?.split(" ")[1] || 0);
  assert.ok(count('model_requests_total{outcome="ok"}') >= 1, metrics);
  assert.ok(count('model_requests_total{outcome="timeout"}') >= 1);
  assert.ok(count('model_requests_total{outcome="error"}') >= 1);

  // A third failure opens the breaker: the model is not called again for a while.
  model.script.push("500");
  await customerSays(number, "Hola");
  await until(async () => (await messagesOf(conv.id)).length >= 8, "third fallback");
  const calls = model.requests.length;
  for (let i = 0; i < 3; i++) {
    const n = (await messagesOf(conv.id)).length;
    await customerSays(number, "Buenas tardes");
    await until(async () => (await messagesOf(conv.id)).length >= n + 2, "answer with the breaker open");
  }
  assert.equal(model.requests.length, calls, "no model calls while the breaker is open");
  // The history sent is bounded even in a long conversation.
  assert.ok(model.requests.every((r) => r.body.messages.length <= 12));
  await server.setBot(true, { provider: "rules", autoEscalate: true });
});

test("the model's API key goes only to hosts the configuration allows", async () => {
  const port = new URL(model.base).port;
  const cur = (await server.api("GET", "/api/v1/ai/config", { token: admin.accessToken })).body;
  const { updatedAt, updatedBy, ...body } = cur;
  const calls = model.requests.length;
  // Another name for the stand-in, the allowed host as user info before another host, and the
  // default host, which this server's list leaves out: all refused, nothing stored.
  for (const baseUrl of [`http://localhost:${port}/v1`, `http://127.0.0.1@localhost:${port}/v1`, "https://api.openai.com/v1"]) {
    const r = await server.api("PUT", "/api/v1/ai/config", { token: admin.accessToken, body: { ...body, provider: "openai", baseUrl } });
    assert.equal(r.status, 422, baseUrl);
    assert.equal(r.body.error.code, "model_host_not_allowed", baseUrl);
  }
  const after = (await server.api("GET", "/api/v1/ai/config", { token: admin.accessToken })).body;
  assert.equal(after.version, cur.version);
  assert.equal(after.baseUrl, cur.baseUrl);
  assert.equal(model.requests.length, calls);

  // Settings stored under a wider list, then a restart with the narrower one:
  // the key is not sent to the host no longer allowed; the rules answer and the log says why.
  const wide = await startServer(botEnv({ UTALK_BOT__ALLOWED_MODEL_HOSTS: '["127.0.0.1", "localhost"]' }));
  let kept = false;
  try {
    await wide.setBot(true, { provider: "openai", baseUrl: `http://localhost:${port}/v1`, model: "test-model", autoEscalate: false });
    await wide.kill();
    const narrow = await startServer(botEnv(), { reuse: wide.dir });
    kept = true;
    try {
      const token = (await narrow.login(ADMIN)).accessToken;
      const number = phone();
      await customerSays(number, "Hola, buenos días", narrow);
      const conv = await until(() => conversationOf(number, narrow, token), "conversation");
      const msgs = await until(async () => {
        const m = (await narrow.api("GET", `/api/v1/conversations/${conv.id}/messages`, { token })).body.items;
        return m.length >= 2 && m;
      }, "the rules' answer");
      assert.match(msgs[1].text, /^¡Hola!/);
      const runs = await until(async () => {
        const r = (await narrow.api("GET", "/api/v1/ai/runs?limit=200", { token })).body.items.filter((r) => r.conversationId === conv.id);
        return r.length >= 1 && r;
      }, "the bot run");
      assert.equal(runs[0].provider, "rules_fallback");
      assert.equal(model.requests.length, calls, "the model was not called, under any host name");
      assert.ok(narrow.logs.some((l) => l.includes('"level":"ERROR"') && l.includes("allowed_model_hosts")), "an error is logged");
    } finally {
      await narrow.stop();
    }
  } finally {
    if (!kept) await wide.stop();
  }
});

test("bot settings are validated, versioned and admin-only", async () => {
  const cur = (await server.api("GET", "/api/v1/ai/config", { token: agent.accessToken })).body;
  const { updatedAt, updatedBy, ...body } = cur;
  const denied = await server.api("PUT", "/api/v1/ai/config", { token: agent.accessToken, body });
  assert.equal(denied.status, 403);
  const stale = await server.api("PUT", "/api/v1/ai/config", { token: admin.accessToken, body: { ...body, version: body.version - 1 } });
  assert.equal(stale.status, 409);
  assert.equal(stale.body.error.code, "version_conflict");
  for (const bad of [{ confidenceThreshold: 2 }, { maxBotTurns: 0 }, { baseUrl: "ftp://x" }, { provider: "magic" }, { escalationKeywords: [""] }]) {
    const r = await server.api("PUT", "/api/v1/ai/config", { token: admin.accessToken, body: { ...body, ...bad } });
    assert.equal(r.status, 422, JSON.stringify(bad));
  }
  const unchanged = (await server.api("GET", "/api/v1/ai/config", { token: admin.accessToken })).body;
  assert.equal(unchanged.version, cur.version);
  const ok = await server.api("PUT", "/api/v1/ai/config", { token: admin.accessToken, body: { ...body, maxBotTurns: 7 } });
  assert.equal(ok.status, 200);
  assert.equal(ok.body.version, cur.version + 1);
  assert.equal(ok.body.updatedBy, admin.user.id);
});

test("ratings over REST and the widget event are checked; force-pause-bot repairs escalated conversations", async () => {
  const w = await server.api("POST", "/api/v1/widget/sessions", { body: { name: "Rater" } });
  const conv = w.body.conversationId;
  const bad = await server.api("POST", `/api/v1/conversations/${conv}/rating`, { token: w.body.token, body: { csat: 6 } });
  assert.equal(bad.status, 422);
  const ok = await server.api("POST", `/api/v1/conversations/${conv}/rating`, { token: w.body.token, body: { csat: 4 } });
  assert.equal(ok.status, 200);
  assert.equal(ok.body.csat, 4);
  const widget = io(server.base, { auth: { token: w.body.token }, transports: ["websocket"] });
  await once(widget, "connect");
  const rated = await widget.timeout(5000).emitWithAck("conversation:rate", { conversationId: conv, nps: 10 });
  assert.equal(rated.ok, true);
  assert.equal(rated.nps, 10);
  const wrong = await widget.timeout(5000).emitWithAck("conversation:rate", { conversationId: conv, nps: 11 });
  assert.equal(wrong.error.code, "invalid_rating");
  const other = await widget.timeout(5000).emitWithAck("conversation:rate", { conversationId: uuid(), csat: 3 });
  assert.equal(other.error.code, "forbidden");
  widget.disconnect();

  const esc = await server.api("POST", `/api/v1/conversations/${conv}/escalate`, { token: agent.accessToken, body: {} });
  assert.equal(esc.body.botEnabled, false);
  const fp = await server.api("POST", "/api/v1/conversations/force-pause-bot", { token: admin.accessToken });
  assert.equal(fp.status, 200);
  assert.equal(fp.body.paused, 0, "escalation already paused the bot");
  assert.ok(fp.body.checked >= 1);
  const denied = await server.api("POST", "/api/v1/conversations/force-pause-bot", { token: agent.accessToken });
  assert.equal(denied.status, 403);
});

test("an escalation that found no agent online goes to the first agent who connects", async () => {
  // A server of its own: earlier tests leave escalations waiting ahead of this one.
  const srv = await startServer({});
  try {
    const adm = await srv.login(ADMIN);
    const ag = await srv.login(AGENT);
    const w = await srv.api("POST", "/api/v1/widget/sessions", { body: { name: "Waiting" } });
    const conv = w.body.conversationId;
    const esc = await srv.api("POST", `/api/v1/conversations/${conv}/escalate`, { token: adm.accessToken, body: { reason: "nobody online" } });
    assert.equal(esc.status, 200);
    await sleep(300);
    assert.equal((await srv.api("GET", `/api/v1/conversations/${conv}`, { token: adm.accessToken })).body.assigneeId, null);
    const socket = io(srv.base, { auth: { token: ag.accessToken }, transports: ["websocket"] });
    await once(socket, "connect");
    const c = await until(async () => {
      const c = (await srv.api("GET", `/api/v1/conversations/${conv}`, { token: adm.accessToken })).body;
      return c.assigneeId && c;
    }, "assignment after the agent came online", 15000);
    assert.equal(c.assigneeId, ag.user.id);
    // Closed conversations cannot be escalated; PATCH to escalated goes through the same rules.
    await srv.api("POST", `/api/v1/conversations/${conv}/close`, { token: ag.accessToken, body: { resolution: "done", askRating: false } });
    const again = await srv.api("POST", `/api/v1/conversations/${conv}/escalate`, { token: ag.accessToken, body: {} });
    assert.equal(again.status, 409);
    assert.equal(again.body.error.code, "conversation_closed");
    const w2 = await srv.api("POST", "/api/v1/widget/sessions", { body: { name: "Patched" } });
    const p = await srv.api("PATCH", `/api/v1/conversations/${w2.body.conversationId}`, { token: ag.accessToken, body: { status: "escalated" } });
    assert.equal(p.body.status, "escalated");
    assert.equal(p.body.botEnabled, false);
    assert.ok(p.body.escalatedAt);
    socket.disconnect();
  } finally {
    await srv.stop();
  }
});

test("a bot answer still in the WhatsApp outbox is not sent once the conversation is escalated", async () => {
  const number = phone();
  fake.fallback = "503";
  try {
    const attempts = fake.attempts.length;
    await customerSays(number, "Hola");
    const conv = await until(() => conversationOf(number), "conversation");
    await until(() => fake.attempts.slice(attempts).some((a) => /^¡Hola!/.test(a.body || "")), "the bot's answer tried and failing");
    const esc = await server.api("POST", `/api/v1/conversations/${conv.id}/escalate`, { token: agent.accessToken, body: { reason: "take over" } });
    assert.equal(esc.status, 200);
    fake.fallback = "ok";
    const bot = await until(async () => {
      const m = (await messagesOf(conv.id)).find((m) => m.author.type === "bot");
      return m && m.status === "failed" && m;
    }, "the held bot answer dropped");
    assert.equal(bot.errorCode, "bot_paused");
    await sleep(300);
    assert.equal(fake.sent.filter((s) => s.to === `whatsapp:${number}`).length, 0, "nothing from the bot reached the customer");
  } finally {
    fake.fallback = "ok";
  }
});
