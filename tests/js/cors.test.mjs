// A page on another origin, in headless Chromium: listed in
// http.allowed_origins it logs in, reads the API and connects Socket.IO over
// long-polling; the same page from an origin not listed is refused by the browser.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { existsSync, readFileSync } from "node:fs";
import { chromium } from "playwright-core";
import { startServer, AGENT } from "./harness.mjs";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const CLIENT = readFileSync(new URL("./node_modules/socket.io-client/dist/socket.io.min.js", import.meta.url));

let page;
let pageServer;
let server;
let browser;

before(async () => {
  assert.ok(existsSync(CHROMIUM), `Chromium is expected at ${CHROMIUM} (scripts/test installs it)`);
  // The shop's page: an empty document and the stock browser client.
  pageServer = createServer((req, res) => {
    if (req.url === "/socket.io.min.js") {
      res.writeHead(200, { "content-type": "text/javascript" });
      res.end(CLIENT);
    } else {
      res.writeHead(200, { "content-type": "text/html" });
      res.end('<!doctype html><html lang="en"><title>shop</title><script src="/socket.io.min.js"></script></html>');
    }
  });
  await new Promise((r) => pageServer.listen(0, "127.0.0.1", r));
  const port = pageServer.address().port;
  // Only the 127.0.0.1 spelling is listed: the same page through "localhost" is another origin.
  server = await startServer({ UTALK_HTTP__ALLOWED_ORIGINS: `http://127.0.0.1:${port}` });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  page = (origin) => `http://${origin}:${port}/`;
});

after(async () => {
  await browser?.close();
  await server?.stop();
  pageServer?.close();
});

// Runs in the page: log in, list conversations, connect over polling.
async function tryFromPage(url) {
  const tab = await browser.newPage();
  await tab.goto(url);
  const result = await tab.evaluate(
    async ({ base, email, password }) => {
      try {
        const login = await fetch(`${base}/api/v1/auth/login`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ email, password }),
        });
        const { accessToken } = await login.json();
        const list = await fetch(`${base}/api/v1/conversations`, { headers: { authorization: `Bearer ${accessToken}` } });
        const requestId = list.headers.get("x-request-id");
        const connected = await new Promise((resolve) => {
          const s = io(base, { auth: { token: accessToken }, transports: ["polling"], reconnection: false });
          s.on("connect", () => {
            s.close();
            resolve(true);
          });
          s.on("connect_error", (e) => resolve(`connect_error: ${e.message}`));
          setTimeout(() => resolve("timeout"), 5000);
        });
        return { status: list.status, requestId, connected };
      } catch (e) {
        return { error: String(e) };
      }
    },
    { base: server.base, email: AGENT.email, password: AGENT.password },
  );
  await tab.close();
  return result;
}

test("a page on a listed origin calls the API and connects Socket.IO over long-polling", async () => {
  const r = await tryFromPage(page("127.0.0.1"));
  assert.equal(r.status, 200, JSON.stringify(r));
  assert.match(r.requestId ?? "", /.+/, "exposed headers are readable");
  assert.equal(r.connected, true, JSON.stringify(r));
});

test("the same page on an origin not listed is refused by the browser", async () => {
  const r = await tryFromPage(page("localhost"));
  assert.match(r.error ?? "", /Failed to fetch/, JSON.stringify(r));
});
