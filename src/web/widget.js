// The customer chat widget. Served as GET /widget.js, wrapped with socket.js in
// one function, so everything here is local and UtalkSocket is in scope.
// A page embeds it with
//   <script src="https://utalk.example/widget.js" async data-lang="es" data-title="..."></script>
// and the server it talks to is the origin of that src (docs/web.md).
var script = document.currentScript ||
  [].slice.call(document.querySelectorAll("script[src]")).filter(function (s) { return /\/widget\.js(\?|#|$)/.test(s.src); }).pop();

if (script && !document.querySelector("[data-utalk-widget]")) {
  if (document.body) utalkWidget(script);
  else document.addEventListener("DOMContentLoaded", function () { utalkWidget(script); });
}

function utalkWidget(script) {
  "use strict";
  var BASE = new URL(script.src, location.href).origin;
  var D = script.dataset;
  var LANG = (D.lang || document.documentElement.lang || navigator.language || "en").toLowerCase().indexOf("es") === 0 ? "es" : "en";
  // Texts; characters outside ASCII are written as \u escapes, so the file
  // reads the same whatever charset the page or the server assumes.
  var T = {
    es: {
      title: "Chat con nosotros", open: "Abrir chat", close: "Cerrar chat", unread: " ({n} sin leer)",
      log: "Mensajes", input: "Escribe tu mensaje", placeholder: "Escribe un mensaje\u2026", send: "Enviar",
      attach: "Adjuntar archivo", sending: "Enviando\u2026", sent: "Enviado", read: "Le\u00EDdo", failed: "No enviado",
      typing: "Escribiendo\u2026", connecting: "Conectando\u2026", offline: "Sin conexi\u00F3n: tus mensajes se enviar\u00E1n al volver.",
      you: "T\u00FA", bot: "Asistente", agent: "Agente", image: "Imagen adjunta", file: "Archivo adjunto",
      uploading: "Subiendo archivo\u2026", csat: "\u00BFC\u00F3mo calificar\u00EDas la atenci\u00F3n que recibiste? (1 = muy mala, 5 = excelente)",
      nps: "\u00BFQu\u00E9 tan probable es que nos recomiendes? (0 = nada probable, 10 = muy probable)",
      thanks: "\u00A1Gracias por tu opini\u00F3n!", closed: "La conversaci\u00F3n termin\u00F3. Si escribes de nuevo, la retomamos.",
      media_too_large: "El archivo es demasiado grande.", media_type_not_allowed: "Ese tipo de archivo no est\u00E1 permitido.",
      media_quota_exceeded: "Esta conversaci\u00F3n ya no admite m\u00E1s archivos.", rate_limited: "Demasiados intentos; espera un momento.",
      upload_failed: "No se pudo subir el archivo.", session_failed: "No se pudo abrir el chat; lo intentamos de nuevo.",
      text_too_long: "El mensaje es demasiado largo.", rate_failed: "No se pudo guardar la calificaci\u00F3n."
    },
    en: {
      title: "Chat with us", open: "Open chat", close: "Close chat", unread: " ({n} unread)",
      log: "Messages", input: "Type your message", placeholder: "Type a message\u2026", send: "Send",
      attach: "Attach a file", sending: "Sending\u2026", sent: "Sent", read: "Read", failed: "Not sent",
      typing: "Typing\u2026", connecting: "Connecting\u2026", offline: "Offline: your messages will be sent when you are back.",
      you: "You", bot: "Assistant", agent: "Agent", image: "Attached image", file: "Attached file",
      uploading: "Uploading file\u2026", csat: "How would you rate the service you received? (1 = very poor, 5 = excellent)",
      nps: "How likely are you to recommend us? (0 = not at all likely, 10 = extremely likely)",
      thanks: "Thank you for your feedback!", closed: "This conversation has ended. Write again to pick it up.",
      media_too_large: "The file is too large.", media_type_not_allowed: "That type of file is not allowed.",
      media_quota_exceeded: "This conversation takes no more files.", rate_limited: "Too many attempts; please wait a moment.",
      upload_failed: "The file could not be uploaded.", session_failed: "The chat could not be opened; trying again.",
      text_too_long: "The message is too long.", rate_failed: "The rating could not be saved."
    }
  }[LANG];
  var RETRIABLE = ["overloaded", "conversation_restarted", "storage_unavailable", "cluster_unavailable", "internal", "timeout", "disconnected"];
  var UPLOAD_ERRORS = ["media_too_large", "media_type_not_allowed", "media_quota_exceeded", "rate_limited"];
  var AUTH_ERRORS = ["missing_token", "invalid_token", "token_expired", "token_revoked"];
  var SKEY = "utalk:session:" + BASE, PKEY = "utalk:pending:" + BASE;

  // ---- storage -----------------------------------------------------------
  function load(key, dflt) {
    try { return JSON.parse(localStorage.getItem(key)) || dflt; } catch (e) { return dflt; }
  }
  function save(key, v) {
    try { if (v == null) localStorage.removeItem(key); else localStorage.setItem(key, JSON.stringify(v)); } catch (e) {}
  }
  var memPending = [];
  function pending() { var p = load(PKEY, null); return Array.isArray(p) ? p : memPending; }
  function setPending(list) { memPending = list; save(PKEY, list); }
  function unqueue(id) { setPending(pending().filter(function (p) { return p.messageId !== id; })); }

  var sess = load(SKEY, null);
  function live(s) { return s && s.token && s.conversationId && s.expiresAt > Date.now() + 60000; }

  // ---- DOM ---------------------------------------------------------------
  function el(tag, attrs, parent, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text != null) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }
  var host = el("div", { "data-utalk-widget": "" }, document.body);
  var root = host.attachShadow({ mode: "open" });
  var CSS = ":host{all:initial}*{box-sizing:border-box;font:14px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}" +
    "[hidden]{display:none!important}.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}" +
    "button{cursor:pointer;border:0;border-radius:8px;background:#1d4ed8;color:#fff;padding:8px 12px}button:hover{background:#1e40af}" +
    "button:disabled{cursor:default;background:#4b5563}:focus-visible{outline:3px solid #1d4ed8;outline-offset:2px}" +
    ".launch{position:fixed;bottom:20px;right:20px;z-index:2147483000;width:56px;height:56px;border-radius:50%;padding:0;box-shadow:0 4px 14px rgba(0,0,0,.3)}" +
    ".launch svg{width:28px;height:28px;fill:#fff;vertical-align:middle}.badge{position:absolute;top:-4px;right:-4px;min-width:20px;border-radius:10px;background:#b91c1c;color:#fff;font-size:12px;font-weight:700;padding:1px 6px}" +
    ".panel{position:fixed;bottom:88px;right:20px;z-index:2147483000;width:360px;max-width:calc(100vw - 40px);height:540px;max-height:calc(100vh - 108px);display:flex;flex-direction:column;background:#fff;color:#1f2937;border-radius:12px;box-shadow:0 8px 30px rgba(0,0,0,.3);overflow:hidden}" +
    ".left .launch,.left .panel{right:auto;left:20px}" +
    ".hdr{display:flex;align-items:center;gap:8px;background:#1d4ed8;color:#fff;padding:10px 12px}.hdr h2{flex:1;margin:0;font-size:16px;font-weight:600}" +
    ".hdr button{background:transparent;font-size:20px;line-height:1;padding:4px 10px}.hdr button:hover{background:#1e40af}.hdr :focus-visible{outline-color:#fff;outline-offset:-3px}" +
    ".status{padding:4px 12px;background:#fef3c7;color:#78350f;font-size:13px}.log{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:8px}" +
    ".msg{max-width:85%;align-self:flex-start}.msg.me{align-self:flex-end}.bub{background:#f1f3f5;border-radius:12px;padding:8px 10px;white-space:pre-wrap;overflow-wrap:anywhere}" +
    ".me .bub{background:#1d4ed8;color:#fff}.meta{font-size:12px;color:#4b5563;margin-top:2px}.me .meta{text-align:right}.sys{align-self:center;text-align:center}.sys .bub{background:#fff;border:1px solid #d1d5db}.failed .meta{color:#b91c1c}" +
    ".bub img{display:block;max-width:100%;max-height:240px;border-radius:8px}.bub a{color:inherit}" +
    ".typing{padding:0 12px 4px;color:#4b5563;font-size:13px;min-height:18px}.err{margin:0 12px 6px;padding:6px 10px;border-radius:6px;background:#fee2e2;color:#991b1b}" +
    ".rate{margin:0 12px 8px;padding:8px;border:1px solid #d1d5db;border-radius:8px}.rate p{margin:0 0 6px}.rate div{display:flex;flex-wrap:wrap;gap:4px}.rate button{min-width:32px;padding:6px 8px}" +
    "form{display:flex;gap:6px;align-items:flex-end;border-top:1px solid #d1d5db;padding:8px}textarea{flex:1;resize:none;min-height:38px;max-height:120px;border:1px solid #6b7280;border-radius:8px;padding:8px;color:#1f2937;background:#fff}" +
    "textarea::placeholder{color:#6b7280}.att{background:#fff;color:#1d4ed8;border:1px solid #1d4ed8;padding:7px 10px;font-weight:700}.att:hover{background:#eff6ff}" +
    "@media (max-width:480px){.panel{right:0;left:0;bottom:0;width:100%;max-width:none;height:100%;max-height:none;border-radius:0}}";
  try {
    var sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
    root.adoptedStyleSheets = [sheet];
  } catch (e) { el("style", null, root, CSS); }

  var wrap = el("div", { class: D.position === "left" ? "left" : "" }, root);
  var launcher = el("button", { class: "launch", type: "button", "aria-expanded": "false", "aria-controls": "utalk-panel" }, wrap);
  var NS = "http://www.w3.org/2000/svg", svg = document.createElementNS(NS, "svg"), path = document.createElementNS(NS, "path");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  path.setAttribute("d", "M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H8l-5 4V5a2 2 0 0 1 1-2z");
  svg.appendChild(path);
  launcher.appendChild(svg);
  var badge = el("span", { class: "badge", hidden: "", "aria-hidden": "true" }, launcher);
  var panel = el("section", { class: "panel", id: "utalk-panel", role: "dialog", "aria-modal": "false", "aria-labelledby": "utalk-title", hidden: "" }, wrap);
  var hdr = el("div", { class: "hdr" }, panel);
  el("h2", { id: "utalk-title" }, hdr, D.title || T.title);
  var closeBtn = el("button", { type: "button", "aria-label": T.close }, hdr, "\u00D7");
  var statusEl = el("div", { class: "status", role: "status", hidden: "" }, panel);
  var log = el("div", { class: "log", role: "log", "aria-live": "polite", "aria-label": T.log, tabindex: "0" }, panel);
  var typingEl = el("div", { class: "typing", "aria-live": "polite" }, panel);
  var errEl = el("div", { class: "err", role: "alert", hidden: "" }, panel);
  var rateBox = el("div", { class: "rate", hidden: "" }, panel);
  var form = el("form", null, panel);
  el("label", { for: "utalk-input", class: "sr" }, form, T.input);
  var input = el("textarea", { id: "utalk-input", rows: "1", placeholder: T.placeholder, maxlength: "4096" }, form);
  var file = el("input", { type: "file", hidden: "", tabindex: "-1", "aria-label": T.attach }, form);
  var attachBtn = el("button", { type: "button", class: "att", "aria-label": T.attach, title: T.attach }, form, "+");
  el("button", { type: "submit" }, form, T.send);

  // ---- state ---------------------------------------------------------------
  var sock = null, isOpen = false, unread = 0, joined = false, ready = false, lastSeq = 0, readSent = 0, agentRead = 0;
  var msgs = new Map(); // messageId -> {m, el}
  var conv = null, rateStep = null, errTimer, typingTimer, selfTyping = false, selfTypingAt = 0, selfStopTimer;
  var recheck = false, sessRetry = 0, sessTimer, flushing = false, flushTimer, flushDelay = 1000, creating = null, everConnected = false;

  function setLauncher() {
    launcher.setAttribute("aria-expanded", String(isOpen));
    launcher.setAttribute("aria-label", (isOpen ? T.close : T.open) + (unread ? T.unread.replace("{n}", unread) : ""));
    badge.textContent = unread;
    badge.hidden = !unread;
  }
  setLauncher();

  function showError(text) {
    errEl.textContent = text;
    errEl.hidden = false;
    clearTimeout(errTimer);
    errTimer = setTimeout(function () { errEl.hidden = true; }, 8000);
  }
  function setStatus(text) {
    statusEl.textContent = text || "";
    statusEl.hidden = !text;
  }

  function openPanel() {
    isOpen = true;
    panel.hidden = false;
    unread = 0;
    setLauncher();
    input.focus();
    log.scrollTop = log.scrollHeight;
    connect();
    markRead();
  }
  function closePanel() {
    isOpen = false;
    panel.hidden = true;
    setLauncher();
    launcher.focus();
  }
  launcher.addEventListener("click", function () { if (isOpen) closePanel(); else openPanel(); });
  closeBtn.addEventListener("click", closePanel);
  panel.addEventListener("keydown", function (e) { if (e.key === "Escape") { e.preventDefault(); closePanel(); } });
  document.addEventListener("visibilitychange", markRead);

  // ---- session and socket -------------------------------------------------
  function ensureSession() {
    if (live(sess)) return Promise.resolve(sess);
    if (!creating) {
      var body = {};
      if (D.name) body.name = D.name;
      if (D.email) body.email = D.email;
      creating = fetch(BASE + "/api/v1/widget/sessions", {
        method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body)
      }).then(function (r) {
        if (r.status !== 201) throw new Error("session " + r.status);
        return r.json();
      }).then(function (b) {
        newSession({ token: b.token, conversationId: b.conversationId, expiresAt: Date.now() + b.expiresIn * 1000 });
        return sess;
      }).finally(function () { creating = null; });
    }
    return creating;
  }

  // Takes `s` as the current session; a new conversation starts with an empty log
  // (unsent messages stay queued and go to the new conversation).
  function newSession(s) {
    var changed = !sess || sess.conversationId !== s.conversationId;
    sess = s;
    save(SKEY, s);
    if (changed) {
      msgs.forEach(function (v, id) { if (v.m.seq) { v.el.remove(); msgs.delete(id); } });
      joined = ready = false; lastSeq = readSent = agentRead = 0; conv = null; showRating(null);
    }
  }

  function connect() {
    if (sock) { sock.open(); return; }
    clearTimeout(sessTimer);
    if (!everConnected) setStatus(T.connecting);
    ensureSession().then(function () {
      sessRetry = 0;
      if (sock) return;
      sock = new UtalkSocket(BASE, { auth: function () { return { token: sess.token }; } });
      sock.on("connect", onConnect);
      sock.on("disconnect", function () { ready = false; setStatus(T.offline); });
      sock.on("connect_error", onConnectError);
      sock.on("message:new", function (p) { if (p && p.message) onMessage(p.message, true); });
      sock.on("message:updated", function (p) { if (p && p.message) onMessage(p.message, false); });
      sock.on("message:read", onRead);
      sock.on("typing", onTyping);
      sock.on("conversation:updated", function (p) { if (p && p.conversation && sess && p.conversation.id === sess.conversationId) setConv(p.conversation); });
      sock.on("replay:truncated", function (p) { if (sess && p.conversationId === sess.conversationId) join(p.sinceSeq); });
    }).catch(function () {
      setStatus(T.session_failed);
      sessTimer = setTimeout(connect, Math.min(30000, 2000 * Math.pow(2, sessRetry++)));
    });
  }

  function onConnectError(err) {
    if (AUTH_ERRORS.indexOf(err.message) >= 0) {
      // The token is over: a new session (and conversation), then connect again.
      sess = null;
      save(SKEY, null);
      ensureSession().then(function () { sock.open(); }, function () {
        setStatus(T.session_failed);
        sessTimer = setTimeout(function () { ensureSession().then(function () { sock.open(); }, function () {}); }, 5000);
      });
    } else {
      setTimeout(function () { sock.open(); }, 3000);
    }
  }

  function onConnect(recovered) {
    everConnected = true;
    setStatus(navigator.onLine === false ? T.offline : "");
    // A recovered session is still in its conversation and got what it missed;
    // otherwise join again from the last seq seen.
    (recovered && joined ? Promise.resolve() : join(lastSeq)).then(function () {
      joined = ready = true;
      refreshConv();
      flush();
      markRead();
    }, function (e) {
      if (e.message !== "disconnected") setTimeout(function () { if (sock.connected && !ready) onConnect(false); }, 3000);
    });
  }

  function join(since) {
    var cid = sess.conversationId;
    return sock.emit("conversation:join", { conversationId: cid, sinceSeq: since }).then(function (a) {
      if (!a.ok || !sess || cid !== sess.conversationId) throw new Error(a.error ? a.error.code : "join");
      var ms = a.messages || [];
      ms.forEach(function (m) { onMessage(m, false); });
      if (a.hasMore && ms.length) return join(ms[ms.length - 1].seq);
    });
  }

  function api(path, opts) {
    opts = opts || {};
    opts.headers = Object.assign({ authorization: "Bearer " + sess.token }, opts.headers || {});
    return fetch(BASE + "/api/v1" + path, opts).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (b) {
        if (!r.ok) { var e = new Error((b.error && b.error.code) || "http_" + r.status); throw e; }
        return b;
      });
    });
  }

  function refreshConv() {
    api("/conversations/" + sess.conversationId).then(function (b) { setConv(b.conversation || b); }, function () {});
  }

  // ---- messages -----------------------------------------------------------
  function who(m) {
    var t = m.author && m.author.type;
    return t === "customer" ? T.you : t === "agent" ? T.agent : t === "system" ? "" : T.bot;
  }
  function time(iso) {
    var d = iso ? new Date(iso) : new Date();
    return d.toLocaleTimeString(LANG, { hour: "2-digit", minute: "2-digit" });
  }

  function onMessage(m, isNew) {
    if (!m || m.private || !sess || (m.conversationId && m.conversationId !== sess.conversationId)) return;
    var id = m.messageId || m.id, prev = msgs.get(id);
    if (m.seq > lastSeq) lastSeq = m.seq;
    var mine = !m.author || m.author.type === "customer";
    if (isNew && !mine && !prev) {
      hideTyping();
      if (!isOpen) { unread++; setLauncher(); }
    }
    render(id, m, prev);
    markRead();
  }

  // Draws message `m` (stored, or queued when it has no seq) once, in seq order.
  function render(id, m, prev) {
    var mine = !m.author || m.author.type === "customer";
    var media = m.media && m.media.length ? m.media : m.mediaId ? [{ id: m.mediaId }] : [];
    var sig = JSON.stringify([m.text, m.failed, m.fileName, media.map(function (f) { return f.id + f.status; })]);
    var box = prev ? prev.el : el("div");
    if (box._sig !== sig) {
      box._sig = sig;
      box.textContent = "";
      box.className = "msg" + (mine ? " me" : "") + (m.failed ? " failed" : "") + (who(m) ? "" : " sys");
      if (who(m)) el("span", { class: "sr" }, box, who(m) + ": ");
      var bub = el("div", { class: "bub" }, box);
      if (m.text) el("span", null, bub, m.text);
      media.forEach(function (f) { if (f.status !== "failed") attachment(bub, f); });
      if (m.fileName && !media.length) el("div", null, bub, "\uD83D\uDCCE " + m.fileName);
      box._meta = el("div", { class: "meta" }, box);
    }
    msgs.set(id, { m: m, el: box });
    box._m = m;
    setMeta(box);
    if (!prev || (m.seq && !prev.m.seq)) place(box, m.seq);
  }

  function setMeta(box) {
    var m = box._m, mine = !m.author || m.author.type === "customer";
    var parts = [who(m), time(m.createdAt)].filter(Boolean);
    if (mine) parts.push(m.failed ? T.failed + (m.failed === true ? "" : " (" + m.failed + ")") : !m.seq ? T.sending : m.seq <= agentRead ? T.read : T.sent);
    box._meta.textContent = parts.join(" \u00B7 ");
    box.setAttribute("data-author", (m.author && m.author.type) || "customer");
    box.setAttribute("data-state", m.failed ? "failed" : !m.seq ? "sending" : m.seq <= agentRead ? "read" : "sent");
  }

  function place(box, seq) {
    var kids = log.children, before = null;
    for (var i = 0; i < kids.length; i++) {
      var s = kids[i]._m && kids[i]._m.seq;
      if (kids[i] !== box && (!s || (seq && s > seq))) { before = kids[i]; break; }
    }
    if (!seq) before = null;
    var stick = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    log.insertBefore(box, before);
    if (stick || !seq) log.scrollTop = log.scrollHeight;
  }

  var mediaCache = {};
  function attachment(bub, f) {
    var holder = el("div", null, bub);
    // Signed URLs expire (media.url_ttl_secs): a cached one is used for ten minutes at most.
    var c = mediaCache[f.id];
    if (!c || Date.now() - c.at > 600000) c = mediaCache[f.id] = { at: Date.now(), p: api("/media/" + f.id) };
    c.p.then(function (r) {
      var url = new URL(r.url, BASE).href, type = f.contentType || r.contentType || "";
      if (type.indexOf("image/") === 0) {
        var img = el("img", { alt: T.image, src: url }, holder);
        img.addEventListener("load", function () { log.scrollTop = log.scrollHeight; });
      } else {
        el("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, holder, T.file + (type ? " (" + type + ")" : ""));
      }
    }, function () { delete mediaCache[f.id]; el("span", null, holder, T.file); });
  }

  function onRead(p) {
    if (!p || !sess || p.conversationId !== sess.conversationId || !p.reader || p.reader.type !== "agent") return;
    if (p.seq > agentRead) {
      agentRead = p.seq;
      msgs.forEach(function (v) { setMeta(v.el); });
    }
  }

  function markRead() {
    if (!isOpen || document.visibilityState !== "visible" || !ready || lastSeq <= readSent) return;
    readSent = lastSeq;
    sock.emit("message:read", { conversationId: sess.conversationId, seq: lastSeq }).catch(function () { readSent = 0; });
  }

  // ---- typing -------------------------------------------------------------
  function onTyping(p) {
    if (!p || !p.user || p.user.type === "customer" || (sess && p.conversationId && p.conversationId !== sess.conversationId)) return;
    clearTimeout(typingTimer);
    if (!p.typing) return hideTyping();
    typingEl.textContent = T.typing;
    typingTimer = setTimeout(hideTyping, 6000);
  }
  function hideTyping() { clearTimeout(typingTimer); typingEl.textContent = ""; }

  function typing(on) {
    if (!ready) return;
    var now = Date.now();
    if (on && selfTyping && now - selfTypingAt < 4000) return;
    if (!on && !selfTyping) return;
    selfTyping = on;
    selfTypingAt = now;
    sock.emit(on ? "typing:start" : "typing:stop", { conversationId: sess.conversationId }).catch(function () {});
  }
  input.addEventListener("input", function () {
    clearTimeout(selfStopTimer);
    if (!input.value) return typing(false);
    typing(true);
    selfStopTimer = setTimeout(function () { typing(false); }, 3000);
  });

  // ---- sending --------------------------------------------------------------
  // crypto.randomUUID exists only in secure contexts; a page on plain http gets the same from getRandomValues.
  function uuid() {
    if (crypto.randomUUID) return crypto.randomUUID();
    var b = crypto.getRandomValues(new Uint8Array(16)), h = [];
    b[6] = (b[6] & 15) | 64;
    b[8] = (b[8] & 63) | 128;
    for (var i = 0; i < 16; i++) h.push((b[i] + 256).toString(16).slice(1));
    return h.slice(0, 4).join("") + "-" + h.slice(4, 6).join("") + "-" + h.slice(6, 8).join("") + "-" + h.slice(8, 10).join("") + "-" + h.slice(10).join("");
  }

  function queue(item) {
    item.messageId = uuid();
    item.createdAt = new Date().toISOString();
    setPending(pending().concat([item]));
    render(item.messageId, { id: item.messageId, text: item.text, mediaId: item.mediaId, fileName: item.fileName, author: { type: "customer" }, createdAt: item.createdAt });
    if (conv && conv.status === "closed") {
      // Writing after the close reopens the conversation (or answers the rating question).
      recheck = true;
      setConv(Object.assign({}, conv, { status: "open", awaitingRating: null }));
    }
    connect();
    flush();
  }

  // Sends queued messages one by one, in order, each with its own messageId until acknowledged.
  function flush() {
    if (flushing || !ready) return;
    var next = pending()[0];
    if (!next) return;
    flushing = true;
    var payload = { conversationId: sess.conversationId, messageId: next.messageId };
    if (next.text) payload.text = next.text;
    if (next.mediaId) payload.mediaId = next.mediaId;
    sock.emit("message:send", payload).then(function (a) {
      flushing = false;
      if (a.ok) {
        flushDelay = 1000;
        unqueue(next.messageId);
        if (a.message) onMessage(a.message, false);
        if (recheck) { recheck = false; refreshConv(); }
        return flush();
      }
      var code = a.error && a.error.code;
      if (RETRIABLE.indexOf(code) >= 0) return retryLater();
      unqueue(next.messageId);
      if (code === "message_id_conflict") {
        // Stored already, in the conversation of an earlier session.
        var old = msgs.get(next.messageId);
        if (old) old.el.remove();
        msgs.delete(next.messageId);
        return flush();
      }
      var v = msgs.get(next.messageId);
      if (v) render(next.messageId, Object.assign({}, v.m, { failed: code || true }), v);
      if (code === "text_too_long") showError(T.text_too_long);
      flush();
    }, function (e) {
      flushing = false;
      if (e.message === "timeout") retryLater();
    });
  }
  function retryLater() {
    clearTimeout(flushTimer);
    flushDelay = Math.min(30000, flushDelay * 2);
    flushTimer = setTimeout(flush, flushDelay * (0.5 + Math.random()));
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var text = input.value.trim();
    if (!text) return;
    input.value = "";
    clearTimeout(selfStopTimer);
    typing(false);
    queue({ text: text });
    input.focus();
  });
  input.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); form.requestSubmit ? form.requestSubmit() : form.dispatchEvent(new Event("submit", { cancelable: true })); }
  });

  attachBtn.addEventListener("click", function () { file.click(); });
  file.addEventListener("change", function () {
    var f = file.files && file.files[0];
    file.value = "";
    if (!f) return;
    setStatus(T.uploading);
    ensureSession().then(function () {
      var fd = new FormData();
      fd.append("conversationId", sess.conversationId);
      fd.append("file", f, f.name);
      return api("/media", { method: "POST", body: fd });
    }).then(function (r) {
      setStatus(sock && !sock.connected && everConnected ? T.offline : "");
      queue({ mediaId: r.id, fileName: f.name });
    }, function (e) {
      setStatus(sock && !sock.connected && everConnected ? T.offline : "");
      showError(UPLOAD_ERRORS.indexOf(e.message) >= 0 ? T[e.message] : T.upload_failed);
    });
  });

  // ---- closing and ratings ----------------------------------------------------
  // A closed conversation asks the question the server awaits (`awaitingRating`);
  // after a CSAT given here the NPS question follows, then thanks.
  function setConv(c) {
    conv = c;
    if (c.status !== "closed") return showRating(null);
    showRating(c.awaitingRating || (rateStep === "nps" && c.nps == null ? "nps" : rateStep === "thanks" ? "thanks" : null));
  }

  function showRating(step) {
    if (step === rateStep) return;
    var hadFocus = root.activeElement && rateBox.contains(root.activeElement);
    rateStep = step;
    rateBox.textContent = "";
    rateBox.hidden = !step;
    if (!step) return;
    if (step === "thanks") {
      el("p", { tabindex: "-1" }, rateBox, T.thanks);
      if (hadFocus) input.focus();
      return;
    }
    el("p", null, rateBox, T.closed);
    var q = el("p", { id: "utalk-q-" + step }, rateBox, T[step]);
    var group = el("div", { role: "group", "aria-labelledby": q.id }, rateBox);
    var from = step === "csat" ? 1 : 0, to = step === "csat" ? 5 : 10;
    for (var n = from; n <= to; n++) {
      el("button", { type: "button", "data-score": n, "aria-label": n + " / " + to }, group, String(n));
    }
    group.addEventListener("click", function (e) {
      var b = e.target.closest("button");
      if (!b || !sock) return;
      var buttons = group.querySelectorAll("button");
      buttons.forEach(function (x) { x.disabled = true; });
      var payload = { conversationId: sess.conversationId };
      payload[step] = Number(b.dataset.score);
      sock.emit("conversation:rate", payload).then(function (a) {
        if (!a.ok) throw new Error(a.error ? a.error.code : "rate");
        if (conv) conv[step] = payload[step];
        showRating(step === "csat" ? "nps" : "thanks");
        var first = rateBox.querySelector("button") || rateBox.querySelector("p");
        if (first && step === "csat") first.focus(); else input.focus();
      }).catch(function () {
        buttons.forEach(function (x) { x.disabled = false; });
        showError(T.rate_failed);
      });
    });
  }

  // ---- start ------------------------------------------------------------------
  // Messages queued in an earlier page view are shown and sent now.
  var queued = pending();
  queued.forEach(function (p) {
    render(p.messageId, { id: p.messageId, text: p.text, mediaId: p.mediaId, fileName: p.fileName, author: { type: "customer" }, createdAt: p.createdAt });
  });
  if (queued.length) connect();
  window.addEventListener("online", function () { if (sock) sock.open(); });
  window.addEventListener("offline", function () { if (everConnected) setStatus(T.offline); });
  // Another tab started a new session: follow it.
  window.addEventListener("storage", function (e) {
    if (e.key !== SKEY) return;
    var s = load(SKEY, null);
    if (live(s) && (!sess || s.conversationId !== sess.conversationId)) {
      newSession(s);
      if (sock) { sock.close(); sock.open(); }
    }
  });
}
