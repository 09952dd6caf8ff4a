// The two web pages together, as a shop and its support team meet them, in
// headless Chromium against the real server, both pages served by the binary:
// a customer on the shop's site (another origin) writes in the embedded
// widget, the bot answers, the customer asks for a person, the escalation
// appears in an agent's console queue without a reload, the agent takes it
// and replies, the customer reloads and sees the same conversation, the agent
// writes a private note the customer never sees, the agent closes, and the
// widget asks CSAT then NPS, which are stored.
//
// With UTALK_SCREENSHOTS=<dir>, it also saves the screenshots docs/web.md shows.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { startServer, until, ADMIN, AGENT } from "./harness.mjs";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const SHOTS = process.env.UTALK_SCREENSHOTS;
const T = 20000;

let server;
let shop;
let shopOrigin;
let browser;

before(async () => {
  assert.ok(existsSync(CHROMIUM), `Chromium is expected at ${CHROMIUM} (scripts/test installs it)`);
  // The shop's page embeds the widget from utalk with the one documented tag.
  shop = createServer((req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(
      `<!doctype html><html lang="es"><head><meta charset="utf-8"><title>Tienda Sol</title></head>` +
        `<body><main><h1>Tienda Sol</h1><p>Ropa y calzado.</p></main>` +
        `<script src="${server.base}/widget.js" async data-title="Tienda Sol"></script></body></html>`,
    );
  });
  await new Promise((r) => shop.listen(0, "127.0.0.1", r));
  shopOrigin = `http://127.0.0.1:${shop.address().port}`;
  server = await startServer({ UTALK_HTTP__ALLOWED_ORIGINS: shopOrigin });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  if (SHOTS) mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  await browser?.close();
  await server?.stop();
  shop?.close();
});


// What the widget shows, in order: [{author, state, text}].
function widgetMessages(page) {
  return page.locator(".msg").evaluateAll((els) =>
    els.map((e) => ({ author: e.dataset.author, state: e.dataset.state, text: e.querySelector(".bub > span")?.textContent ?? "" })),
  );
}

async function widgetSend(page, text) {
  await page.locator("#utalk-input").fill(text);
  await page.locator("#utalk-input").press("Enter");
}

// Page errors and Content-Security-Policy refusals, which must stay empty.
function watch(page) {
  page.problems = [];
  page.on("pageerror", (e) => page.problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) page.problems.push(m.text());
  });
  return page;
}

async function shot(page, name) {
  if (SHOTS) await page.screenshot({ path: join(SHOTS, name) });
}

