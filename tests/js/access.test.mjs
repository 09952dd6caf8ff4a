// API keys and users' lifecycle on sockets: a key connects like a token,
// a revoked key or a disabled user loses its open socket within seconds.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { startServer, once, ADMIN, AGENT } from "./harness.mjs";

let server;
let admin;

before(async () => {
  server = await startServer();
  admin = await server.login(ADMIN);
});

after(async () => {
  await server.stop();
});

function connect(token) {
  return io(server.base, { auth: { token }, reconnection: false });
}

// Resolves with the `session:closed` reason and the disconnect, in the order the client saw them.
function closing(socket) {
  const seen = [];
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`the socket stayed open: ${JSON.stringify(seen)}`)), 10000);
    socket.on("session:closed", (p) => seen.push(`session:closed ${p.reason}`));
    socket.on("disconnect", (why) => {
      clearTimeout(t);
      seen.push(`disconnect ${why}`);
      resolve(seen);
    });
  });
}

test("an API key connects a socket; revoked, its open socket closes and it can no longer connect", async () => {
  const made = await server.api("POST", "/api/v1/api-keys", { token: admin.accessToken, body: { name: "crm sync", role: "agent" } });
  assert.equal(made.status, 201, JSON.stringify(made.body));
  const key = made.body.key;
  assert.match(key, /^utk_/);

  const s = connect(key);
  await once(s, "connect");
  const conv = await server.api("POST", "/api/v1/conversations", { token: key, body: { channel: "api", customer: { name: "Ana" } } });
  assert.equal(conv.status, 201, JSON.stringify(conv.body));
  const joined = await s.timeout(10000).emitWithAck("conversation:join", { conversationId: conv.body.id });
  assert.equal(joined.ok, true, JSON.stringify(joined));

  const closed = closing(s);
  const started = Date.now();
  const revoked = await server.api("DELETE", `/api/v1/api-keys/${made.body.id}`, { token: admin.accessToken });
  assert.equal(revoked.status, 200);
  const seen = await closed;
  assert.equal(seen[0], "session:closed access_revoked", JSON.stringify(seen));
  assert.match(seen.at(-1), /^disconnect /);
  assert.ok(Date.now() - started < 5000, "closed within the check period");

  const again = connect(key);
  const err = await once(again, "connect_error");
  assert.equal(err.message, "invalid_token");
  again.close();
});

test("a disabled agent's open socket closes and their tokens stop working", async () => {
  const agent = await server.login(AGENT);
  const s = connect(agent.accessToken);
  await once(s, "connect");
  const closed = closing(s);
  const off = await server.api("PATCH", `/api/v1/users/${agent.user.id}`, { token: admin.accessToken, body: { disabled: true } });
  assert.equal(off.status, 200, JSON.stringify(off.body));
  assert.equal(off.body.disabled, true);
  const seen = await closed;
  assert.equal(seen[0], "session:closed access_revoked", JSON.stringify(seen));

  const again = connect(agent.accessToken);
  assert.equal((await once(again, "connect_error")).message, "token_revoked");
  again.close();
  const refreshed = await server.api("POST", "/api/v1/auth/refresh", { body: { refreshToken: agent.refreshToken } });
  assert.equal(refreshed.status, 401);

  const on = await server.api("PATCH", `/api/v1/users/${agent.user.id}`, { token: admin.accessToken, body: { disabled: false } });
  assert.equal(on.status, 200);
  const back = await server.login(AGENT);
  const s2 = connect(back.accessToken);
  await once(s2, "connect");
  s2.close();
});
