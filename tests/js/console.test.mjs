// The agent console (src/web/app/) in headless Chromium against the real
// server: login, the live queue, taking and answering a conversation,
// typing and read markers, actions, token refresh, users, attachments,
// retries, history paging, presence, private notes, canned responses,
// labels, axe-core on every screen, and no CSP violation anywhere.
import { test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, existsSync } from "node:fs";
import { chromium } from "playwright-core";
import { io } from "socket.io-client";
import { startServer, until, ADMIN, AGENT, uuid } from "./harness.mjs";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const SOCKET_JS = new URL("../../src/web/socket.js", import.meta.url);
const AXE = readFileSync(new URL("./node_modules/axe-core/axe.min.js", import.meta.url), "utf8");
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const T = 15000;

let server;
let browser;
const sockets = [];

before(async () => {
  assert.ok(existsSync(CHROMIUM), `Chromium is expected at ${CHROMIUM}`);
  assert.ok(existsSync(SOCKET_JS), "src/web/socket.js is expected");
  server = await startServer();
  await server.setBot(false);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  for (const s of sockets) s.close();
  await browser?.close();
  await server?.stop();
});

// Contexts a failed test left open would keep their staff online for the next tests.
const contexts = new Set();
afterEach(async () => {
  for (const c of contexts) await c.close().catch(() => {});
  contexts.clear();
});

// A fresh browser context with the console loaded; records CSP violations and page errors.
async function openPage(srv = server) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  contexts.add(context);
  const page = await context.newPage();
  page.problems = [];
  page.on("console", (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) page.problems.push(m.text());
  });
  page.on("pageerror", (e) => page.problems.push(`page error: ${e.message}`));
  const res = await page.goto(`${srv.base}/app/`);
  assert.equal(res.headers()["content-security-policy"], CSP, "the page is served under the console's policy");
  await page.locator("#screen-login:not([hidden]), #screen-inbox:not([hidden])").first().waitFor({ timeout: T });
  return page;
}

async function login(page, user) {
  await page.fill("#login-email", user.email);
  await page.fill("#login-password", user.password);
  await page.press("#login-password", "Enter");
  await page.locator("#screen-inbox:not([hidden])").waitFor({ timeout: T });
  await page.locator("#conn-state.conn-connected").waitFor({ timeout: T });
}

async function openConsole(user, srv = server) {
  const page = await openPage(srv);
  await login(page, user);
  return page;
}

async function done(page) {
  assert.deepEqual(page.problems, [], "no CSP violations or page errors");
  contexts.delete(page.context());
  await page.context().close();
}

async function axeCheck(page, what) {
  await page.evaluate(AXE);
  const violations = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ")) }));
  });
  const bad = violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(bad, [], `${what}: ${JSON.stringify(bad, null, 1)}`);
}

const api = (method, path, opts) => server.api(method, path, opts);
async function adminToken(srv = server) {
  return (await srv.login(ADMIN)).accessToken;
}
async function widgetSession(name, srv = server) {
  const r = await srv.api("POST", "/api/v1/widget/sessions", { body: { name } });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body;
}
// Each call is another customer: a phone or email already known names its contact, whose name the conversation shows.
let customers = 0;
async function apiConversation(token, name, srv = server) {
  const n = ++customers;
  const customer = { name, phone: `+3460011${String(n).padStart(4, "0")}`, email: `c${n}@example.com` };
  const r = await srv.api("POST", "/api/v1/conversations", { token, body: { channel: "api", customer } });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.id;
}
async function messages(id, token, srv = server) {
  const r = await srv.api("GET", `/api/v1/conversations/${id}/messages?afterSeq=0&limit=200`, { token });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.items;
}
async function conversation(id, token, srv = server) {
  const r = await srv.api("GET", `/api/v1/conversations/${id}`, { token });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}
function customerSocket(token) {
  const s = io(server.base, { auth: { token }, transports: ["websocket"], reconnection: false });
  sockets.push(s);
  s.seen = [];
  s.onAny((event, payload) => s.seen.push({ event, payload }));
  return new Promise((resolve, reject) => {
    s.on("connect", () => resolve(s));
    s.on("connect_error", reject);
  });
}
async function openConversation(page, view, id) {
  await page.evaluate(([v, i]) => (location.hash = `#/queue/${v}/${i}`), [view, id]);
  await page.locator("#conv-body:not([hidden])").waitFor({ timeout: T });
  await page.waitForFunction(() => document.querySelector("#messages").getAttribute("aria-busy") === null && document.querySelector("#conv-title").textContent !== "");
}

