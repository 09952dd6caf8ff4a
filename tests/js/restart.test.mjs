// Connection state recovery across a restart of the server, with the stock
// socket.io-client: the session's recovery state is in the store, so a
// client that was connected and joined when the server stopped (SIGTERM, or
// SIGKILL) comes back to the restarted server with `recovered === true`,
// still in its room, and gets the message sent while it was away, once.
import { test } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { startServer, once, waitFor, uuid, AGENT, ADMIN } from "./harness.mjs";

// Short, so the test does not wait long for the state to reach the store before a SIGKILL.
const FLUSH_MS = 200;
const ENV = { UTALK_SOCKET__SESSION_FLUSH_MS: String(FLUSH_MS) };
// Longer than the test: what a stop (SIGTERM) writes is all the next start finds.
const NO_FLUSH = { UTALK_SOCKET__SESSION_FLUSH_MS: "10000" };

const ack = (socket, event, payload) => socket.timeout(10000).emitWithAck(event, payload);

async function send(server, token, conv, text) {
  const r = await server.api("POST", `/api/v1/conversations/${conv}/messages`, { token, body: { messageId: uuid(), text } });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.seq;
}

for (const signal of ["SIGTERM", "SIGKILL"]) {
  test(`a client recovers its session after the server restarts from ${signal}`, { timeout: 120000 }, async () => {
    const env = signal === "SIGTERM" ? NO_FLUSH : ENV;
    let server = await startServer(env);
    const dir = server.dir;
    const listen = new URL(server.base).host;
    let watcher;
    try {
      await server.setBot(false);
      const agent = await server.login(AGENT);
      const conv = await server.conversation(agent.accessToken);
      // The client reconnects when told to, so that the message below is sent while it is away.
      watcher = io(server.base, { auth: { token: agent.accessToken }, transports: ["websocket"], reconnection: false });
      await once(watcher, "connect");
      const firstId = watcher.id;
      assert.equal(watcher.recovered, false);
      const joined = await ack(watcher, "conversation:join", { conversationId: conv });
      assert.equal(joined.ok, true);
      const seen = [];
      watcher.on("message:new", ({ message }) => seen.push([message.seq, message.text]));
      const admin = await server.login(ADMIN);
      await send(server, admin.accessToken, conv, "before");
      await waitFor(() => seen.length === 1, 5000, "the first delivery");

      const gone = once(watcher, "disconnect", 15000);
      if (signal === "SIGKILL") {
        // A crash loses at most one flush period: let the delivery above reach the store.
        await new Promise((r) => setTimeout(r, 3 * FLUSH_MS));
        await server.kill();
      } else {
        assert.equal(await server.term(), 0, "a clean stop");
      }
      const [reason] = [await gone].flat();
      assert.equal(reason, "transport close");

      // Same data, same address; another client sends through the restarted server.
      server = await startServer(env, { reuse: dir, listen });
      const sender = await server.login(ADMIN);
      assert.equal(await send(server, sender.accessToken, conv, "while away"), 2);

      const back = once(watcher, "connect", 15000);
      watcher.connect();
      await back;
      assert.equal(watcher.recovered, true, "connection state recovered across the restart");
      assert.equal(watcher.id, firstId, "the recovered socket keeps its id");
      await waitFor(() => seen.length >= 2, 5000, "the missed message");
      // Still in the room: a new message arrives without a join.
      await send(server, sender.accessToken, conv, "after");
      await waitFor(() => seen.length >= 3, 5000, "a live delivery after recovery");
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(seen, [
        [1, "before"],
        [2, "while away"],
        [3, "after"],
      ], "each message once, in order");
      const health = await server.api("GET", "/health/socket");
      assert.equal(health.body.connections.recovered, 1, JSON.stringify(health.body));
    } finally {
      watcher?.close();
      await server.stop();
    }
  });
}

test("a client that left on purpose is not recovered after a restart", { timeout: 60000 }, async () => {
  let server = await startServer(ENV);
  const dir = server.dir;
  const listen = new URL(server.base).host;
  try {
    const agent = await server.login(AGENT);
    const conv = await server.conversation(agent.accessToken);
    const s = io(server.base, { auth: { token: agent.accessToken }, transports: ["websocket"], reconnection: false });
    await once(s, "connect");
    await ack(s, "conversation:join", { conversationId: conv });
    const admin = await server.login(ADMIN);
    await send(server, admin.accessToken, conv, "hola");
    await new Promise((r) => setTimeout(r, 3 * FLUSH_MS));
    // Leaves for good: its stored session goes.
    s.disconnect();
    await new Promise((r) => setTimeout(r, 3 * FLUSH_MS));
    assert.equal(await server.term(), 0);
    server = await startServer(ENV, { reuse: dir, listen });
    const back = once(s, "connect", 15000);
    s.connect();
    await back;
    assert.equal(s.recovered, false, "a client disconnect ends the session for good");
    s.close();
  } finally {
    await server.stop();
  }
});
