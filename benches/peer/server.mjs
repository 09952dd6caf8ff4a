// The peer: a Node socket.io 4.8 server with utalk's chat events
// (`conversation:join`, `message:send` with its ack, `message:new` to the
// room) and nothing else: no storage, no auth check, messages in memory.
// It prints {"addr": "127.0.0.1:PORT"} once listening.
import { createServer } from "node:http";
import { Server } from "socket.io";

const http = createServer();
const io = new Server(http, { serveClient: false, maxHttpBufferSize: 1e6 });
const conversations = new Map();

function conversation(id) {
  let c = conversations.get(id);
  if (!c) {
    c = { seq: 0, ids: new Map() };
    conversations.set(id, c);
  }
  return c;
}

io.on("connection", (socket) => {
  socket.on("conversation:join", (p, ack) => {
    const c = conversation(p?.conversationId);
    socket.join(p.conversationId);
    if (typeof ack === "function") ack({ ok: true, lastSeq: c.seq });
  });
  socket.on("message:send", (p, ack) => {
    const c = conversation(p?.conversationId);
    let m = c.ids.get(p.messageId);
    if (!m) {
      m = {
        id: p.messageId,
        conversationId: p.conversationId,
        seq: ++c.seq,
        direction: "outbound",
        author: { type: "agent", id: null },
        text: p.text,
        status: "sent",
        createdAt: new Date().toISOString(),
      };
      // As utalk does, remember ids for idempotency (bounded per conversation).
      c.ids.set(p.messageId, m);
      if (c.ids.size > 10000) c.ids.delete(c.ids.keys().next().value);
      socket.to(p.conversationId).emit("message:new", { message: m });
    }
    if (typeof ack === "function") ack({ ok: true, message: m });
  });
});

http.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => {
  console.log(JSON.stringify({ addr: `127.0.0.1:${http.address().port}` }));
});