test("login shows the server's refusal and signs in", async () => {
  const page = await openPage();
  await axeCheck(page, "login screen");
  await page.fill("#login-email", AGENT.email);
  await page.fill("#login-password", "not-the-password");
  await page.click("#login-submit");
  await page.locator("#login-error", { hasText: "Wrong email or password." }).waitFor({ timeout: T });
  await login(page, AGENT);
  assert.match(await page.textContent("#me-name"), /agent@example\.com/);
  // Agents see neither reports nor users.
  assert.equal(await page.isVisible('[data-nav="reports"]'), false);
  assert.equal(await page.isVisible('[data-nav="users"]'), false);
  await done(page);
});

test("agent: an escalation appears live, is taken and answered; typing, customer messages and read markers are live", async () => {
  const page = await openConsole(AGENT);
  const agentId = await page.evaluate(() => UT.auth.user.id);
  // Away, so the escalation is not assigned automatically and waits in the queue.
  await page.selectOption("#presence-select", "away");
  await page.evaluate(() => UT.socket.emit("presence:set", { status: document.getElementById("presence-select").value }));
  await page.click('[data-view="waiting"]');
  await page.evaluate(() => (window.__samePage = true));

  const w = await widgetSession("Lucía Live");
  const admin = await adminToken();
  const esc = await api("POST", `/api/v1/conversations/${w.conversationId}/escalate`, { token: admin, body: { reason: "test" } });
  assert.equal(esc.status, 200, JSON.stringify(esc.body));

  const item = page.locator(".conv-item", { hasText: "Lucía Live" });
  await item.waitFor({ timeout: T });
  assert.match(await item.textContent(), /Escalated/);
  assert.match(await item.textContent(), /New/);
  assert.equal(await page.evaluate(() => window.__samePage), true, "no reload");
  await axeCheck(page, "queue");

  await item.locator("a").click();
  await page.locator("#conv-title", { hasText: "Lucía Live" }).waitFor({ timeout: T });
  await page.click("#act-take");
  await until(async () => (await conversation(w.conversationId, admin)).assigneeId === agentId, "assignee via REST");
  // Taken: the conversation leaves "waiting" and is under "mine".
  await item.waitFor({ state: "detached", timeout: T });
  await page.click('[data-view="mine"]');
  await page.locator(".conv-item", { hasText: "Lucía Live" }).waitFor({ timeout: T });

  const customer = await customerSocket(w.token);
  const joined = await customer.emitWithAck("conversation:join", { conversationId: w.conversationId, sinceSeq: 0 });
  assert.equal(joined.ok, true, JSON.stringify(joined));

  // The agent types: the customer hears typing:start; Enter sends.
  await page.click("#reply");
  await page.keyboard.type("Hola Lucía, ");
  await page.keyboard.press("Shift+Enter");
  await page.keyboard.type("¿en qué te ayudo?");
  await until(() => customer.seen.some((e) => e.event === "typing" && e.payload.typing && e.payload.user.type === "agent"), "agent typing at the customer");
  await page.keyboard.press("Enter");
  const reply = "Hola Lucía, \n¿en qué te ayudo?";
  const stored = await until(async () => (await messages(w.conversationId, admin)).find((m) => m.text === reply), "the reply stored");
  assert.equal(stored.author.type, "agent");
  assert.equal(stored.author.id, agentId);
  assert.equal(stored.direction, "outbound");
  await page.locator(".msg-out", { hasText: "¿en qué te ayudo?" }).waitFor({ timeout: T });
  assert.equal(await page.inputValue("#reply"), "");

  // The customer types and writes: both show live.
  await customer.emitWithAck("typing:start", { conversationId: w.conversationId });
  await page.locator("#typing", { hasText: "Customer is typing" }).waitFor({ timeout: T });
  const sent = await server.api("POST", `/api/v1/conversations/${w.conversationId}/messages`, { token: w.token, body: { messageId: uuid(), text: "Mi pedido no llegó" } });
  assert.equal(sent.status, 201, JSON.stringify(sent.body));
  await page.locator(".msg-in", { hasText: "Mi pedido no llegó" }).waitFor({ timeout: T });
  await page.waitForFunction(() => document.getElementById("typing").textContent === "");
  // Viewing it marks it read for the customer.
  await until(() => customer.seen.some((e) => e.event === "message:read" && e.payload.reader.type === "agent" && e.payload.seq === sent.body.seq), "agent read marker");
  // The customer reads the reply: the console says so.
  await customer.emitWithAck("message:read", { conversationId: w.conversationId, seq: stored.seq });
  await page.locator(`.msg[data-id="${stored.id}"] .seen`).waitFor({ timeout: T });
  await axeCheck(page, "conversation view");
  customer.close();
  await done(page);
});

