// The queue: four views of the conversations, loaded once over REST and kept
// live from the staff socket events (conversation:new, :updated, :assigned)
// and, for the conversations assigned to me, from their message:new.
"use strict";
(function () {
  var UT = window.UT;
  var $ = UT.$;
  var h = UT.h;

  var VIEWS = ["waiting", "mine", "open", "closed"];
  var convs = new Map(); // id -> conversation (with lastSeq, lastActivityAt when known)
  var fresh = new Set(); // ids with activity not looked at yet
  var previews = new Map(); // id -> last message text seen live
  var rows = new Map(); // id -> <li>
  var joined = new Set(); // conversations joined for their live messages
  var knownLabels = new Set();
  // Live events win over a list answer that left before them: each event stamps its conversation.
  var stamps = new Map(); // id -> stamp of its last live change
  var stampNow = 0;
  var state = { view: "waiting", label: "", openId: null, sources: [], gen: 0, loaded: false, error: null };
  var MAX_WATCHED = 50;

  function me() {
    return UT.auth.user && UT.auth.user.id;
  }

  var PRED = {
    waiting: function (c) {
      return c.status === "escalated" && !c.assigneeId;
    },
    mine: function (c) {
      return !!me() && c.assigneeId === me() && c.status !== "closed";
    },
    open: function (c) {
      return c.status === "open" || c.status === "escalated";
    },
    closed: function (c) {
      return c.status === "closed";
    },
  };

  function matches(view, c) {
    return PRED[view](c) && (!state.label || (c.labels || []).indexOf(state.label) >= 0);
  }

  function queries(view) {
    var base = { sort: "lastActivity", limit: 100, label: state.label || null };
    var qs;
    if (view === "waiting") qs = [{ status: "escalated" }];
    else if (view === "mine") qs = [{ assigneeId: me() }];
    else if (view === "open") qs = [{ status: "open" }, { status: "escalated" }];
    else qs = [{ status: "closed" }];
    return qs.map(function (q) {
      return { query: Object.assign({}, base, q), cursor: "" };
    });
  }

  // A list item is a conversation with lastSeq and lastActivityAt, or {conversation, lastSeq, lastActivityAt}.
  function norm(item) {
    if (item && item.conversation) {
      var c = Object.assign({}, item.conversation);
      if (item.lastSeq !== undefined) c.lastSeq = item.lastSeq;
      if (item.lastActivityAt) c.lastActivityAt = item.lastActivityAt;
      return c;
    }
    return item;
  }

  function later(a, b) {
    if (!a) return b;
    if (!b) return a;
    return a > b ? a : b;
  }

  function put(c) {
    convs.set(c.id, c);
    (c.labels || []).forEach(function (l) {
      knownLabels.add(l);
    });
  }

  // ---- loading ----------------------------------------------------------------
  async function load(more) {
    var gen = ++state.gen;
    var since = stampNow;
    var newer = function (id) {
      return (stamps.get(id) || 0) > since;
    };
    if (!more) state.sources = queries(state.view);
    var todo = state.sources.filter(function (s) {
      return s.cursor !== null;
    });
    setStatus(UT.t("loading"));
    $("conv-list").setAttribute("aria-busy", "true");
    try {
      var pages = await Promise.all(
        todo.map(function (s) {
          return UT.api("GET", "/api/v1/conversations", { query: Object.assign({}, s.query, { cursor: s.cursor || null }) });
        })
      );
      if (gen !== state.gen) return;
      var seen = new Set();
      pages.forEach(function (p, i) {
        todo[i].cursor = p.nextCursor || null;
        (p.items || []).forEach(function (it) {
          var c = norm(it);
          seen.add(c.id);
          if (newer(c.id)) return;
          var old = convs.get(c.id);
          put(Object.assign({}, c, { lastActivityAt: later(c.lastActivityAt, old && old.lastActivityAt) }));
        });
      });
      // A complete first page replaces what the store thought this view held.
      var complete = state.sources.every(function (s) {
        return s.cursor === null;
      });
      if (!more && complete) {
        convs.forEach(function (c, id) {
          if (matches(state.view, c) && !seen.has(id) && id !== state.openId && !newer(id)) convs.delete(id);
        });
      }
      state.loaded = true;
      state.error = null;
    } catch (e) {
      if (gen !== state.gen) return;
      state.error = e;
    } finally {
      if (gen === state.gen) $("conv-list").removeAttribute("aria-busy");
    }
    render();
    syncWatched();
  }

  // First pages of "waiting" and "mine", so their counts are right from the start.
  async function prime() {
    var views = ["waiting", "mine"].filter(function (v) {
      return v !== state.view;
    });
    await Promise.all(
      views.map(function (v) {
        var q = queries(v)[0].query;
        q.label = null;
        return UT.api("GET", "/api/v1/conversations", { query: q }).then(
          function (p) {
            (p.items || []).forEach(function (it) {
              var c = norm(it);
              if (!convs.has(c.id) && !stamps.has(c.id)) put(c);
            });
          },
          function () {}
        );
      })
    );
    render();
    syncWatched();
  }

  // ---- live updates -------------------------------------------------------------
  // kind: "new", "updated", "assigned", or "local" (an answer to this console's own change).
  function upsert(conv, kind) {
    if (!conv || !conv.id) return;
    stamps.set(conv.id, ++stampNow);
    var old = convs.get(conv.id);
    var c = Object.assign({}, old || {}, conv);
    c.lastActivityAt = later(later(old && old.lastActivityAt, conv.lastActivityAt), kind === "local" ? null : conv.updatedAt) || new Date().toISOString();
    if (conv.lastSeq === undefined && old) c.lastSeq = old.lastSeq;
    put(c);
    if (kind !== "local" && c.id !== state.openId) {
      var wasWaiting = old ? PRED.waiting(old) : false;
      var wasMine = old ? PRED.mine(old) : false;
      if (PRED.waiting(c) && !wasWaiting) {
        fresh.add(c.id);
        UT.toast(UT.t("newConversationWaiting", { name: UT.customerName(c) }));
      } else if (PRED.mine(c) && !wasMine) {
        fresh.add(c.id);
        UT.toast(UT.t("assignedToYou", { name: UT.customerName(c) }));
      } else if (kind === "new" || (old && old.status !== c.status)) {
        fresh.add(c.id);
      }
    }
    render();
    syncWatched();
  }

  function onMessage(m) {
    var c = convs.get(m.conversationId);
    if (!c) return;
    if (c.lastSeq === undefined || m.seq > c.lastSeq) {
      c.lastSeq = m.seq;
      c.lastActivityAt = later(c.lastActivityAt, m.createdAt);
      if (m.text) previews.set(c.id, (m.private ? UT.t("privateNote") + ": " : "") + m.text);
      var mine = m.author && m.author.type === "agent" && m.author.id === me();
      if (c.id !== state.openId && !mine) fresh.add(c.id);
      render();
    }
  }

  // Join the conversations assigned to me, to hear their messages.
  function syncWatched() {
    var s = UT.socket;
    if (!s || !s.connected) return;
    var want = new Set();
    convs.forEach(function (c) {
      if (want.size < MAX_WATCHED && PRED.mine(c)) want.add(c.id);
    });
    want.forEach(function (id) {
      if (joined.has(id)) return;
      joined.add(id);
      var c = convs.get(id);
      var since = c.lastSeq;
      var ready = since === undefined ? UT.api("GET", "/api/v1/conversations/" + id).then(function (v) {
        put(Object.assign({}, convs.get(id) || v, { lastSeq: v.lastSeq }));
        return v.lastSeq;
      }) : Promise.resolve(since);
      ready
        .then(function (seq) {
          return s.emit("conversation:join", { conversationId: id, sinceSeq: seq || 0 });
        })
        .then(function (ack) {
          if (!ack || !ack.ok) joined.delete(id);
          else (ack.messages || []).forEach(onMessage);
        })
        .catch(function () {
          joined.delete(id);
        });
    });
    joined.forEach(function (id) {
      if (want.has(id)) return;
      joined.delete(id);
      if (!UT.conv.isOpen(id)) s.emit("conversation:leave", { conversationId: id }).catch(function () {});
    });
  }

  // ---- rendering -----------------------------------------------------------------
  var renderQueued = false;
  function render() {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(function () {
      renderQueued = false;
      draw();
    });
  }

  function setStatus(text) {
    $("queue-status").textContent = text;
  }

  function tag(cls, text) {
    return h("span", { class: "tag " + cls, text: text });
  }

  function fill(li, c) {
    var a = li.firstChild;
    UT.clear(a);
    a.href = "#/queue/" + state.view + "/" + encodeURIComponent(c.id);
    if (c.id === state.openId) a.setAttribute("aria-current", "true");
    else a.removeAttribute("aria-current");
    li.classList.toggle("is-open", c.id === state.openId);
    li.classList.toggle("is-new", fresh.has(c.id));
    var contact = [c.customer && c.customer.phone, c.customer && c.customer.email].filter(Boolean).join(" · ");
    var top = h("span", { class: "ci-top" }, [
      h("span", { class: "ci-name", text: UT.customerName(c) }),
      fresh.has(c.id) ? h("span", { class: "badge badge-new", text: UT.t("newBadge") }) : null,
      h("span", { class: "ci-time" }, UT.timeEl(c.lastActivityAt || c.updatedAt)),
    ]);
    var meta = h("span", { class: "ci-meta" }, [
      tag("tag-channel", UT.t("channel_" + c.channel)),
      tag("tag-status tag-" + c.status, UT.t("status_" + c.status)),
      h("span", { class: "ci-assignee", text: UT.staffName(c.assigneeId) }),
      c.botEnabled === false && c.status !== "closed" ? h("span", { class: "ci-bot", text: UT.t("botOff") }) : null,
    ]);
    var labels = (c.labels || []).length
      ? h(
          "span",
          { class: "chips" },
          c.labels.map(function (l) {
            return h("span", { class: "chip", text: l });
          })
        )
      : null;
    var preview = previews.get(c.id);
    UT.append(a, [
      top,
      meta,
      contact ? h("span", { class: "ci-contact", text: contact }) : null,
      preview ? h("span", { class: "ci-preview", text: preview }) : null,
      labels,
    ]);
  }

  function draw() {
    var ul = $("conv-list");
    var list = [];
    convs.forEach(function (c) {
      if (matches(state.view, c)) list.push(c);
    });
    list.sort(function (a, b) {
      var x = a.lastActivityAt || a.updatedAt || "";
      var y = b.lastActivityAt || b.updatedAt || "";
      return x < y ? 1 : x > y ? -1 : a.id < b.id ? 1 : -1;
    });
    var focusedId = ul.contains(document.activeElement) ? document.activeElement.closest("li").getAttribute("data-id") : null;
    var keep = new Set(
      list.map(function (c) {
        return c.id;
      })
    );
    rows.forEach(function (li, id) {
      if (!keep.has(id)) {
        li.remove();
        rows.delete(id);
      }
    });
    list.forEach(function (c, i) {
      var li = rows.get(c.id);
      if (!li) {
        li = h("li", { class: "conv-item", "data-id": c.id }, h("a", { class: "conv-link" }));
        rows.set(c.id, li);
      }
      fill(li, c);
      if (ul.children[i] !== li) ul.insertBefore(li, ul.children[i] || null);
    });
    if (focusedId && rows.has(focusedId) && !ul.contains(document.activeElement)) rows.get(focusedId).firstChild.focus();

    VIEWS.forEach(function (v) {
      var n = 0;
      convs.forEach(function (c) {
        if (PRED[v](c)) n++;
      });
      var el = document.querySelector('[data-count="' + v + '"]');
      if (el) el.textContent = n ? "(" + n + ")" : "";
    });
    // Switching views keeps the open conversation open.
    document.querySelectorAll(".views a").forEach(function (a) {
      var v = a.getAttribute("data-view");
      a.href = "#/queue/" + v + (state.openId ? "/" + encodeURIComponent(state.openId) : "");
      if (v === state.view) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    });

    if (state.error) setStatus(UT.errorText(state.error));
    else if (!state.loaded) setStatus(UT.t("loading"));
    else if (!list.length) setStatus(UT.t("queueEmpty"));
    else if (state.label) setStatus(UT.t("queueCountFiltered", { view: UT.t("viewCaption_" + state.view), label: state.label, count: list.length }));
    else setStatus(UT.t(list.length === 1 ? "queueCountOne" : "queueCount", { view: UT.t("viewCaption_" + state.view), count: list.length }));
    $("queue-more").hidden = !state.sources.some(function (s) {
      return s.cursor;
    });

    var dl = $("label-suggestions");
    if (dl.children.length !== knownLabels.size) {
      UT.clear(dl);
      Array.from(knownLabels)
        .sort()
        .forEach(function (l) {
          dl.appendChild(h("option", { value: l }));
        });
    }
    var unseen = 0;
    fresh.forEach(function (id) {
      var c = convs.get(id);
      if (c && (PRED.waiting(c) || PRED.mine(c))) unseen++;
    });
    document.title = unseen ? UT.t("titleWithNew", { count: unseen }) : UT.t("title");
  }

  // ---- public ---------------------------------------------------------------------
  UT.queue = {
    init: function () {
      $("queue-more").addEventListener("click", function () {
        load(true);
      });
      $("label-filter-form").addEventListener("submit", function (e) {
        e.preventDefault();
        var v = $("label-filter").value.trim().toLowerCase();
        if (v && !UT.LABEL_RE.test(v)) {
          setStatus(UT.t("labelInvalid"));
          return;
        }
        state.label = v;
        $("label-filter-clear").hidden = !v;
        load(false);
      });
      $("label-filter-clear").addEventListener("click", function () {
        $("label-filter").value = "";
        state.label = "";
        $("label-filter-clear").hidden = true;
        $("label-filter").focus();
        load(false);
      });
    },
    // Shows a view (reloading it when it changes or `reload`).
    show: function (view, reload) {
      if (VIEWS.indexOf(view) < 0) view = "waiting";
      var changed = view !== state.view || !state.loaded;
      state.view = view;
      if (changed || reload) {
        state.loaded = false;
        load(false);
      }
      render();
    },
    start: function () {
      state.loaded = false;
      load(false);
      prime();
    },
    // After a reconnect: status changes are not replayed, so read the lists again.
    resync: function (recovered) {
      if (!recovered) joined.clear();
      load(false);
      prime();
    },
    reset: function () {
      convs.clear();
      stamps.clear();
      fresh.clear();
      previews.clear();
      joined.clear();
      rows.forEach(function (li) {
        li.remove();
      });
      rows.clear();
      state.view = "waiting";
      state.label = "";
      state.openId = null;
      state.loaded = false;
      state.gen++;
    },
    setOpen: function (id) {
      state.openId = id;
      if (id) fresh.delete(id);
      render();
    },
    view: function () {
      return state.view;
    },
    get: function (id) {
      return convs.get(id);
    },
    upsert: upsert,
    onMessage: onMessage,
    isWatched: function (id) {
      return joined.has(id);
    },
    labels: function () {
      return knownLabels;
    },
    render: render,
  };
})();
