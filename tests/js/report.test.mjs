// The daily operator report, opened in headless Chromium from the signed link
// the API hands out: nine KPIs, each beside its target in green or red, with
// its chart drawn.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { startServer, ADMIN, AGENT, uuid } from "./harness.mjs";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const KPIS = [
  "botResponseTimeMs",
  "firstContactResolution",
  "agentSpeedOfAnswerMs",
  "escalationRate",
  "timeToEscalationMs",
  "deliveryFailureRate",
  "mediaMessageRate",
  "csat",
  "nps",
];

let server;
let browser;
before(async () => {
  assert.ok(existsSync(CHROMIUM), `Chromium is expected at ${CHROMIUM} (scripts/test installs it)`);
  server = await startServer();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    // The machine's network is closed: background fetches would only fail.
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

async function botAnswered(conv, token, count) {
  for (let i = 0; i < 200; i++) {
    const r = await server.api("GET", `/api/v1/conversations/${conv}/messages`, { token });
    if (r.body.items.filter((m) => m.author.type === "bot").length >= count) return;
    await new Promise((done) => setTimeout(done, 50));
  }
  throw new Error(`the bot did not answer in ${conv}`);
}

// One conversation goes bot → escalation → agent → close → ratings; another stays with the bot.
async function traffic() {
  const admin = (await server.login(ADMIN)).accessToken;
  const agent = (await server.login(AGENT)).accessToken;
  const a = await server.api("POST", "/api/v1/widget/sessions", { body: { name: "Ana" } });
  const conv = a.body.conversationId;
  await server.api("POST", `/api/v1/conversations/${conv}/messages`, { token: a.body.token, body: { messageId: uuid(), text: "Hola" } });
  await botAnswered(conv, admin, 1);
  const esc = await server.api("POST", `/api/v1/conversations/${conv}/escalate`, { token: admin, body: { reason: "report test" } });
  assert.equal(esc.status, 200, JSON.stringify(esc.body));
  const reply = await server.api("POST", `/api/v1/conversations/${conv}/messages`, { token: agent, body: { messageId: uuid(), text: "Con gusto le ayudo" } });
  assert.equal(reply.status, 201);
  const closed = await server.api("POST", `/api/v1/conversations/${conv}/close`, { token: agent, body: { resolution: "resuelto", askRating: false } });
  assert.equal(closed.status, 200, JSON.stringify(closed.body));
  for (const body of [{ csat: 5 }, { nps: 9 }]) {
    const r = await server.api("POST", `/api/v1/conversations/${conv}/rating`, { token: a.body.token, body });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  }
  const b = await server.api("POST", "/api/v1/widget/sessions", { body: { name: "Beto" } });
  await server.api("POST", `/api/v1/conversations/${b.body.conversationId}/messages`, { token: b.body.token, body: { messageId: uuid(), text: "Hola" } });
  await botAnswered(b.body.conversationId, admin, 1);
  return admin;
}

test("the daily report shows the nine KPIs against their targets in headless Chromium", async () => {
  const admin = await traffic();
  const today = new Date().toISOString().slice(0, 10);
  const made = await server.api("POST", "/api/v1/reports/daily", { token: admin, body: { date: today } });
  assert.equal(made.status, 201, JSON.stringify(made.body));
  const list = await server.api("GET", "/api/v1/reports", { token: admin });
  const link = list.body.items.find((r) => r.date === today);
  assert.ok(link, JSON.stringify(list.body));

  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const problems = [];
  page.on("console", (m) => m.type() === "error" && problems.push(m.text()));
  page.on("pageerror", (e) => problems.push(String(e)));
  // No token: the signed link is all a browser has.
  const res = await page.goto(server.base + link.url);
  assert.equal(res.status(), 200);
  assert.match(await page.title(), new RegExp(`utalk daily report ${today}`));

  const cards = page.locator("article.kpi");
  assert.equal(await cards.count(), 9);
  const seen = await cards.evaluateAll((els) =>
    els.map((e) => ({
      kpi: e.dataset.kpi,
      status: e.dataset.status,
      value: e.querySelector(".value").textContent,
      target: e.querySelector(".target").textContent,
      border: getComputedStyle(e).borderLeftColor,
      chart: e.querySelector("svg")?.getBoundingClientRect().width ?? 0,
      visible: e.getBoundingClientRect().height > 0,
    })),
  );
  assert.deepEqual(seen.map((c) => c.kpi), KPIS);
  const green = "rgb(26, 127, 55)";
  const red = "rgb(207, 34, 46)";
  for (const c of seen) {
    assert.ok(c.visible, `${c.kpi} is shown`);
    assert.ok(c.chart > 200, `${c.kpi} has its chart drawn (${c.chart}px)`);
    assert.match(c.target, /^target [<>] /, c.kpi);
    if (c.status === "met") assert.equal(c.border, green, c.kpi);
    else if (c.status === "missed") assert.equal(c.border, red, c.kpi);
    else assert.fail(`${c.kpi} has data and must be green or red, got ${c.status}: ${c.value}`);
  }
  const by = Object.fromEntries(seen.map((c) => [c.kpi, c]));
  // Two conversations, one escalated: 50% is over the 20% target.
  assert.equal(by.escalationRate.value, "50.0%");
  assert.equal(by.escalationRate.status, "missed");
  // One closed at first contact of two started.
  assert.equal(by.firstContactResolution.value, "50.0%");
  // The one CSAT answer was 5, the one NPS answer 9.
  assert.equal(by.csat.value, "100.0%");
  assert.equal(by.csat.status, "met");
  assert.equal(by.nps.value, "100");
  assert.equal(by.nps.status, "met");
  // Escalated within seconds of starting: under the 5 minutes wanted.
  assert.equal(by.timeToEscalationMs.status, "missed");
  assert.equal(by.deliveryFailureRate.value, "0.0%");
  assert.equal(by.deliveryFailureRate.status, "met");

  assert.ok((await page.locator("#volume svg").boundingBox()).width > 500, "the volume chart is drawn");
  assert.match(await page.locator("#channels").textContent(), /web/);
  assert.match(await page.locator("#inventory").textContent(), /transactions applied/, "the inventory section is there");
  assert.deepEqual(problems, [], "the page loads nothing it is not allowed and throws nothing");
  await page.screenshot({ path: process.env.REPORT_SCREENSHOT || join(tmpdir(), "utalk-daily-report.png"), fullPage: true });
  await page.close();
});