test("actions: escalate and close, reflected over REST", async () => {
  const admin = await adminToken();
  const id = await apiConversation(admin, "Marta Acciones");
  const page = await openConsole(ADMIN);
  await openConversation(page, "open", id);
  await page.click("#act-escalate");
  await page.fill("#escalate-reason", "needs a person");
  await page.press("#escalate-reason", "Enter");
  await until(async () => (await conversation(id, admin)).status === "escalated", "escalated via REST");
  await page.locator("#conv-facts", { hasText: "Escalated" }).waitFor({ timeout: T });
  // Escape closes a menu and gives focus back to its button.
  await page.click("#act-close");
  assert.equal(await page.isVisible("#close-menu"), true);
  await axeCheck(page, "conversation view with a menu open");
  await page.keyboard.press("Escape");
  assert.equal(await page.isVisible("#close-menu"), false);
  assert.equal(await page.evaluate(() => document.activeElement.id), "act-close");
  await page.keyboard.press("Enter");
  await page.fill("#close-resolution", "resolved by phone");
  await page.uncheck("#close-ask-rating");
  await page.press("#close-resolution", "Enter");
  const closed = await until(async () => {
    const c = await conversation(id, admin);
    return c.status === "closed" && c;
  }, "closed via REST");
  assert.equal(closed.resolution, "resolved by phone");
  await page.click('[data-view="closed"]');
  await page.locator(".conv-item", { hasText: "Marta Acciones" }).waitFor({ timeout: T });
  // A closed conversation cannot be escalated: the server's refusal is shown.
  const r = await api("POST", `/api/v1/conversations/${id}/escalate`, { token: admin, body: {} });
  assert.equal(r.status, 409);
  await done(page);
});

test("actions: pause and resume the bot, reflected over REST", async () => {
  const admin = await adminToken();
  const id = await apiConversation(admin, "Pablo Bot");
  const page = await openConsole(AGENT);
  await openConversation(page, "open", id);
  await page.locator("#act-bot", { hasText: "Pause bot" }).click();
  await page.locator("#act-bot", { hasText: "Resume bot" }).waitFor({ timeout: T });
  assert.equal((await conversation(id, admin)).botEnabled, false);
  await page.click("#act-bot");
  await page.locator("#act-bot", { hasText: "Pause bot" }).waitFor({ timeout: T });
  assert.equal((await conversation(id, admin)).botEnabled, true);
  assert.equal(await page.textContent("#conv-error"), "");
  await done(page);
});

