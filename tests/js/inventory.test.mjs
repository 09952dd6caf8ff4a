// Stock alerts reach the people who run the stores: `alert:new` on the sockets
// of operators, admins and the store's manager (not other agents), and a
// signed webhook (the deprecated `[alerts]` settings, now one event webhook
// subscription) to a local receiver that checks the signature the way an
// integrator would, retried after a failure. The scheduled scan raises an
// alert a sale did not, and restored stock resolves them.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { createHmac, timingSafeEqual } from "node:crypto";
import { io } from "socket.io-client";
import { startServer, once, waitFor, uuid, ADMIN, AGENT } from "./harness.mjs";

const SECRET = "webhook-secret-for-the-tests-0123";
const OTHER = { email: "other-agent@example.com", password: "other-agent-password-1" };

let server;
let receiver;
const hooks = [];
let failNext = 1;

before(async () => {
  receiver = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const raw = Buffer.concat(chunks);
      const status = failNext-- > 0 ? 500 : 200;
      hooks.push({ headers: req.headers, raw, status });
      res.writeHead(status).end();
    });
  });
  await new Promise((r) => receiver.listen(0, "127.0.0.1", r));
  server = await startServer({
    UTALK_ALERTS__WEBHOOK_URL: `http://127.0.0.1:${receiver.address().port}/hooks/stock`,
    UTALK_ALERTS__WEBHOOK_SECRET: SECRET,
    UTALK_WEBHOOKS__BACKOFF_BASE_MS: "100",
    // The scan every second, so that "within one period" is quick to wait for.
    UTALK_JOBS__STOCK_NEGATIVE: "* * * * * *",
  });
});
after(async () => {
  await server?.stop();
  receiver?.close();
});

function connect(token) {
  const s = io(server.base, { auth: { token }, transports: ["websocket"] });
  s.alerts = [];
  s.on("alert:new", (p) => s.alerts.push(["new", p.alert]));
  s.on("alert:updated", (p) => s.alerts.push(["updated", p.alert]));
  return s;
}

// What an integrator does with a delivery (docs/webhooks.md): recompute the
// HMAC over "<t>.<raw body>" and refuse a stale timestamp.
function signed(h) {
  const parts = Object.fromEntries(String(h.headers["x-utalk-signature"] ?? "").split(",").map((p) => p.split("=")));
  if (!parts.t || !parts.v1 || Math.abs(Date.now() / 1000 - Number(parts.t)) > 300) return false;
  const want = Buffer.from(createHmac("sha256", SECRET).update(`${parts.t}.`).update(h.raw).digest("hex"));
  const got = Buffer.from(parts.v1);
  return want.length === got.length && timingSafeEqual(want, got);
}

