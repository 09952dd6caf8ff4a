// The customer chat widget (src/web/widget.js over src/web/socket.js), embedded
// by a page on another origin and driven in headless Chromium against the real
// server: the bot's answer, reloads and tabs, offline sending, a server restart,
// languages, an agent's reply and close with CSAT and NPS, an image upload,
// accessibility (axe-core) and the served size.
//
// The page reaches the server through a small TCP proxy, as a browser reaches
// a server behind a load balancer: the proxy's address stays the same while the
// server behind it restarts on another port, and the proxy can cut every
// connection at once.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import net from "node:net";
import { existsSync, readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { randomUUID } from "node:crypto";
import { chromium } from "playwright-core";
import { io } from "socket.io-client";
import { startServer, until, ADMIN, AGENT } from "./harness.mjs";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const AXE = new URL("./node_modules/axe-core/axe.min.js", import.meta.url).pathname;
const WEB = new URL("../../src/web/", import.meta.url);
const PNG = Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==", "base64");

// A TCP proxy in front of the server: `target` may change, `drop()` cuts every connection.
function tcpProxy() {
  const conns = new Set();
  let target = null;
  let refusing = false;
  const srv = net.createServer((c) => {
    if (refusing || !target) return c.destroy();
    const u = net.connect(target.port, target.hostname);
    const pair = [c, u];
    conns.add(pair);
    const end = () => {
      c.destroy();
      u.destroy();
      conns.delete(pair);
    };
    c.on("error", end).on("close", end);
    u.on("error", end).on("close", end);
    c.pipe(u);
    u.pipe(c);
  });
  return {
    srv,
    base: null,
    async listen() {
      await new Promise((r) => srv.listen(0, "127.0.0.1", r));
      this.base = `http://127.0.0.1:${srv.address().port}`;
    },
    point(base) {
      target = new URL(base);
    },
    refuse(on) {
      refusing = on;
    },
    drop() {
      for (const [c, u] of conns) {
        c.destroy();
        u.destroy();
      }
      conns.clear();
    },
    close() {
      this.drop();
      srv.close();
    },
  };
}

let server;
let proxy;
let pageServer;
let pageOrigin;
let browser;
let env;

before(async () => {
  assert.ok(existsSync(CHROMIUM), `Chromium is expected at ${CHROMIUM} (scripts/test installs it)`);
  proxy = tcpProxy();
  await proxy.listen();
  // The shop's pages: /?lang=&htmlLang=&title= embeds the widget from the server.
  pageServer = createServer((req, res) => {
    const q = new URL(req.url, "http://x").searchParams;
    const attrs = [];
    if (q.get("lang")) attrs.push(`data-lang="${q.get("lang")}"`);
    if (q.get("title")) attrs.push(`data-title="${q.get("title")}"`);
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(
      `<!doctype html><html lang="${q.get("htmlLang") || "en"}"><head><meta charset="utf-8"><title>Shop</title>` +
        `<style>* { font-size: 40px !important; color: red !important; display: block; }</style></head>` +
        `<body><main><h1>Shop</h1><p>Our products.</p></main>` +
        `<script src="${proxy.base}/widget.js" async ${attrs.join(" ")}></script></body></html>`,
    );
  });
  await new Promise((r) => pageServer.listen(0, "127.0.0.1", r));
  pageOrigin = `http://127.0.0.1:${pageServer.address().port}`;
  env = { UTALK_HTTP__ALLOWED_ORIGINS: pageOrigin };
  server = await startServer(env);
  proxy.point(server.base);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  await browser?.close();
  await server?.stop();
  proxy?.close();
  pageServer?.close();
});

async function newTab(query = "lang=en", context) {
  const ctx = context ?? (await browser.newContext());
  const page = await ctx.newPage();
  page.on("pageerror", (e) => console.error("page error:", e));
  await page.goto(`${pageOrigin}/?${query}`);
  await page.locator("button.launch").waitFor();
  return { ctx, page };
}

async function open(page) {
  const launcher = page.locator("button.launch");
  if ((await launcher.getAttribute("aria-expanded")) !== "true") await launcher.click();
  await page.locator("#utalk-panel").waitFor();
}

async function send(page, text) {
  await page.locator("#utalk-input").fill(text);
  await page.locator("#utalk-input").press("Enter");
}

function conversationId(page) {
  return page.evaluate((key) => JSON.parse(localStorage.getItem(key) || "null")?.conversationId, `utalk:session:${proxy.base}`);
}

// The widget's messages, in order: [{author, state, text}].
function shown(page) {
  return page.locator(".msg").evaluateAll((els) =>
    els.map((e) => ({ author: e.dataset.author, state: e.dataset.state, text: e.querySelector(".bub > span")?.textContent ?? "" })),
  );
}


async function stored(conv) {
  const admin = await server.login(ADMIN);
  const r = await server.api("GET", `/api/v1/conversations/${conv}/messages?limit=200`, { token: admin.accessToken });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.items;
}

test("a page on another origin embeds the widget; the bot answers and the message is stored", { timeout: 60000 }, async () => {
  const { ctx, page } = await newTab("lang=es");
  try {
    assert.equal(await page.locator("#utalk-panel").isHidden(), true, "the panel starts closed");
    assert.equal(await conversationId(page), undefined, "no session before the panel opens");
    await open(page);
    await send(page, "hola");
    await page.locator('.msg[data-author="bot"]').first().waitFor({ timeout: 20000 });
    const msgs = await shown(page);
    assert.deepEqual(msgs[0], { author: "customer", state: "sent", text: "hola" });
    assert.match(msgs[1].text, /Hola/);
    const items = await stored(await conversationId(page));
    assert.deepEqual(
      items.map((m) => [m.author.type, m.direction]),
      [["customer", "inbound"], ["bot", "outbound"]],
    );
    assert.equal(items[0].text, "hola");
    // The host page's CSS does not reach into the widget.
    const size = await page.locator("#utalk-input").evaluate((e) => getComputedStyle(e).fontSize);
    assert.equal(size, "14px");
  } finally {
    await ctx.close();
  }
});

test("a reload resumes the same conversation with its history; a second tab shows it too", { timeout: 60000 }, async () => {
  const { ctx, page } = await newTab("lang=en");
  try {
    await open(page);
    await send(page, "what are your opening hours?");
    await page.locator('.msg[data-author="bot"]').first().waitFor({ timeout: 20000 });
    const conv = await conversationId(page);
    const before = await shown(page);
    await page.reload();
    await open(page);
    await until(async () => (await shown(page)).length >= before.length && (await shown(page)), "history after reload");
    assert.deepEqual(await shown(page), before);
    assert.equal(await conversationId(page), conv);

    const { page: tab2 } = await newTab("lang=en", ctx);
    await open(tab2);
    await until(async () => (await shown(tab2)).length >= before.length, "history in the second tab");
    assert.deepEqual(await shown(tab2), before);
    // A message from the second tab appears live in the first.
    await send(tab2, "thanks");
    await until(async () => (await shown(page)).some((m) => m.text === "thanks" && m.state === "sent"), "the other tab's message");
    assert.equal((await stored(conv)).filter((m) => m.text === "thanks").length, 1);
  } finally {
    await ctx.close();
  }
});

test("a message written offline is sent once when the connection is back", { timeout: 60000 }, async () => {
  const { ctx, page } = await newTab("lang=en");
  try {
    await open(page);
    await send(page, "first");
    await until(async () => (await shown(page)).some((m) => m.text === "first" && m.state === "sent"), "first sent");
    const conv = await conversationId(page);

    await ctx.setOffline(true);
    proxy.drop();
    await page.locator(".status").filter({ hasText: "Offline" }).waitFor({ timeout: 10000 });
    await send(page, "written offline");
    await new Promise((r) => setTimeout(r, 1500));
    assert.deepEqual(
      (await shown(page)).filter((m) => m.text === "written offline"),
      [{ author: "customer", state: "sending", text: "written offline" }],
    );
    assert.equal((await stored(conv)).filter((m) => m.text === "written offline").length, 0, "nothing reached the server");

    await ctx.setOffline(false);
    await until(async () => (await shown(page)).some((m) => m.text === "written offline" && m.state === "sent"), "sent after reconnecting");
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal((await stored(conv)).filter((m) => m.text === "written offline").length, 1);
    assert.equal((await shown(page)).filter((m) => m.text === "written offline").length, 1);
    assert.equal(await page.evaluate((k) => localStorage.getItem(k), `utalk:pending:${proxy.base}`), "[]");
  } finally {
    await ctx.close();
  }
});

test("a refused token starts a new session, and the text queued for the old one is sent there", { timeout: 60000 }, async () => {
  const ctx = await browser.newContext();
  const stale = randomUUID();
  const queuedId = randomUUID();
  await ctx.addInitScript(
    ({ base, stale, queuedId }) => {
      if (sessionStorage.getItem("seeded")) return;
      sessionStorage.setItem("seeded", "1");
      localStorage.setItem(`utalk:session:${base}`, JSON.stringify({ token: "not.a.token", conversationId: stale, expiresAt: Date.now() + 864e5 }));
      localStorage.setItem(`utalk:pending:${base}`, JSON.stringify([{ messageId: queuedId, text: "left over", createdAt: new Date().toISOString() }]));
    },
    { base: proxy.base, stale, queuedId },
  );
  const { page } = await newTab("lang=en", ctx);
  try {
    await open(page);
    await until(async () => (await shown(page)).some((m) => m.text === "left over" && m.state === "sent"), "the queued text sent");
    const conv = await conversationId(page);
    assert.notEqual(conv, stale);
    const items = await stored(conv);
    assert.deepEqual(items.filter((m) => m.text === "left over").map((m) => m.id), [queuedId]);
  } finally {
    await ctx.close();
  }
});

test("English and Spanish follow data-lang, else the page's lang", { timeout: 60000 }, async () => {
  const cases = [
    ["lang=es&htmlLang=en", "Abrir chat", "Enviar"],
    ["htmlLang=es-MX", "Abrir chat", "Enviar"],
    ["lang=en&htmlLang=es", "Open chat", "Send"],
    ["htmlLang=en-GB", "Open chat", "Send"],
    ["htmlLang=fr", "Open chat", "Send"],
  ];
  for (const [query, label, send] of cases) {
    const { ctx, page } = await newTab(query);
    try {
      assert.equal(await page.locator("button.launch").getAttribute("aria-label"), label, query);
      await open(page);
      assert.equal(await page.locator('form button[type="submit"]').textContent(), send, query);
    } finally {
      await ctx.close();
    }
  }
  const { ctx, page } = await newTab("lang=es&title=Tienda%20Sol");
  try {
    await open(page);
    assert.equal(await page.locator("#utalk-title").textContent(), "Tienda Sol");
    assert.equal(await page.locator("#utalk-input").getAttribute("placeholder"), "Escribe un mensaje…");
  } finally {
    await ctx.close();
  }
});

test("an agent's reply appears live; closing asks CSAT then NPS, and both are stored", { timeout: 60000 }, async () => {
  const { ctx, page } = await newTab("lang=en");
  try {
    await open(page);
    await send(page, "I want to talk to a human");
    await page.locator('.msg[data-author="bot"]').first().waitFor({ timeout: 20000 });
    const conv = await conversationId(page);
    const agent = await server.login(AGENT);
    const r = await server.api("POST", `/api/v1/conversations/${conv}/messages`, {
      token: agent.accessToken,
      body: { messageId: randomUUID(), text: "Hi, I'm Laura. How can I help?" },
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    await until(async () => (await shown(page)).some((m) => m.author === "agent" && m.text === "Hi, I'm Laura. How can I help?"), "the agent's reply");

    // The agent types and reads: the widget says so.
    const s = io(server.base, { auth: { token: agent.accessToken }, transports: ["websocket"] });
    try {
      await new Promise((resolve, reject) => s.on("connect", resolve).on("connect_error", reject));
      const joined = await s.emitWithAck("conversation:join", { conversationId: conv, sinceSeq: 0 });
      assert.equal(joined.ok, true, JSON.stringify(joined));
      await s.emitWithAck("typing:start", { conversationId: conv });
      await page.locator(".typing").filter({ hasText: "Typing…" }).waitFor({ timeout: 10000 });
      assert.equal((await shown(page)).filter((m) => m.author === "customer" && m.state === "read").length, 0);
      const read = await s.emitWithAck("message:read", { conversationId: conv, seq: joined.lastSeq });
      assert.equal(read.ok, true, JSON.stringify(read));
      await until(async () => (await shown(page)).filter((m) => m.author === "customer").every((m) => m.state === "read"), "read marks");
    } finally {
      s.close();
    }

    const c = await server.api("POST", `/api/v1/conversations/${conv}/close`, { token: agent.accessToken, body: { resolution: "solved" } });
    assert.equal(c.status, 200, JSON.stringify(c.body));
    const csat = page.getByRole("group", { name: /How would you rate/ });
    await csat.waitFor({ timeout: 10000 });
    // A conversation already closed when the widget loads asks the same.
    await page.reload();
    await open(page);
    await csat.waitFor({ timeout: 10000 });
    assert.equal(await csat.getByRole("button").count(), 5);
    await csat.getByRole("button", { name: "4 / 5" }).click();
    const nps = page.getByRole("group", { name: /recommend/ });
    await nps.waitFor({ timeout: 10000 });
    assert.equal(await nps.getByRole("button").count(), 11);
    await nps.getByRole("button", { name: "9 / 10" }).click();
    await page.locator(".rate").filter({ hasText: "Thank you" }).waitFor({ timeout: 10000 });
    const after = await server.api("GET", `/api/v1/conversations/${conv}`, { token: agent.accessToken });
    const got = after.body.conversation ?? after.body;
    assert.equal(got.status, "closed");
    assert.equal(got.csat, 4);
    assert.equal(got.nps, 9);
  } finally {
    await ctx.close();
  }
});

test("an uploaded image shows in the conversation", { timeout: 60000 }, async () => {
  const { ctx, page } = await newTab("lang=en");
  try {
    await open(page);
    await page.locator('input[type="file"]').setInputFiles({ name: "dot.png", mimeType: "image/png", buffer: PNG });
    const img = page.locator('.msg[data-author="customer"] img');
    await img.waitFor({ timeout: 20000 });
    await until(() => img.evaluate((e) => e.complete && e.naturalWidth === 1), "the image to load");
    assert.equal(await img.getAttribute("alt"), "Attached image");
    await until(async () => (await shown(page)).some((m) => m.state === "sent"), "the message to be stored");
    const items = await stored(await conversationId(page));
    const withMedia = items.filter((m) => m.mediaId || m.media?.length);
    assert.equal(withMedia.length, 1, JSON.stringify(items));

    // A file the server refuses is reported in the panel.
    await page.locator('input[type="file"]').setInputFiles({ name: "x.exe", mimeType: "application/x-msdownload", buffer: Buffer.from("MZ") });
    await page.locator(".err").filter({ hasText: "not allowed" }).waitFor({ timeout: 10000 });
  } finally {
    await ctx.close();
  }
});

test("the opened widget has no serious or critical axe-core violations; Escape closes it", { timeout: 60000 }, async () => {
  const { ctx, page } = await newTab("lang=en");
  try {
    await open(page);
    await send(page, "hello");
    await page.locator('.msg[data-author="bot"]').first().waitFor({ timeout: 20000 });
    await page.addScriptTag({ path: AXE });
    const result = await page.evaluate(async () => {
      const r = await axe.run(document, { resultTypes: ["violations"] });
      return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target) }));
    });
    const bad = result.filter((v) => v.impact === "serious" || v.impact === "critical");
    assert.deepEqual(bad, [], JSON.stringify(result));

    assert.equal(await page.locator("button.launch").getAttribute("aria-expanded"), "true");
    await page.locator("#utalk-input").press("Escape");
    assert.equal(await page.locator("#utalk-panel").isHidden(), true);
    assert.equal(await page.locator("button.launch").getAttribute("aria-expanded"), "false");
    assert.equal(await page.locator("button.launch").evaluate((e) => e.getRootNode().activeElement === e), true, "focus is back on the launcher");
  } finally {
    await ctx.close();
  }
});