test("admin adds a user, changes the role and disables it", async () => {
  const page = await openConsole(ADMIN);
  await page.click('[data-nav="users"]');
  await page.locator("#users-rows tr").first().waitFor({ timeout: T });
  await axeCheck(page, "users screen");
  const email = `new-${Date.now()}@example.com`;
  await page.fill("#user-email", email);
  await page.fill("#user-name", "Nora Nueva");
  await page.selectOption("#user-role", "agent");
  await page.fill("#user-password", "a-long-password-1");
  await page.click('#user-form button[type="submit"]');
  const row = page.locator("#users-rows tr", { hasText: email });
  await row.waitFor({ timeout: T });
  const admin = await adminToken();
  const find = async () => (await api("GET", "/api/v1/users?limit=200", { token: admin })).body.items.find((u) => u.email === email);
  const made = await find();
  assert.equal(made.role, "agent");
  assert.equal(made.name, "Nora Nueva");
  assert.equal(made.disabled, false);
  // The new user can sign in.
  assert.equal((await api("POST", "/api/v1/auth/login", { body: { email, password: "a-long-password-1" } })).status, 200);

  await row.locator("select").selectOption("operator");
  await until(async () => (await find()).role === "operator", "role via REST");
  await row.locator('[data-action="toggle"]').click();
  await until(async () => (await find()).disabled === true, "disabled via REST");
  await row.locator("td", { hasText: "Disabled" }).waitFor({ timeout: T });
  const refused = await api("POST", "/api/v1/auth/login", { body: { email, password: "a-long-password-1" } });
  assert.equal(refused.status, 401);
  // Admins cannot lock themselves out: their own row's controls are off.
  const mine = page.locator("#users-rows tr", { hasText: ADMIN.email });
  assert.equal(await mine.locator('[data-action="toggle"]').isDisabled(), true);
  await done(page);
});

test("reports and canned responses screens pass axe; reports list daily links", async () => {
  const page = await openConsole(ADMIN);
  await page.click('[data-nav="reports"]');
  await page.locator("#kpi-rows tr").first().waitFor({ timeout: T });
  await page.click("#daily-make");
  const link = page.locator("#daily-list a").first();
  await link.waitFor({ timeout: T });
  assert.match(await link.getAttribute("href"), /^\/reports\/daily-\d{4}-\d{2}-\d{2}\.html\?expires=\d+&sig=/);
  await axeCheck(page, "reports screen");
  await page.click('[data-nav="canned"]');
  await page.locator("#canned-status:not(:empty), #canned-rows tr").first().waitFor({ timeout: T });
  await axeCheck(page, "canned responses screen");
  await done(page);
});

test("the session survives access token expiry, a reload, and ends at logout", async () => {
  const srv = await startServer({ UTALK_AUTH__ACCESS_TTL_SECS: "6" });
  try {
    await srv.setBot(false);
    const page = await openConsole(AGENT, srv);
    const firstRefresh = await page.evaluate(() => localStorage.getItem("utalk.console.refreshToken"));
    const firstAccess = await page.evaluate(() => UT.auth.accessToken);
    assert.ok(firstRefresh);
    // An API key, since an admin's access token would expire too.
    const key = await srv.api("POST", "/api/v1/api-keys", { token: (await srv.login(ADMIN)).accessToken, body: { name: "console test", role: "admin" } });
    assert.equal(key.status, 201, JSON.stringify(key.body));
    const admin = key.body.key;
    const id = await apiConversation(admin, "Tomás Tokens", srv);
    await page.click('[data-view="open"]');
    await page.locator(".conv-item", { hasText: "Tomás Tokens" }).waitFor({ timeout: T });
    await openConversation(page, "open", id);
    // Two lifetimes later: REST, the socket and live events still work.
    await page.waitForTimeout(12500);
    await page.fill("#reply", "still here");
    await page.press("#reply", "Enter");
    await until(async () => (await messages(id, admin, srv)).some((m) => m.text === "still here"), "reply after expiry", T);
    const id2 = await apiConversation(admin, "Tomás Después", srv);
    await page.locator(".conv-item", { hasText: "Tomás Después" }).waitFor({ timeout: T });
    await page.click('[data-view="closed"]');
    await page.locator("#queue-status", { hasText: /Closed|Nothing/ }).waitFor({ timeout: T });
    assert.notEqual(await page.evaluate(() => localStorage.getItem("utalk.console.refreshToken")), firstRefresh, "refreshed");
    // The first token, long expired (past the server's few seconds of leeway), that the
    // console believes good, right after a refresh (so the next one is seconds away): a REST
    // call answers 401 token_expired, and the console refreshes and retries it at once; a
    // socket CONNECT refused with token_expired refreshes and connects again at once.
    const stale = async () => {
      await page.evaluate(() => UT.refresh());
      await page.evaluate((t) => {
        UT.auth.accessToken = t;
        UT.auth.expiresAt = Date.now() + 600000;
      }, firstAccess);
    };
    await page.evaluate(() => UT.socket.close()); // the REST call alone
    await stale();
    await page.click('[data-view="open"]');
    await page.locator("#queue-status", { hasText: "Open and escalated" }).waitFor({ timeout: 3000 });
    assert.notEqual(await page.evaluate(() => UT.auth.accessToken), firstAccess, "refreshed after a 401");
    await stale();
    await page.evaluate(() => {
      UT.socket.close();
      UT.socket.open();
    });
    await page.waitForFunction((t) => UT.socket.connected && UT.auth.accessToken !== t, firstAccess, { timeout: 3000 });
    await page.locator("#conn-state.conn-connected").waitFor({ timeout: T });
    // A reload stays signed in, from the stored refresh token.
    await page.reload();
    await page.locator("#screen-inbox:not([hidden])").waitFor({ timeout: T });
    await page.locator("#conn-state.conn-connected").waitFor({ timeout: T });
    await openConversation(page, "open", id2);
    await page.fill("#reply", "after reload");
    await page.press("#reply", "Enter");
    await until(async () => (await messages(id2, admin, srv)).some((m) => m.text === "after reload"), "reply after reload", T);
    // Logout forgets the refresh token.
    await page.click("#logout-btn");
    await page.locator("#screen-login:not([hidden])").waitFor({ timeout: T });
    assert.equal(await page.evaluate(() => localStorage.getItem("utalk.console.refreshToken")), null);
    await page.reload();
    await page.locator("#screen-login:not([hidden])").waitFor({ timeout: T });
    await done(page);
  } finally {
    await srv.stop();
  }
});

