// The reply box: Enter sends, Shift+Enter adds a line; a "Private note"
// toggle; one attachment (uploaded, then sent by its mediaId); typing:start
// and typing:stop while typing a reply; "/code" lists canned responses.
// A message keeps its messageId through retries, so a retry cannot store
// it twice.
"use strict";
(function () {
  var UT = window.UT;
  var $ = UT.$;
  var h = UT.h;

  var convId = null;
  var drafts = new Map(); // conversation id -> {text, note}
  var pendings = new Map(); // conversation id -> Map(messageId -> entry)
  var file = null;
  var typing = { active: false, since: 0, timer: null, convId: null };
  var canned = { items: null, loading: null };
  var suggest = { items: [], index: -1, start: 0, end: 0 };

  // ---- typing ------------------------------------------------------------------
  function emit(event, payload) {
    var s = UT.socket;
    if (s && s.connected) s.emit(event, payload).catch(function () {});
  }
  function typingPulse() {
    if (!convId || $("note-toggle").checked || !$("reply").value.trim()) return stopTyping();
    var now = Date.now();
    if (!typing.active || typing.convId !== convId || now - typing.since > 4000) {
      if (typing.active && typing.convId !== convId) stopTyping();
      typing.active = true;
      typing.convId = convId;
      typing.since = now;
      emit("typing:start", { conversationId: convId });
    }
    clearTimeout(typing.timer);
    typing.timer = setTimeout(stopTyping, 3000);
  }
  function stopTyping() {
    clearTimeout(typing.timer);
    if (!typing.active) return;
    typing.active = false;
    emit("typing:stop", { conversationId: typing.convId });
  }

  // ---- note mode ------------------------------------------------------------------
  // A WhatsApp conversation whose customer has not written for 24 hours takes templates only.
  function windowClosed() {
    var c = UT.conv.current();
    return !!(c && c.whatsappWindow && !c.whatsappWindow.open);
  }

  // The template the form describes: null when no Content SID is given; throws on a malformed line.
  function templateOf() {
    var sid = $("template-sid").value.trim();
    if ($("template-box").hidden || !sid) return null;
    var variables = {};
    $("template-vars").value.split("\n").forEach(function (line) {
      if (!line.trim()) return;
      var at = line.indexOf("=");
      if (at < 1) throw UT.ApiError(0, "invalid_template");
      variables[line.slice(0, at).trim()] = line.slice(at + 1).trim();
    });
    return { contentSid: sid, variables: variables };
  }

  function applyMode() {
    var note = $("note-toggle").checked;
    var closed = windowClosed();
    $("window-note").hidden = !closed || note;
    $("template-box").hidden = !closed || note;
    $("composer").classList.toggle("is-note", note);
    $("note-hint").hidden = !note;
    $("reply").setAttribute("placeholder", UT.t(note ? "notePlaceholder" : "replyPlaceholder"));
    $("send-btn").textContent = UT.t(note ? "sendNote" : "send");
    var c = UT.conv.current();
    var label = UT.t(note ? "replyNote" : "reply");
    $("reply-label").textContent = c ? label + " · " + UT.customerName(c) : label;
    if (note) stopTyping();
  }

  // ---- attachments ------------------------------------------------------------------
  function setFile(f) {
    file = f || null;
    $("attachment").hidden = !file;
    $("attachment-name").textContent = file ? file.name : "";
    if (!file) $("attach").value = "";
  }

  // ---- sending ----------------------------------------------------------------------
  function pendingOf(id) {
    if (!pendings.has(id)) pendings.set(id, new Map());
    return pendings.get(id);
  }

  async function send(entry) {
    entry.state = "sending";
    entry.error = null;
    UT.conv.showPending(entry);
    try {
      if (entry.file && !entry.mediaId) {
        var fd = new FormData();
        fd.append("conversationId", entry.convId);
        fd.append("file", entry.file, entry.file.name);
        var rec = await UT.api("POST", "/api/v1/media", { form: fd });
        entry.mediaId = rec.id;
      }
      var body = { messageId: entry.messageId };
      if (entry.text) body.text = entry.text;
      if (entry.mediaId) body.mediaId = entry.mediaId;
      if (entry.private) body.private = true;
      if (entry.template) body.template = entry.template;
      var msg;
      var s = UT.socket;
      if (s && s.connected) {
        var ack = await s.emit("message:send", Object.assign({ conversationId: entry.convId }, body));
        if (!ack || !ack.ok) {
          var err = (ack && ack.error) || {};
          throw UT.ApiError(0, err.code || "internal", err.message);
        }
        msg = ack.message;
      } else {
        msg = await UT.api("POST", "/api/v1/conversations/" + encodeURIComponent(entry.convId) + "/messages", { body: body });
      }
      pendingOf(entry.convId).delete(entry.messageId);
      UT.conv.addMessage(msg);
    } catch (e) {
      entry.state = "failed";
      entry.error = e.code ? e : { code: e.message };
      UT.conv.showPending(entry);
    }
  }

  function submit() {
    if (!convId) return;
    var text = $("reply").value.replace(/^\s+|\s+$/g, "");
    $("composer-error").textContent = "";
    var template = null;
    try {
      template = $("note-toggle").checked ? null : templateOf();
    } catch (e) {
      $("composer-error").textContent = UT.t("err_invalid_template");
      return;
    }
    if (!text && !file && !template) {
      $("composer-error").textContent = UT.t("err_empty_message");
      return;
    }
    if (text.length > 4096) {
      $("composer-error").textContent = UT.t("err_text_too_long");
      return;
    }
    var entry = {
      convId: convId,
      messageId: crypto.randomUUID(),
      text: text,
      private: $("note-toggle").checked,
      template: template,
      file: file,
      fileName: file ? file.name : "",
      mediaId: null,
      state: "sending",
    };
    entry.retry = function () {
      send(entry);
    };
    entry.discard = function () {
      pendingOf(entry.convId).delete(entry.messageId);
      UT.conv.dropPending(entry.messageId);
      // Nothing is lost: an empty reply box gets the text back.
      if (entry.convId === convId && !$("reply").value) {
        $("reply").value = entry.text;
        $("note-toggle").checked = entry.private;
        applyMode();
      }
      $("reply").focus();
    };
    pendingOf(convId).set(entry.messageId, entry);
    $("reply").value = "";
    drafts.delete(convId);
    setFile(null);
    closeSuggest();
    stopTyping();
    send(entry);
  }

  // ---- canned responses --------------------------------------------------------------
  function loadCanned() {
    if (canned.items) return Promise.resolve(canned.items);
    if (canned.loading) return canned.loading;
    canned.loading = (async function () {
      var items = [];
      var cursor = "";
      for (var i = 0; i < 10 && cursor !== null; i++) {
        var page = await UT.api("GET", "/api/v1/canned-responses", { query: { limit: 200, cursor: cursor || null } });
        items = items.concat(page.items || []);
        cursor = page.nextCursor || null;
      }
      canned.items = items;
      return items;
    })();
    canned.loading.then(
      function () {
        canned.loading = null;
      },
      function () {
        canned.loading = null;
      }
    );
    return canned.loading;
  }

  // "/" at the start or after a space, then short-code letters, right before the caret.
  function slashQuery() {
    var ta = $("reply");
    if (ta.selectionStart !== ta.selectionEnd) return null;
    var before = ta.value.slice(0, ta.selectionStart);
    var m = /(^|\s)\/([a-z0-9_-]{0,32})$/.exec(before);
    if (!m) return null;
    return { query: m[2], start: ta.selectionStart - m[2].length - 1, end: ta.selectionStart };
  }

  function updateSuggest() {
    var q = slashQuery();
    if (!q) return closeSuggest();
    loadCanned().then(
      function (items) {
        var again = slashQuery();
        if (!again || again.query !== q.query) return;
        var starts = [];
        var inside = [];
        items.forEach(function (c) {
          if (c.shortCode.indexOf(q.query) === 0) starts.push(c);
          else if (q.query && c.shortCode.indexOf(q.query) > 0) inside.push(c);
        });
        starts.sort(function (a, b) {
          return a.shortCode.localeCompare(b.shortCode);
        });
        openSuggest(starts.concat(inside).slice(0, 8), q);
      },
      function () {
        closeSuggest();
      }
    );
  }

  function openSuggest(items, q) {
    var list = $("canned-list");
    var ta = $("reply");
    suggest.items = items;
    suggest.start = q.start;
    suggest.end = q.end;
    suggest.index = items.length ? 0 : -1;
    UT.clear(list);
    items.forEach(function (c, i) {
      list.appendChild(
        h(
          "li",
          {
            id: "canned-opt-" + i,
            role: "option",
            class: "canned-opt",
            "aria-selected": i === suggest.index ? "true" : "false",
            onmousedown: function (e) {
              e.preventDefault();
            },
            onclick: function () {
              suggest.index = i;
              insertSuggestion();
            },
          },
          [h("span", { class: "canned-code", text: "/" + c.shortCode }), " ", h("span", { class: "canned-text", text: c.content })]
        )
      );
    });
    list.hidden = !items.length;
    if (items.length) ta.setAttribute("aria-activedescendant", "canned-opt-0");
    else ta.removeAttribute("aria-activedescendant");
    $("suggest-status").textContent = items.length ? UT.t("cannedMatches", { count: items.length }) : UT.t("cannedNone");
  }

  function closeSuggest() {
    if (!suggest.items.length && $("canned-list").hidden) return;
    suggest.items = [];
    suggest.index = -1;
    $("canned-list").hidden = true;
    UT.clear($("canned-list"));
    $("reply").removeAttribute("aria-activedescendant");
    $("suggest-status").textContent = "";
  }

  function moveSuggest(delta) {
    var n = suggest.items.length;
    if (!n) return;
    suggest.index = (suggest.index + delta + n) % n;
    $("canned-list")
      .querySelectorAll("[role=option]")
      .forEach(function (li, i) {
        li.setAttribute("aria-selected", i === suggest.index ? "true" : "false");
        if (i === suggest.index) li.scrollIntoView({ block: "nearest" });
      });
    $("reply").setAttribute("aria-activedescendant", "canned-opt-" + suggest.index);
  }

  function insertSuggestion() {
    var c = suggest.items[suggest.index];
    if (!c) return;
    var ta = $("reply");
    var v = ta.value;
    ta.value = v.slice(0, suggest.start) + c.content + v.slice(suggest.end);
    var caret = suggest.start + c.content.length;
    ta.setSelectionRange(caret, caret);
    closeSuggest();
    ta.focus();
    saveDraft();
    typingPulse();
  }

  function saveDraft() {
    if (!convId) return;
    var text = $("reply").value;
    if (text) drafts.set(convId, { text: text, note: $("note-toggle").checked });
    else drafts.delete(convId);
  }

  // ---- wiring -----------------------------------------------------------------------
  function init() {
    var ta = $("reply");
    $("composer").addEventListener("submit", function (e) {
      e.preventDefault();
      submit();
    });
    ta.addEventListener("keydown", function (e) {
      if (suggest.items.length) {
        if (e.key === "ArrowDown" || e.key === "ArrowUp") {
          e.preventDefault();
          moveSuggest(e.key === "ArrowDown" ? 1 : -1);
          return;
        }
        if ((e.key === "Enter" && !e.shiftKey) || e.key === "Tab") {
          e.preventDefault();
          insertSuggestion();
          return;
        }
        if (e.key === "Escape") {
          e.preventDefault();
          e.stopPropagation();
          closeSuggest();
          return;
        }
      }
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing && !e.altKey && !e.ctrlKey && !e.metaKey) {
        e.preventDefault();
        submit();
      }
    });
    ta.addEventListener("input", function () {
      saveDraft();
      updateSuggest();
      typingPulse();
    });
    ta.addEventListener("click", updateSuggest);
    ta.addEventListener("blur", function () {
      stopTyping();
      setTimeout(function () {
        if (document.activeElement !== ta) closeSuggest();
      }, 150);
    });
    $("note-toggle").addEventListener("change", function () {
      applyMode();
      saveDraft();
    });
    $("attach").addEventListener("change", function () {
      setFile($("attach").files[0]);
    });
    $("attachment-remove").addEventListener("click", function () {
      setFile(null);
      ta.focus();
    });
  }

  // Switches the box to another conversation (null: none), keeping each one's draft and pending sends.
  function attach(id) {
    saveDraft();
    stopTyping();
    closeSuggest();
    convId = id;
    setFile(null);
    $("composer-error").textContent = "";
    var d = id ? drafts.get(id) : null;
    $("reply").value = d ? d.text : "";
    $("note-toggle").checked = !!(d && d.note);
    applyMode();
    if (id && pendings.has(id)) pendings.get(id).forEach(UT.conv.showPending);
  }

  UT.composer = {
    init: init,
    attach: attach,
    applyMode: applyMode,
    focus: function () {
      $("reply").focus();
    },
    // The canned responses changed: read them again when next needed.
    invalidateCanned: function () {
      canned.items = null;
    },
    reset: function () {
      drafts.clear();
      pendings.clear();
      canned.items = null;
      attach(null);
    },
  };
})();
