// The conversation view's messages (its head is convhead.js),
// joined over the socket (the latest 50 first, older pages on demand over
// REST) and kept live from message:new, :status, :updated, typing and
// read markers.
"use strict";
(function () {
  var UT = window.UT;
  var $ = UT.$;
  var h = UT.h;

  var PAGE = 50;
  // The open conversation: {id, conv, msgs: Map(id -> message), els: Map(id -> element), firstSeq (the
  // first seq loaded; null until the first load ends), lastSeq, customerRead, readSent, seenId, joined, gen}.
  var cur = null;
  var openGen = 0;
  var media = new Map(); // media id -> Promise of its record {url, contentType, urlExpiresAt}
  var typers = new Map(); // "type:id" -> {name, timer}

  function me() {
    return UT.auth.user && UT.auth.user.id;
  }

  // ---- opening and closing ------------------------------------------------------
  async function open(id) {
    if (cur && cur.id === id) return;
    close();
    var gen = ++openGen;
    cur = { id: id, conv: UT.queue.get(id) || null, msgs: new Map(), els: new Map(), firstSeq: null, lastSeq: 0, customerRead: 0, readSent: 0, seenId: null, joined: false, gen: gen };
    UT.queue.setOpen(id);
    $("conv-empty").hidden = true;
    $("conv-body").hidden = false;
    UT.clear($("messages"));
    $("load-older").hidden = true;
    $("conv-error").textContent = "";
    $("typing").textContent = "";
    if (cur.conv) UT.convHead.render(cur.conv);
    UT.composer.attach(id);
    try {
      var conv = await UT.api("GET", "/api/v1/conversations/" + encodeURIComponent(id));
      if (!cur || cur.gen !== gen) return;
      setConv(conv);
      UT.queue.upsert(conv, "local");
      await loadLatest(gen);
    } catch (e) {
      if (cur && cur.gen === gen) UT.showError($("conv-error"), e);
    }
  }

  function close() {
    if (!cur) return;
    var id = cur.id;
    openGen++;
    cur = null;
    typers.forEach(function (t) {
      clearTimeout(t.timer);
    });
    typers.clear();
    UT.convHead.closeMenus();
    UT.composer.attach(null);
    UT.queue.setOpen(null);
    $("conv-body").hidden = true;
    $("conv-empty").hidden = false;
    UT.clear($("messages"));
    var s = UT.socket;
    if (s && s.connected && !UT.queue.isWatched(id)) s.emit("conversation:leave", { conversationId: id }).catch(function () {});
  }

  // Joins with sinceSeq = lastSeq - 50 (the latest 50 messages), or reads them over REST while the socket is away.
  async function loadLatest(gen) {
    var since = Math.max(0, (cur.conv.lastSeq || 0) - PAGE);
    var box = $("messages");
    box.setAttribute("aria-busy", "true");
    try {
      var s = UT.socket;
      var joined = false;
      if (s && s.connected) {
        try {
          await join(since, gen);
          joined = true;
        } catch (e) {
          // A refusal is shown; a dropped socket falls back to REST (and joins once it is back).
          if (e.code) throw e;
        }
      }
      if (!joined) {
        var page = await UT.api("GET", "/api/v1/conversations/" + encodeURIComponent(cur.id) + "/messages", { query: { afterSeq: since, limit: PAGE } });
        if (!cur || cur.gen !== gen) return;
        page.items.forEach(addMessage);
        // The socket may have connected meanwhile: join for live messages.
        if (cur && cur.gen === gen && UT.socket && UT.socket.connected) await join(cur.lastSeq, gen);
      }
      if (!cur || cur.gen !== gen) return;
      cur.firstSeq = since + 1;
      $("load-older").hidden = cur.firstSeq <= 1;
      scrollToEnd();
      markRead();
    } finally {
      box.removeAttribute("aria-busy");
    }
  }

  async function join(since, gen) {
    var ack = await UT.socket.emit("conversation:join", { conversationId: cur.id, sinceSeq: since });
    if (!ack || !ack.ok) throw ackError(ack);
    if (!cur || cur.gen !== gen) return;
    cur.joined = true;
    ack.messages.forEach(addMessage);
    // A replay is capped (500 messages, 1 MiB): page the rest from where it stopped.
    var last = ack.messages.length ? ack.messages[ack.messages.length - 1].seq : since;
    while (ack.hasMore && last < ack.lastSeq) {
      var page = await UT.api("GET", "/api/v1/conversations/" + encodeURIComponent(cur.id) + "/messages", { query: { afterSeq: last, limit: 200 } });
      if (!cur || cur.gen !== gen || !page.items.length) return;
      page.items.forEach(addMessage);
      last = page.items[page.items.length - 1].seq;
    }
  }

  function ackError(ack) {
    var err = (ack && ack.error) || { code: "internal" };
    return UT.ApiError(0, err.code, err.message);
  }

  async function loadOlder() {
    if (!cur || !cur.firstSeq || cur.firstSeq <= 1) return;
    var gen = cur.gen;
    var after = Math.max(0, cur.firstSeq - 1 - PAGE);
    var btn = $("load-older");
    btn.disabled = true;
    $("messages").setAttribute("aria-busy", "true");
    try {
      var page = await UT.api("GET", "/api/v1/conversations/" + encodeURIComponent(cur.id) + "/messages", {
        query: { afterSeq: after, limit: cur.firstSeq - 1 - after },
      });
      if (!cur || cur.gen !== gen) return;
      var hist = $("history");
      var fromEnd = hist.scrollHeight - hist.scrollTop;
      page.items.forEach(addMessage);
      cur.firstSeq = after + 1;
      hist.scrollTop = hist.scrollHeight - fromEnd;
      if (cur.firstSeq <= 1) {
        btn.hidden = true;
        UT.toast(UT.t("noOlder"));
        $("conv-title").focus();
      }
    } catch (e) {
      UT.showError($("conv-error"), e);
    } finally {
      btn.disabled = false;
      $("messages").removeAttribute("aria-busy");
    }
  }

  // ---- messages -------------------------------------------------------------------
  function atEnd() {
    var hist = $("history");
    return hist.scrollHeight - hist.scrollTop - hist.clientHeight < 60;
  }
  function scrollToEnd() {
    var hist = $("history");
    hist.scrollTop = hist.scrollHeight;
  }

  function authorName(m) {
    var a = m.author || {};
    if (a.type === "customer") return UT.customerName(cur && cur.conv);
    if (a.type === "bot") return UT.t("bot");
    if (a.type === "agent") return UT.staffName(a.id);
    return UT.t("system");
  }

  function kindOf(m) {
    if (m.private) return "note";
    return m.direction === "inbound" ? "in" : "out";
  }

  function mediaList(m) {
    if (Array.isArray(m.media) && m.media.length) return m.media;
    return m.mediaId ? [{ id: m.mediaId, status: "stored" }] : [];
  }

  function mediaRecord(id, again) {
    var p = media.get(id);
    if (!p || again) {
      p = UT.api("GET", "/api/v1/media/" + encodeURIComponent(id));
      media.set(id, p);
      p.catch(function () {
        media.delete(id);
      });
    }
    return p;
  }

  function renderMedia(att, who) {
    var box = h("div", { class: "msg-media" });
    if (att.status === "pending") return UT.append(box, h("span", { class: "muted", text: UT.t("attachmentPending") }));
    if (att.status === "failed") return UT.append(box, h("span", { class: "error", text: UT.t("attachmentFailed", { error: att.error || "" }) }));
    var retried = false;
    function show(rec) {
      UT.clear(box);
      var type = rec.contentType || att.contentType || "";
      if (type.indexOf("image/") === 0) {
        var img = h("img", { src: rec.url, alt: UT.t("imageFrom", { name: who }), loading: "lazy" });
        img.addEventListener("error", function () {
          // The signed URL may have expired: ask for a fresh one, once.
          if (retried) return;
          retried = true;
          mediaRecord(att.id, true).then(show, function () {});
        });
        box.appendChild(h("a", { href: rec.url, target: "_blank", rel: "noopener", "aria-label": UT.t("openAttachment") + ": " + UT.t("imageFrom", { name: who }) }, img));
      } else if (type.indexOf("audio/") === 0) {
        box.appendChild(h("audio", { src: rec.url, controls: true, preload: "none", "aria-label": UT.t("attachmentFile", { type: type }) }));
      } else if (type.indexOf("video/") === 0) {
        box.appendChild(h("video", { src: rec.url, controls: true, preload: "none", "aria-label": UT.t("attachmentFile", { type: type }) }));
      } else {
        box.appendChild(h("a", { href: rec.url, target: "_blank", rel: "noopener", text: UT.t("attachmentFile", { type: type || "file" }) }));
      }
    }
    mediaRecord(att.id).then(show, function (e) {
      UT.clear(box);
      box.appendChild(h("span", { class: "error", text: UT.t("attachmentFailed", { error: UT.errorText(e) }) }));
    });
    return box;
  }

  function statusLine(m) {
    if (m.direction !== "outbound" || m.private) return null;
    var parts = [];
    var st = UT.t("msgStatus_" + m.status);
    if (st && st !== "msgStatus_" + m.status) parts.push(st);
    if (m.errorMessage || m.errorCode) parts.push(m.errorMessage || m.errorCode);
    var seen = cur && cur.seenId === m.id;
    if (!parts.length && !seen) return null;
    var bad = m.status === "failed" || m.status === "undelivered";
    return h("p", { class: "msg-status" + (bad ? " error" : "") }, [parts.join(": "), seen ? h("span", { class: "seen", text: UT.t("seenByCustomer") }) : null]);
  }

  function renderMessage(m) {
    var who = authorName(m);
    var kind = kindOf(m);
    var author = m.author || {};
    var cls = "msg msg-" + kind + (author.type === "bot" ? " msg-bot" : "");
    return h("div", { class: cls, "data-seq": m.seq, "data-id": m.id }, [
      m.private ? h("p", { class: "msg-note-label", text: UT.t("privateNote") }) : null,
      h("p", { class: "msg-meta" }, [h("span", { class: "msg-author", text: who }), " ", UT.timeEl(m.createdAt)]),
      m.text ? h("p", { class: "msg-text", text: m.text }) : null,
      !m.text && m.template ? h("p", { class: "msg-text muted", text: UT.t("templateMessage", { sid: m.template.contentSid }) }) : null,
    ]
      .concat(
        mediaList(m).map(function (att) {
          return renderMedia(att, who);
        })
      )
      .concat([statusLine(m)]));
  }

  // Puts the element in seq order, before the messages still being sent.
  function place(el, seq) {
    var box = $("messages");
    var node = box.lastElementChild;
    while (node && (!node.hasAttribute("data-seq") || Number(node.getAttribute("data-seq")) > seq)) node = node.previousElementSibling;
    box.insertBefore(el, node ? node.nextSibling : box.firstChild);
  }

  function addMessage(m) {
    if (!cur || m.conversationId !== cur.id) return;
    var stick = atEnd();
    var old = cur.msgs.get(m.id);
    // The same message again (a join replaying what a live event already brought): nothing to redraw.
    if (old && cur.els.has(m.id) && old.status === m.status && old.text === m.text && JSON.stringify(old.media || null) === JSON.stringify(m.media || null)) return;
    cur.msgs.set(m.id, m);
    var el = renderMessage(m);
    var prev = cur.els.get(m.id);
    if (prev) prev.remove();
    place(el, m.seq);
    cur.els.set(m.id, el);
    if (m.seq > cur.lastSeq) cur.lastSeq = m.seq;
    if (m.author && m.author.type === "customer") clearTyper("customer:");
    if (stick || (m.author && m.author.id === me())) scrollToEnd();
    updateSeen();
  }

  function rerender(id) {
    var m = cur && cur.msgs.get(id);
    var el = cur && cur.els.get(id);
    if (!m || !el) return;
    var fresh = renderMessage(m);
    el.replaceWith(fresh);
    cur.els.set(id, fresh);
  }

  // "Seen by the customer" goes on the last reply the customer has read.
  function updateSeen() {
    if (!cur) return;
    var best = null;
    cur.msgs.forEach(function (m) {
      if (m.direction === "outbound" && !m.private && m.seq <= cur.customerRead && (!best || m.seq > best.seq)) best = m;
    });
    var id = best ? best.id : null;
    if (id === cur.seenId) return;
    var old = cur.seenId;
    cur.seenId = id;
    if (old) rerender(old);
    if (id) rerender(id);
  }

  function markRead() {
    var s = UT.socket;
    if (!cur || !s || !s.connected || document.visibilityState !== "visible" || !UT.can("reply")) return;
    if (cur.lastSeq <= cur.readSent) return;
    cur.readSent = cur.lastSeq;
    s.emit("message:read", { conversationId: cur.id, seq: cur.lastSeq }).catch(function () {});
  }
  document.addEventListener("visibilitychange", markRead);

  // A reply still on its way: shown after the stored messages, with Retry and Discard when it failed.
  function showPending(entry) {
    if (!cur || entry.convId !== cur.id) return;
    var stick = atEnd();
    var kind = entry.private ? "note" : "out";
    var failed = entry.state === "failed";
    var el = h("div", { class: "msg msg-" + kind + " msg-pending" + (failed ? " msg-failed" : ""), "data-id": entry.messageId }, [
      entry.private ? h("p", { class: "msg-note-label", text: UT.t("privateNote") }) : null,
      h("p", { class: "msg-meta" }, h("span", { class: "msg-author", text: UT.t("you") })),
      entry.text ? h("p", { class: "msg-text", text: entry.text }) : null,
      entry.fileName ? h("p", { class: "msg-text muted", text: entry.fileName }) : null,
      failed
        ? h("p", { class: "msg-status error" }, [
            UT.t("notSent", { error: UT.errorText(entry.error) }),
            " ",
            h("button", { type: "button", class: "btn btn-small", text: UT.t("retry"), onclick: entry.retry }),
            " ",
            h("button", { type: "button", class: "btn btn-small btn-quiet", text: UT.t("discard"), onclick: entry.discard }),
          ])
        : h("p", { class: "msg-status", text: UT.t("sending") }),
    ]);
    var prev = cur.els.get(entry.messageId);
    if (prev && !cur.msgs.has(entry.messageId)) prev.replaceWith(el);
    else if (!prev) $("messages").appendChild(el);
    else return; // already stored
    cur.els.set(entry.messageId, el);
    if (stick || !failed) scrollToEnd();
  }

  function dropPending(messageId) {
    if (!cur || cur.msgs.has(messageId)) return;
    var el = cur.els.get(messageId);
    if (el) el.remove();
    cur.els.delete(messageId);
  }

  // ---- typing ------------------------------------------------------------------------
  function clearTyper(prefix) {
    typers.forEach(function (t, k) {
      if (k.indexOf(prefix) === 0) {
        clearTimeout(t.timer);
        typers.delete(k);
      }
    });
    renderTyping();
  }
  function renderTyping() {
    var names = [];
    typers.forEach(function (t) {
      names.push(t.name);
    });
    $("typing").textContent = names.length ? UT.t("isTyping", { name: names.join(", ") }) : "";
  }
  function onTyping(ev) {
    if (!cur || ev.conversationId !== cur.id || !ev.user) return;
    var key = ev.user.type + ":" + (ev.user.id || "");
    var t = typers.get(key);
    if (t) clearTimeout(t.timer);
    if (ev.typing) {
      var name = ev.user.type === "customer" ? UT.t("customer") : ev.user.type === "agent" ? UT.staffName(ev.user.id) : UT.t("bot");
      typers.set(key, {
        name: name,
        timer: setTimeout(function () {
          typers.delete(key);
          renderTyping();
        }, 8000),
      });
    } else typers.delete(key);
    renderTyping();
  }

  function setConv(conv) {
    cur.conv = Object.assign({}, cur.conv || {}, conv);
    if (cur.conv.lastSeq === undefined) cur.conv.lastSeq = 0;
    UT.convHead.render(cur.conv);
  }

  // ---- public -------------------------------------------------------------------------------
  UT.conv = {
    init: function () {
      UT.convHead.init();
      $("load-older").addEventListener("click", loadOlder);
    },
    open: open,
    close: close,
    isOpen: function (id) {
      return !!cur && cur.id === id;
    },
    current: function () {
      return cur && cur.conv;
    },
    currentId: function () {
      return cur && cur.id;
    },
    onConversation: function (conv) {
      if (cur && conv.id === cur.id) setConv(conv);
    },
    onMessage: function (m) {
      if (!cur || m.conversationId !== cur.id) return;
      addMessage(m);
      markRead();
    },
    onStatus: function (ev) {
      if (!cur || ev.conversationId !== cur.id) return;
      var m = cur.msgs.get(ev.messageId);
      if (!m) return;
      Object.keys(ev).forEach(function (k) {
        if (k !== "conversationId" && k !== "messageId" && ev[k] !== undefined) m[k] = ev[k];
      });
      rerender(m.id);
    },
    onRead: function (ev) {
      if (!cur || ev.conversationId !== cur.id || !ev.reader || ev.reader.type !== "customer") return;
      if (ev.seq > cur.customerRead) {
        cur.customerRead = ev.seq;
        updateSeen();
      }
    },
    onTyping: onTyping,
    // After a reconnect: rejoin from the last seq seen (a recovered session was rejoined by the server).
    onConnect: function (recovered) {
      if (!cur) return;
      var gen = cur.gen;
      UT.api("GET", "/api/v1/conversations/" + encodeURIComponent(cur.id)).then(function (conv) {
        if (cur && cur.gen === gen) setConv(conv);
      }, function () {});
      // The first load is under way: it joins when it ends.
      if (cur.firstSeq === null) return;
      if (!recovered || !cur.joined) {
        join(cur.lastSeq, gen).then(markRead, function (e) {
          if (cur && cur.gen === gen) UT.showError($("conv-error"), e);
        });
      } else markRead();
    },
    onTruncated: function (ev) {
      if (cur && ev.conversationId === cur.id) join(ev.sinceSeq, cur.gen).catch(function () {});
    },
    addMessage: addMessage,
    showPending: showPending,
    dropPending: dropPending,
    focusTitle: function () {
      $("conv-title").focus();
    },
  };
})();