const PNG = Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==", "base64");

test("attachments: the agent sends an image, the customer's image shows, both under the CSP", async () => {
  const w = await widgetSession("Ana Adjuntos");
  const admin = await adminToken();
  const fd = new FormData();
  fd.append("conversationId", w.conversationId);
  fd.append("file", new Blob([PNG], { type: "image/png" }), "from-customer.png");
  const up = await fetch(`${server.base}/api/v1/media`, { method: "POST", headers: { authorization: `Bearer ${w.token}` }, body: fd });
  const media = await up.json();
  assert.equal(up.status, 201, JSON.stringify(media));
  const sent = await api("POST", `/api/v1/conversations/${w.conversationId}/messages`, { token: w.token, body: { messageId: uuid(), mediaId: media.id } });
  assert.equal(sent.status, 201, JSON.stringify(sent.body));

  const page = await openConsole(AGENT);
  await openConversation(page, "open", w.conversationId);
  const theirs = page.locator('.msg-in img[alt="Image from Ana Adjuntos"]');
  await theirs.waitFor({ timeout: T });
  await page.waitForFunction(() => {
    const img = document.querySelector(".msg-in img");
    return img && img.complete && img.naturalWidth === 1;
  });
  await page.setInputFiles("#attach", { name: "from-agent.png", mimeType: "image/png", buffer: PNG });
  await page.locator("#attachment", { hasText: "from-agent.png" }).waitFor({ timeout: T });
  await page.fill("#reply", "here is the label");
  await page.press("#reply", "Enter");
  const stored = await until(async () => (await messages(w.conversationId, admin)).find((m) => m.direction === "outbound" && m.mediaId), "agent media message");
  assert.equal(stored.text, "here is the label");
  await page.waitForFunction((id) => {
    const img = document.querySelector(`.msg[data-id="${id}"] img`);
    return img && img.complete && img.naturalWidth === 1;
  }, stored.id);
  assert.equal(await page.isVisible("#attachment"), false);
  await done(page);
});

test("a reply whose answer was lost is retried with the same messageId and stored once", async () => {
  const admin = await adminToken();
  const id = await apiConversation(admin, "Rita Retry");
  const page = await openConsole(AGENT);
  await openConversation(page, "open", id);
  // Off the socket the reply goes over REST; the first answer is lost after the server stored it.
  await page.evaluate(() => UT.socket.close());
  let lost = 0;
  await page.route(`${server.base}/api/v1/conversations/${id}/messages`, async (route) => {
    if (route.request().method() === "POST" && lost === 0) {
      lost++;
      await route.fetch();
      return route.abort("connectionreset");
    }
    return route.continue();
  });
  await page.fill("#reply", "only once please");
  await page.press("#reply", "Enter");
  const failed = page.locator(".msg-failed", { hasText: "only once please" });
  await failed.waitFor({ timeout: T });
  const pendingId = await failed.getAttribute("data-id");
  await failed.getByRole("button", { name: "Retry" }).click();
  await page.locator(`.msg-out[data-seq][data-id="${pendingId}"]`, { hasText: "only once please" }).waitFor({ timeout: T });
  const stored = (await messages(id, admin)).filter((m) => m.text === "only once please");
  assert.equal(stored.length, 1);
  assert.equal(stored[0].id, pendingId);
  assert.equal(lost, 1);
  await page.evaluate(() => UT.socket.open());
  await done(page);
});

