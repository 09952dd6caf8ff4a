// UtalkSocket: a small Socket.IO v5 / Engine.IO v4 client over WebSocket
// (docs/socket-protocol.md), shared by the web widget and the agent console.
//
//   const s = new UtalkSocket(baseUrl, { auth: () => ({ token }) });
//   s.on("message:new", (payload, offset) => ...);   // server events get all their arguments
//   s.on("connect", (recovered) => ...);             // recovered: the session and its rooms came back
//   s.on("disconnect", (reason) => ...);             // "transport close", "ping timeout", "io client disconnect"
//   s.on("connect_error", (err) => ...);             // err.message: missing_token, invalid_token, token_expired, token_revoked
//   const ack = await s.emit("conversation:join", { conversationId, sinceSeq: 0 });
//   s.connected; s.id; s.open(); s.close();
//
// - `auth` is an object or a function returning one (or a Promise of one); it
//   is read again for every CONNECT, so a caller that refreshes its token is
//   picked up on the next reconnect.
// - A dropped transport (network loss, server restart, `session:closed`,
//   missed pings) reconnects on its own, after 1 s doubling up to 10 s with
//   jitter; a browser coming back online retries at once. The reconnect asks
//   for connection state recovery (the last CONNECT's `pid` and the last
//   offset received); as in socket.io-client, events the server replays
//   before its CONNECT answer are delivered first, then `connect(true)`.
// - A refused CONNECT (`connect_error`) is not retried: the socket stops, and
//   the caller gets a fresh token (or a new session) and calls open() again.
//   Retrying the same credentials could only be refused again.
// - emit() resolves with the server's ack object. It rejects with
//   Error("disconnected") when not connected or when the transport drops
//   before the ack, and with Error("timeout") after 15 s.
var UtalkSocket = (function () {
  "use strict";
  var ACK_TIMEOUT = 15000;

  function UtalkSocket(baseUrl, opts) {
    opts = opts || {};
    var u = new URL("/socket.io/?EIO=4&transport=websocket", baseUrl);
    u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
    this.url = u.href;
    this.auth = opts.auth || {};
    this.connected = false;
    this.id = undefined;
    this._handlers = {};
    this._acks = new Map();
    this._ackId = 0;
    this._pid = undefined;
    this._offset = undefined;
    this._attempts = 0;
    this._wanted = false;
    this._gen = 0;
    var self = this;
    if (typeof window !== "undefined" && window.addEventListener) {
      window.addEventListener("online", function () {
        if (self._wanted && !self._ws && self._timer) self._connectNow();
      });
    }
    if (opts.autoConnect !== false) this.open();
  }

  var P = UtalkSocket.prototype;

  P.on = function (event, fn) {
    (this._handlers[event] = this._handlers[event] || []).push(fn);
    return this;
  };

  P.off = function (event, fn) {
    var list = this._handlers[event];
    if (list) this._handlers[event] = fn ? list.filter(function (f) { return f !== fn; }) : [];
    return this;
  };

  P._fire = function (event, args) {
    var list = (this._handlers[event] || []).slice();
    for (var i = 0; i < list.length; i++) {
      try { list[i].apply(null, args); } catch (e) { setTimeout(function () { throw e; }); }
    }
  };

  P.open = function () {
    this._wanted = true;
    if (!this._ws) this._connectNow();
    return this;
  };

  P.close = function () {
    this._wanted = false;
    clearTimeout(this._timer);
    this._timer = null;
    this._drop("io client disconnect");
    return this;
  };

  P.emit = function (event, payload) {
    var self = this;
    return new Promise(function (resolve, reject) {
      if (!self.connected) return reject(new Error("disconnected"));
      var id = ++self._ackId;
      var t = setTimeout(function () {
        self._acks.delete(id);
        reject(new Error("timeout"));
      }, ACK_TIMEOUT);
      self._acks.set(id, { resolve: resolve, reject: reject, t: t });
      self._ws.send("42" + id + JSON.stringify([event, payload === undefined ? {} : payload]));
    });
  };

  P._connectNow = function () {
    clearTimeout(this._timer);
    this._timer = null;
    var self = this, gen = ++this._gen, ws;
    try { ws = new WebSocket(this.url); } catch (e) { return this._retry(); }
    this._ws = ws;
    this._buffer = [];
    ws.onmessage = function (ev) { if (gen === self._gen) self._onFrame(String(ev.data)); };
    ws.onclose = function () { if (gen === self._gen) self._lost("transport close"); };
    ws.onerror = function () {};
  };

  P._retry = function () {
    if (!this._wanted || this._timer) return;
    var base = Math.min(10000, 1000 * Math.pow(2, this._attempts++));
    var delay = Math.min(10000, base * (0.5 + Math.random()));
    var self = this;
    this._timer = setTimeout(function () { self._timer = null; self._connectNow(); }, delay);
  };

  // Closes the transport; fails the pending acks; tells listeners if it was connected.
  P._drop = function (reason) {
    var ws = this._ws, was = this.connected;
    this._gen++;
    this._ws = null;
    this.connected = false;
    this.id = undefined;
    clearTimeout(this._pingTimer);
    if (ws) { try { ws.close(); } catch (e) {} }
    var acks = this._acks;
    this._acks = new Map();
    acks.forEach(function (a) { clearTimeout(a.t); a.reject(new Error("disconnected")); });
    if (was) this._fire("disconnect", [reason]);
  };

  P._lost = function (reason) {
    this._drop(reason);
    this._retry();
  };

  P._armPing = function () {
    var self = this;
    clearTimeout(this._pingTimer);
    this._pingTimer = setTimeout(function () { self._lost("ping timeout"); }, this._pingWait);
  };

  P._onFrame = function (data) {
    var type = data.charAt(0);
    if (type === "0") {
      var hs = JSON.parse(data.slice(1));
      this._pingWait = (hs.pingInterval || 25000) + (hs.pingTimeout || 20000);
      this._armPing();
      this._sendConnect();
    } else if (type === "2") {
      this._armPing();
      this._ws.send("3");
    } else if (type === "1") {
      this._lost("transport close");
    } else if (type === "4") {
      this._onPacket(data.slice(1));
    }
  };

  P._sendConnect = function () {
    var self = this, gen = this._gen;
    Promise.resolve(typeof this.auth === "function" ? this.auth() : this.auth).then(function (auth) {
      if (gen !== self._gen) return;
      var data = Object.assign({}, auth || {});
      self._sentPid = self._pid;
      if (self._pid && self._offset !== undefined) {
        data.pid = self._pid;
        data.offset = self._offset;
      }
      self._ws.send("40" + JSON.stringify(data));
    }, function (err) {
      if (gen !== self._gen) return;
      self._drop("auth error");
      var e = new Error((err && err.message) || "auth_error");
      self._fire("connect_error", [e]);
    });
  };

  P._onPacket = function (s) {
    var type = s.charAt(0), i = 1;
    if (s.charAt(1) === "/") {
      var comma = s.indexOf(",");
      i = comma < 0 ? s.length : comma + 1;
    }
    var j = i;
    while (j < s.length && s.charCodeAt(j) >= 48 && s.charCodeAt(j) <= 57) j++;
    var id = j > i ? Number(s.slice(i, j)) : null;
    var data = j < s.length ? JSON.parse(s.slice(j)) : undefined;
    if (type === "0") {
      data = data || {};
      var recovered = !!(this._sentPid && data.pid === this._sentPid);
      if (!recovered) this._offset = undefined;
      this._pid = data.pid;
      this.id = data.sid;
      this.connected = true;
      this._attempts = 0;
      var buffered = this._buffer;
      this._buffer = [];
      for (var k = 0; k < buffered.length; k++) this._event(buffered[k]);
      this._fire("connect", [recovered]);
    } else if (type === "4") {
      this._wanted = false;
      clearTimeout(this._timer);
      this._timer = null;
      this._drop("connect_error");
      var err = new Error((data && data.message) || "connect_error");
      err.data = data;
      this._fire("connect_error", [err]);
    } else if (type === "2" && Array.isArray(data)) {
      if (this.connected) this._event(data);
      else this._buffer.push(data);
    } else if (type === "3" && id !== null) {
      var a = this._acks.get(id);
      if (a) {
        this._acks.delete(id);
        clearTimeout(a.t);
        a.resolve(Array.isArray(data) ? data[0] : data);
      }
    } else if (type === "1") {
      this._wanted = false;
      this._drop("io server disconnect");
    }
  };

  P._event = function (args) {
    if (this._pid && args.length > 1 && typeof args[args.length - 1] === "string") {
      this._offset = args[args.length - 1];
    }
    this._fire(args[0], args.slice(1));
  };

  return UtalkSocket;
})();