test("the served widget is well under 40 KB gzipped, the client and the widget in one function", async () => {
  const res = await fetch(`${server.base}/widget.js`);
  assert.equal(res.status, 200);
  const body = await res.text();
  const socket = readFileSync(new URL("socket.js", WEB), "utf8");
  const widget = readFileSync(new URL("widget.js", WEB), "utf8");
  assert.equal(body, "(function(){\n" + socket + "\n" + widget + "\n})();\n", "the served file is the built sources");
  const size = gzipSync(body).length;
  console.log(`widget.js: ${body.length} bytes, ${size} bytes gzipped`);
  assert.ok(size < 40 * 1024, `${size} bytes gzipped`);
});

// Last: it restarts the server.
test("a server restart: the widget reconnects and sends what was queued, once", { timeout: 90000 }, async () => {
  const { ctx, page } = await newTab("lang=en");
  try {
    await open(page);
    await send(page, "hello");
    await until(async () => (await shown(page)).some((m) => m.text === "hello" && m.state === "sent"), "first message");
    await page.locator('.msg[data-author="bot"]').first().waitFor({ timeout: 20000 });
    const conv = await conversationId(page);

    await server.kill();
    proxy.drop();
    await page.locator(".status").filter({ hasText: "Offline" }).waitFor({ timeout: 10000 });
    await send(page, "what are your opening hours?");
    server = await startServer(env, { reuse: server.dir });
    proxy.point(server.base);

    await until(async () => (await shown(page)).some((m) => m.text === "what are your opening hours?" && m.state === "sent"), "queued message sent", 40000);
    await until(async () => (await shown(page)).filter((m) => m.author === "bot").length >= 2, "the bot's second answer", 20000);
    const items = await stored(conv);
    assert.equal(items.filter((m) => m.text === "hello").length, 1);
    assert.equal(items.filter((m) => m.text === "what are your opening hours?").length, 1);
    const msgs = await shown(page);
    assert.equal(msgs.length, items.length, JSON.stringify({ msgs, items: items.map((m) => m.text) }));
    assert.equal(await conversationId(page), conv);
  } finally {
    await ctx.close();
  }
});