test("the latest 50 messages come first; older ones load on demand", async () => {
  const admin = await adminToken();
  const id = await apiConversation(admin, "Olga Older");
  for (let i = 1; i <= 60; i++) {
    const r = await api("POST", `/api/v1/conversations/${id}/messages`, { token: admin, body: { messageId: uuid(), text: `message ${i}` } });
    assert.equal(r.status, 201);
  }
  const page = await openConsole(AGENT);
  await openConversation(page, "open", id);
  await page.locator(".msg", { hasText: "message 60" }).waitFor({ timeout: T });
  assert.equal(await page.locator("#messages .msg").count(), 50);
  assert.equal(await page.getAttribute("#messages .msg >> nth=0", "data-seq"), "11");
  await page.click("#load-older");
  await page.locator(".msg-text", { hasText: /^message 1$/ }).waitFor({ timeout: T });
  assert.equal(await page.locator("#messages .msg").count(), 60);
  const seqs = await page.$$eval("#messages .msg", (els) => els.map((e) => Number(e.getAttribute("data-seq"))));
  assert.deepEqual(seqs, Array.from({ length: 60 }, (_, i) => i + 1));
  assert.equal(await page.isVisible("#load-older"), false);
  await done(page);
});

test("presence: staff see each other go online and away", async () => {
  const adminPage = await openConsole(ADMIN);
  const agentPage = await openConsole(AGENT);
  const row = adminPage.locator("#team-list li", { hasText: AGENT.email });
  await row.waitFor({ timeout: T });
  await agentPage.selectOption("#presence-select", "away");
  await adminPage.locator("#team-list li.presence-away", { hasText: AGENT.email }).waitFor({ timeout: T });
  await agentPage.selectOption("#presence-select", "online");
  await adminPage.locator("#team-list li.presence-online", { hasText: AGENT.email }).waitFor({ timeout: T });
  await done(agentPage);
  await adminPage.locator("#team-list li.presence-offline", { hasText: AGENT.email }).waitFor({ timeout: T });
  await done(adminPage);
});

// ---- agent tools (private notes, canned responses, labels) ----

test("private notes are sent as notes, look different, and customers never see them", async () => {
  const w = await widgetSession("Nico Notas");
  const admin = await adminToken();
  const page = await openConsole(AGENT);
  await openConversation(page, "open", w.conversationId);
  await page.check("#note-toggle");
  assert.match(await page.getAttribute("#composer", "class"), /is-note/);
  await page.fill("#reply", "VIP customer, be gentle");
  await page.press("#reply", "Enter");
  const note = page.locator(".msg-note", { hasText: "VIP customer, be gentle" });
  await note.waitFor({ timeout: T });
  assert.match(await note.textContent(), /Private note/);
  const stored = await until(async () => (await messages(w.conversationId, admin)).find((m) => m.text === "VIP customer, be gentle"), "note stored");
  assert.equal(stored.private, true);
  const seenByCustomer = await server.api("GET", `/api/v1/conversations/${w.conversationId}/messages?afterSeq=0`, { token: w.token });
  assert.equal(seenByCustomer.status, 200);
  assert.equal(seenByCustomer.body.items.some((m) => m.text === "VIP customer, be gentle"), false, "the customer does not see notes");
  // Back to replies: a normal message is not private.
  await page.uncheck("#note-toggle");
  await page.fill("#reply", "Hola Nico");
  await page.press("#reply", "Enter");
  const normal = await until(async () => (await messages(w.conversationId, admin)).find((m) => m.text === "Hola Nico"), "reply stored");
  assert.ok(!normal.private);
  await page.locator(".msg-out:not(.msg-note)", { hasText: "Hola Nico" }).waitFor({ timeout: T });
  await done(page);
});