test("a customer's chat from the widget to an agent's console and back, ending in stored ratings", { timeout: 180000 }, async () => {
  const customerCtx = await browser.newContext({ viewport: { width: 1024, height: 760 }, locale: "es-MX" });
  const agentCtx = await browser.newContext({ viewport: { width: 1360, height: 860 } });
  try {
    // The agent signs in to the console the binary serves, on the waiting queue.
    const agent = watch(await agentCtx.newPage());
    await agent.goto(`${server.base}/app/`);
    await agent.fill("#login-email", AGENT.email);
    await agent.fill("#login-password", AGENT.password);
    await agent.press("#login-password", "Enter");
    await agent.locator("#screen-inbox:not([hidden])").waitFor({ timeout: T });
    await agent.locator("#conn-state.conn-connected").waitFor({ timeout: T });
    // Away, so that the escalation waits for someone to take it instead of
    // being assigned to the one agent online.
    await agent.locator("#presence-select").selectOption("away");
    await agent.evaluate(() => (location.hash = "#/queue/waiting"));

    // The customer opens the widget on the shop's site and writes; the bot answers.
    const customer = watch(await customerCtx.newPage());
    await customer.goto(shopOrigin + "/");
    await customer.locator("button.launch").click();
    await customer.locator("#utalk-panel").waitFor({ timeout: T });
    await widgetSend(customer, "Hola, ¿a qué hora abren?");
    await until(async () => (await widgetMessages(customer)).some((m) => m.author === "bot"), "the bot's answer in the widget");
    const conv = await customer.evaluate((k) => JSON.parse(localStorage.getItem(k)).conversationId, `utalk:session:${server.base}`);
    assert.match(conv, /^[0-9a-f-]{36}$/);
    await shot(customer, "widget-bot.png");

    // Asking for a person escalates; the console's waiting queue shows it without a reload.
    const before = await agent.evaluate(() => performance.getEntriesByType("navigation").length + ":" + performance.timeOrigin);
    await widgetSend(customer, "quiero hablar con un agente");
    const item = agent.locator(`#conv-list li.conv-item[data-id="${conv}"]`);
    await item.waitFor({ timeout: T });
    await shot(agent, "console-queue.png");
    assert.equal(await agent.evaluate(() => performance.getEntriesByType("navigation").length + ":" + performance.timeOrigin), before, "no reload");

    // The agent takes it and replies; the widget shows the reply.
    await item.locator("a").click();
    await agent.locator("#conv-body:not([hidden])").waitFor({ timeout: T });
    await agent.locator("#act-take").click();
    const admin = await server.login(ADMIN);
    const me = (await server.api("GET", "/api/v1/auth/me", { token: (await server.login(AGENT)).accessToken })).body.id;
    await until(async () => (await server.api("GET", `/api/v1/conversations/${conv}`, { token: admin.accessToken })).body.assigneeId === me, "assigned to the agent");
    await agent.locator("#reply").fill("Hola, soy Ana. Abrimos de 9 a 18 h.");
    await agent.locator("#send-btn").click();
    await until(async () => (await widgetMessages(customer)).some((m) => m.author === "agent" && m.text === "Hola, soy Ana. Abrimos de 9 a 18 h."), "the agent's reply in the widget");

    // The customer reloads: the same conversation, with its history.
    await customer.reload();
    await customer.locator("button.launch").click();
    await until(async () => (await widgetMessages(customer)).some((m) => m.text === "Hola, soy Ana. Abrimos de 9 a 18 h."), "history after the reload");
    assert.equal(await customer.evaluate((k) => JSON.parse(localStorage.getItem(k)).conversationId, `utalk:session:${server.base}`), conv);

    // A private note: stored, shown to staff as a note, never in the widget.
    await agent.locator("#note-toggle").check();
    await agent.locator("#reply").fill("NOTA: cliente pregunta por horarios de domingo");
    await agent.locator("#send-btn").click();
    await agent.locator(".msg-note", { hasText: "NOTA: cliente pregunta" }).waitFor({ timeout: T });
    const stored = await until(async () => {
      const items = (await server.api("GET", `/api/v1/conversations/${conv}/messages?limit=200`, { token: admin.accessToken })).body.items;
      return items.some((m) => m.private && m.text.startsWith("NOTA:")) && items;
    }, "the note stored");
    await agent.locator("#note-toggle").uncheck();
    await agent.locator("#reply").fill("¿Algo más en que te ayude?");
    await agent.locator("#send-btn").click();
    await until(async () => (await widgetMessages(customer)).some((m) => m.text === "¿Algo más en que te ayude?"), "the reply after the note");
    assert.ok(!(await widgetMessages(customer)).some((m) => m.text.includes("NOTA")), "the widget never shows the note");
    await shot(agent, "console-conversation.png");
    assert.ok(stored.length >= 5);

    // The agent closes; the widget asks CSAT, then NPS; both are stored.
    await agent.locator("#act-close").click();
    await agent.locator("#close-resolution").fill("informó horarios");
    await agent.locator("#close-menu button[type=submit]").click();
    const csat = customer.locator('.rate button[data-score="5"]');
    await csat.waitFor({ timeout: T });
    await shot(customer, "widget-rating.png");
    await csat.click();
    const nps = customer.locator('.rate button[data-score="9"]');
    await nps.waitFor({ timeout: T });
    await nps.click();
    const rated = await until(async () => {
      const c = (await server.api("GET", `/api/v1/conversations/${conv}`, { token: admin.accessToken })).body;
      return c.csat === 5 && c.nps === 9 && c;
    }, "CSAT and NPS stored");
    assert.equal(rated.status, "closed");

    // Neither page logged an error or a policy refusal; the customer never received the note's text.
    assert.deepEqual(agent.problems, [], "console");
    assert.deepEqual(customer.problems, [], "widget");
    const widgetText = await customer.locator("[data-utalk-widget]").evaluate((h) => h.shadowRoot.textContent);
    assert.ok(!widgetText.includes("NOTA"), "nowhere in the widget");
  } finally {
    await customerCtx.close();
    await agentCtx.close();
  }
});