test("negative stock is alerted once on the right sockets and by a signed webhook, and resolves when stock is back", async () => {
  const admin = (await server.login(ADMIN)).accessToken;
  const created = await server.api("POST", "/api/v1/users", { token: admin, body: { ...OTHER, role: "agent" } });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const manager = (await server.login(AGENT)).accessToken;
  const other = (await server.login(OTHER)).accessToken;
  const [adminSock, managerSock, otherSock] = [connect(admin), connect(manager), connect(other)];
  await Promise.all([once(adminSock, "connect"), once(managerSock, "connect"), once(otherSock, "connect")]);

  const store = await server.api("POST", "/api/v1/stores", { token: admin, body: { name: "Sucursal Norte", allowNegativeStock: true, managerEmail: AGENT.email } });
  assert.equal(store.status, 201);
  const storeId = store.body.id;
  const p = await server.api("POST", `/api/v1/stores/${storeId}/products`, { token: admin, body: { sku: "LECHE-1L", name: "Leche 1 L", price: 28, lowStockThreshold: 2 } });
  assert.equal(p.status, 201);
  // A new product has stock 0, under its threshold: the scan may call it low before the purchase; what follows does not depend on it.
  const txn = (type, quantity) =>
    server.api("POST", "/api/v1/inventory/transactions", { token: admin, body: { transactionId: uuid(), storeId, sku: "LECHE-1L", type, quantity } });
  assert.equal((await txn("PURCHASE", 3)).status, 201);
  const sale = await txn("SALE", 5);
  assert.equal(sale.status, 201);
  assert.equal(sale.body.stockAfter, -2);

  // Sockets: admins and the store's manager, not other agents.
  await waitFor(() => adminSock.alerts.some(([e, a]) => e === "new" && a.kind === "negative_stock"), 5000, "alert:new to the admin");
  await waitFor(() => managerSock.alerts.some(([e, a]) => e === "new" && a.kind === "negative_stock"), 5000, "alert:new to the manager");
  const negative = adminSock.alerts.find(([e, a]) => e === "new" && a.kind === "negative_stock")[1];
  assert.equal(negative.severity, "critical");
  assert.equal(negative.storeId, storeId);
  assert.equal(negative.stock, -2);
  assert.ok(adminSock.alerts.some(([e, a]) => e === "new" && a.kind === "low_stock" && a.severity === "warning"));

  // The webhook: refused once (500), retried, then taken; every attempt signed over its exact body.
  const delivered = (event, kind) => hooks.some((h) => h.status === 200 && JSON.parse(h.raw).type === event && JSON.parse(h.raw).data.alert.kind === kind);
  await waitFor(() => delivered("alert.raised", "negative_stock"), 10000, "the negative-stock webhook delivered");
  assert.ok(hooks.every(signed), "every delivery carries a valid signature");
  assert.equal(hooks[0].status, 500);
  const retried = hooks.find((h, i) => i > 0 && h.headers["x-utalk-delivery"] === hooks[0].headers["x-utalk-delivery"]);
  assert.ok(retried && retried.status === 200, "the refused delivery came again with the same id");
  // Strictly in order: nothing after the refused one went out before it was taken.
  assert.equal(hooks[1].headers["x-utalk-delivery"], hooks[0].headers["x-utalk-delivery"]);
  assert.equal(retried.raw.toString(), hooks[0].raw.toString(), "the same bytes each time");
  const bodies = hooks.filter((h) => h.status === 200).map((h) => JSON.parse(h.raw));
  const raisedNegative = bodies.find((b) => b.type === "alert.raised" && b.data.alert.kind === "negative_stock");
  assert.ok(raisedNegative, JSON.stringify(bodies));
  assert.equal(raisedNegative.data.alert.id, negative.id);
  assert.equal(raisedNegative.data.store.name, "Sucursal Norte");
  assert.equal(hooks.find((h) => h.status === 200).headers["x-utalk-event"], "alert.raised");

  // Raised once: further sales below zero do not raise it again.
  assert.equal((await txn("SALE", 1)).status, 201);
  const open = await server.api("GET", "/api/v1/alerts?status=open", { token: admin });
  assert.equal(open.body.items.filter((a) => a.storeId === storeId && a.kind === "negative_stock").length, 1);

  // Resolved by hand while still short: the scan raises it again within one period.
  const fixed = await server.api("POST", `/api/v1/alerts/${negative.id}/resolve`, { token: admin });
  assert.equal(fixed.status, 200);
  assert.equal(fixed.body.status, "resolved");
  await waitFor(
    () => adminSock.alerts.some(([e, a]) => e === "new" && a.kind === "negative_stock" && a.id !== negative.id),
    5000,
    "the scan raises it again",
  );

  // Stock back: both resolve themselves, on the socket and by webhook.
  const restock = await txn("PURCHASE", 10);
  assert.equal(restock.body.stockAfter, 7);
  await waitFor(() => adminSock.alerts.filter(([e, a]) => e === "updated" && a.status === "resolved" && !a.resolvedBy).length >= 2, 5000, "resolved");
  await waitFor(() => hooks.some((h) => h.status === 200 && JSON.parse(h.raw).type === "alert.resolved"), 10000, "alert.resolved webhook");
  const stillOpen = await server.api("GET", "/api/v1/alerts?status=open", { token: admin });
  assert.equal(stillOpen.body.items.filter((a) => a.storeId === storeId).length, 0);

  assert.equal(otherSock.alerts.length, 0, "an agent who does not manage the store hears nothing");
  for (const s of [adminSock, managerSock, otherSock]) s.disconnect();

  // The next scan sets the store's gauges from its stock.
  let metrics = "";
  const gauge = new RegExp(`inventory_products_negative\\{store="${storeId}"\\} 0`);
  for (let i = 0; i < 50 && !gauge.test(metrics); i++) {
    await new Promise((r) => setTimeout(r, 100));
    metrics = await (await fetch(server.base + "/metrics")).text();
  }
  assert.match(metrics, gauge);
  assert.match(metrics, new RegExp(`inventory_products_low\\{store="${storeId}"\\} 0`));
  assert.match(metrics, new RegExp(`inventory_transactions_total\\{[^}]*store="${storeId}"[^}]*\\} \\d+`));
  assert.match(metrics, /webhook_deliveries_total\{outcome="retrying"\} 1/);
});