test("canned responses: managed on their screen, inserted with /code in the reply box", async () => {
  const admin = await adminToken();
  const id = await apiConversation(admin, "Carla Canned");
  const page = await openConsole(AGENT);
  await page.click('[data-nav="canned"]');
  await page.fill("#canned-code", "greet");
  await page.fill("#canned-content", "Hello! How can I help you today?");
  await page.click("#canned-submit");
  await page.locator("#canned-rows tr", { hasText: "/greet" }).waitFor({ timeout: T });
  await page.fill("#canned-code", "greet");
  await page.fill("#canned-content", "duplicate");
  await page.click("#canned-submit");
  await page.locator("#canned-error", { hasText: "That short code is taken." }).waitFor({ timeout: T });
  await page.fill("#canned-code", "bye");
  await page.fill("#canned-content", "Bye for now");
  await page.click("#canned-submit");
  const bye = page.locator("#canned-rows tr", { hasText: "/bye" });
  await bye.waitFor({ timeout: T });
  await bye.locator('[data-action="edit"]').click();
  await page.fill("#canned-content", "Goodbye, and thanks!");
  await page.click("#canned-submit");
  await page.locator("#canned-rows tr", { hasText: "Goodbye, and thanks!" }).waitFor({ timeout: T });
  const list = (await api("GET", "/api/v1/canned-responses", { token: admin })).body.items;
  assert.equal(list.find((c) => c.shortCode === "bye").content, "Goodbye, and thanks!");
  assert.equal(list.find((c) => c.shortCode === "greet").content, "Hello! How can I help you today?");

  await openConversation(page, "open", id);
  await page.click("#reply");
  await page.keyboard.type("/gr");
  const option = page.locator('#canned-list [role="option"]', { hasText: "/greet" });
  await option.waitFor({ timeout: T });
  assert.equal(await page.getAttribute("#reply", "aria-activedescendant"), await option.getAttribute("id"));
  await axeCheck(page, "reply box with canned responses listed");
  await page.keyboard.press("Enter");
  assert.equal(await page.inputValue("#reply"), "Hello! How can I help you today?");
  assert.equal(await page.isVisible("#canned-list"), false);
  // Escape closes the list; Tab also inserts.
  await page.keyboard.type(" /b");
  await page.locator('#canned-list [role="option"]', { hasText: "/bye" }).waitFor({ timeout: T });
  await page.keyboard.press("Escape");
  assert.equal(await page.isVisible("#canned-list"), false);
  await page.keyboard.type("y");
  await page.locator('#canned-list [role="option"]', { hasText: "/bye" }).waitFor({ timeout: T });
  await page.keyboard.press("Tab");
  assert.equal(await page.inputValue("#reply"), "Hello! How can I help you today? Goodbye, and thanks!");
  await page.keyboard.press("Enter");
  await until(async () => (await messages(id, admin)).some((m) => m.text === "Hello! How can I help you today? Goodbye, and thanks!"), "expanded reply stored");

  await page.click('[data-nav="canned"]');
  const row = page.locator("#canned-rows tr", { hasText: "/bye" });
  await row.locator('[data-action="delete"]').click();
  await row.locator("[data-confirm]").click();
  await row.waitFor({ state: "detached", timeout: T });
  const after = (await api("GET", "/api/v1/canned-responses", { token: admin })).body.items;
  assert.equal(after.some((c) => c.shortCode === "bye"), false);
  await done(page);
});

test("labels: added and removed in the conversation view, filter the queue", async () => {
  const admin = await adminToken();
  const id = await apiConversation(admin, "Luis Labels");
  const other = await apiConversation(admin, "Otto Unlabelled");
  const page = await openConsole(AGENT);
  await openConversation(page, "open", id);
  await page.fill("#label-add", "vip");
  await page.press("#label-add", "Enter");
  await page.locator("#conv-labels .chip", { hasText: "vip" }).waitFor({ timeout: T });
  await page.fill("#label-add", "refund");
  await page.press("#label-add", "Enter");
  await page.locator("#conv-labels .chip", { hasText: "refund" }).waitFor({ timeout: T });
  assert.deepEqual((await conversation(id, admin)).labels.slice().sort(), ["refund", "vip"]);
  // A bad label is refused before the server.
  await page.fill("#label-add", "Not OK!");
  await page.press("#label-add", "Enter");
  await page.locator("#conv-error", { hasText: "A label is" }).waitFor({ timeout: T });

  await page.locator(".conv-item", { hasText: "Otto Unlabelled" }).waitFor({ timeout: T });
  await page.fill("#label-filter", "vip");
  await page.press("#label-filter", "Enter");
  await page.locator(".conv-item", { hasText: "Otto Unlabelled" }).waitFor({ state: "detached", timeout: T });
  await page.locator(".conv-item", { hasText: "Luis Labels" }).waitFor({ timeout: T });
  const listed = await api("GET", "/api/v1/conversations?label=vip", { token: admin });
  assert.equal(listed.status, 200);
  assert.ok(listed.body.items.every((c) => (c.conversation ?? c).labels.includes("vip")));

  await page.click('#conv-labels button[aria-label="Remove label vip"]');
  await until(async () => JSON.stringify((await conversation(id, admin)).labels) === '["refund"]', "label removed via REST");
  await page.locator(".conv-item", { hasText: "Luis Labels" }).waitFor({ state: "detached", timeout: T });
  await page.click("#label-filter-clear");
  await page.locator(".conv-item", { hasText: "Otto Unlabelled" }).waitFor({ timeout: T });
  assert.ok(other);
  await done(page);
});

test("a customer's other conversations are listed and open from the conversation view", async () => {
  const admin = await adminToken();
  const customer = { name: "Rita Returning", email: "rita@example.com" };
  const first = (await api("POST", "/api/v1/conversations", { token: admin, body: { channel: "api", customer } })).body.id;
  const second = (await api("POST", "/api/v1/conversations", { token: admin, body: { channel: "api", customer } })).body.id;
  const c = await conversation(second, admin);
  assert.equal(c.contactId, (await conversation(first, admin)).contactId, "one contact");
  const page = await openConsole(AGENT);
  await openConversation(page, "open", second);
  const summary = page.locator("#contact-history summary");
  await summary.waitFor({ timeout: T });
  assert.equal(await summary.textContent(), "Other conversations of this customer (1)");
  await summary.click();
  await page.locator(`#contact-history-list a[href$="${first}"]`).click();
  await until(() => page.evaluate(() => location.hash).then((h) => h.endsWith(first)), "the earlier conversation open");
  await page.locator("#conv-body:not([hidden])").waitFor({ timeout: T });
  await axeCheck(page, "conversation view with the customer's history");
  await done(page);
});

test("a closed WhatsApp window offers a template, which is sent as one", async () => {
  const admin = await adminToken();
  const wa = await api("POST", "/api/v1/conversations", { token: admin, body: { channel: "whatsapp", customer: { name: "Wendy Window", phone: "+34600999001" } } });
  assert.equal(wa.status, 201, JSON.stringify(wa.body));
  assert.equal(wa.body.whatsappWindow.open, false);
  const page = await openConsole(AGENT);
  await openConversation(page, "open", wa.body.id);
  await page.locator("#window-note:not([hidden])").waitFor({ timeout: T });
  await axeCheck(page, "conversation view with the template form");
  // Free text is refused by the server, with the reason shown.
  await page.fill("#reply", "hola");
  await page.press("#reply", "Enter");
  await page.locator(".msg-failed").waitFor({ timeout: T });
  await page.locator(".msg-failed button", { hasText: "Discard" }).click();
  const sid = "HX" + "3c".repeat(16);
  await page.fill("#template-sid", sid);
  await page.fill("#template-vars", "1=Wendy\n2=pedido 77");
  await page.fill("#reply", "");
  await page.locator("#send-btn").click();
  const sent = await until(async () => (await messages(wa.body.id, admin)).find((m) => m.template), "the template stored");
  assert.deepEqual(sent.template, { contentSid: sid, variables: { 1: "Wendy", 2: "pedido 77" } });
  assert.equal((await messages(wa.body.id, admin)).length, 1, "the refused text stored nothing");
  await page.locator(".msg-text", { hasText: `Template ${sid}` }).waitFor({ timeout: T });
  await done(page);
});
