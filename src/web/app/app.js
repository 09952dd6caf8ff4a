// Starts the console: the login screen, the session, the socket and its
// events, presence, and the screens behind the hash routes
//   #/queue/<view>[/<conversation id>], #/canned, #/reports, #/users.
"use strict";
(function () {
  var UT = window.UT;
  var $ = UT.$;
  var h = UT.h;
  var PRESENCE_KEY = "utalk.console.presence";

  var SCREENS = { login: "screen-login", inbox: "screen-inbox", canned: "screen-canned", reports: "screen-reports", users: "screen-users" };
  var presence = new Map(); // user id -> "online" | "away" | "offline"
  var connectErrors = 0;
  var everConnected = false;
  var started = false;

  // ---- screens and routes ------------------------------------------------------------
  function showScreen(name) {
    Object.keys(SCREENS).forEach(function (k) {
      $(SCREENS[k]).hidden = k !== name;
    });
    document.querySelectorAll("[data-nav]").forEach(function (a) {
      var here = a.getAttribute("data-nav") === (name === "inbox" ? "queue" : name);
      if (here) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    });
  }

  var lastScreen = null;
  function route() {
    if (!UT.auth.user) return;
    var hash = location.hash;
    if (hash.indexOf("#/") !== 0) hash = "#/queue";
    var parts = hash.slice(2).split("/");
    var name = parts[0];
    var screen = name === "queue" ? "inbox" : name;
    if (!SCREENS[screen] || screen === "login" || (screen === "reports" && !UT.can("reports")) || (screen === "users" && !UT.can("users"))) {
      location.replace("#/queue");
      return;
    }
    var moved = screen !== lastScreen;
    lastScreen = screen;
    showScreen(screen);
    if (screen === "inbox") {
      UT.queue.show(parts[1] || "waiting");
      var id = parts[2] ? decodeURIComponent(parts[2]) : null;
      if (id) {
        var was = UT.conv.isOpen(id);
        UT.conv.open(id);
        if (!was && routedByUser) {
          if (UT.can("reply") && (UT.queue.get(id) || {}).status !== "closed") UT.composer.focus();
          else UT.conv.focusTitle();
        }
      } else UT.conv.close();
    } else {
      UT.conv.close();
      if (screen === "canned") UT.canned.show();
      if (screen === "reports") UT.reports.show();
      if (screen === "users") UT.users.show();
      if (moved && routedByUser) $(SCREENS[screen]).querySelector("h1").focus();
    }
    routedByUser = true;
  }
  var routedByUser = false;

  // ---- socket ------------------------------------------------------------------------
  function setConn(state) {
    var el = $("conn-state");
    el.textContent = UT.t("conn_" + state);
    el.className = "conn conn-" + state;
  }

  function myStatus() {
    try {
      return localStorage.getItem(PRESENCE_KEY) === "away" ? "away" : "online";
    } catch (e) {
      return "online";
    }
  }

  function startSocket() {
    var s = new UtalkSocket(location.origin, {
      autoConnect: false,
      auth: function () {
        return UT.freshToken().then(function (t) {
          return { token: t };
        });
      },
    });
    UT.socket = s;
    s.on("connect", function (recovered) {
      connectErrors = 0;
      setConn("connected");
      // The server follows every CONNECT with the presence of everyone present
      // now, so what changed while this page was away cannot linger.
      presence.clear();
      renderTeam();
      s.emit("presence:set", { status: myStatus() }).catch(function () {});
      var first = !everConnected;
      everConnected = true;
      UT.queue.resync(recovered && !first);
      UT.conv.onConnect(recovered);
    });
    s.on("disconnect", function (reason) {
      if (reason !== "io client disconnect") setConn("offline");
    });
    s.on("connect_error", function (err) {
      setConn("offline");
      connectErrors++;
      var wait = Math.min(30000, 1000 * Math.pow(2, connectErrors - 1));
      var code = err && err.message;
      var tokenTrouble = code === "token_expired" || code === "invalid_token" || code === "token_revoked" || code === "missing_token";
      // A refused CONNECT stops the socket: get a fresh token, then open it again.
      setTimeout(function () {
        if (UT.socket !== s || !UT.auth.accessToken) return;
        (tokenTrouble ? UT.refresh() : Promise.resolve()).then(
          function () {
            if (UT.socket === s) s.open();
          },
          function () {}
        );
      }, tokenTrouble && connectErrors === 1 ? 0 : wait);
    });
    s.on("session:closed", function (ev) {
      if (ev && ev.reason === "access_revoked") {
        // Disabled (the refresh fails and the session ends) or a new role (read it again).
        UT.refresh()
          .then(UT.reloadMe)
          .then(applyRole, function () {});
      }
    });
    s.on("presence", function (ev) {
      if (!ev || !ev.userId) return;
      presence.set(ev.userId, ev.status);
      renderTeam();
    });
    s.on("conversation:new", function (ev) {
      if (ev && ev.conversation) UT.queue.upsert(ev.conversation, "new");
    });
    s.on("canned:changed", function () {
      UT.composer.invalidateCanned();
      UT.canned.changed();
    });
    ["conversation:updated", "conversation:assigned"].forEach(function (name) {
      s.on(name, function (ev) {
        if (!ev || !ev.conversation) return;
        UT.queue.upsert(ev.conversation, name === "conversation:assigned" ? "assigned" : "updated");
        UT.conv.onConversation(ev.conversation);
      });
    });
    s.on("message:new", function (ev) {
      if (!ev || !ev.message) return;
      UT.queue.onMessage(ev.message);
      UT.conv.onMessage(ev.message);
    });
    s.on("message:updated", function (ev) {
      if (ev && ev.message) UT.conv.onMessage(ev.message);
    });
    s.on("message:status", function (ev) {
      if (ev) UT.conv.onStatus(ev);
    });
    s.on("message:read", function (ev) {
      if (ev) UT.conv.onRead(ev);
    });
    s.on("typing", function (ev) {
      if (ev) UT.conv.onTyping(ev);
    });
    s.on("replay:truncated", function (ev) {
      if (ev) UT.conv.onTruncated(ev);
    });
    setConn("connecting");
    s.open();
  }

  // ---- team presence ---------------------------------------------------------------------
  function renderTeam() {
    var ul = UT.clear($("team-list"));
    var me = UT.auth.user && UT.auth.user.id;
    var ids = Array.from(presence.keys()).filter(function (id) {
      return id !== me;
    });
    var rank = { online: 0, away: 1, offline: 2 };
    ids.sort(function (a, b) {
      return (rank[presence.get(a)] || 3) - (rank[presence.get(b)] || 3) || UT.staffName(a).localeCompare(UT.staffName(b));
    });
    if (!ids.length) ul.appendChild(h("li", { class: "muted", text: UT.t("teamEmpty") }));
    ids.forEach(function (id) {
      var st = presence.get(id) || "offline";
      ul.appendChild(
        h("li", { class: "presence presence-" + st }, [
          h("span", { class: "dot", "aria-hidden": "true" }),
          h("span", { class: "team-name", text: UT.staffName(id) }),
          " ",
          h("span", { class: "muted", text: UT.t("presence_" + st) }),
        ])
      );
    });
  }

  // ---- session --------------------------------------------------------------------------
  function applyRole() {
    var u = UT.auth.user;
    if (!u) return;
    $("me-name").textContent = (u.name || u.email) + " · " + UT.t("role_" + u.role);
    document.querySelectorAll("[data-role-min]").forEach(function (el) {
      el.hidden = !UT.can(el.getAttribute("data-role-min"));
    });
    var cur = UT.conv.current();
    if (cur) UT.conv.onConversation(cur);
    route();
  }

  function startSession() {
    if (started) return;
    started = true;
    $("mainnav").hidden = false;
    $("session").hidden = false;
    $("presence-select").value = myStatus();
    $("login-password").value = "";
    routedByUser = false;
    applyRole();
    if (UT.can("users")) UT.users.loadNames().then(renderTeam);
    UT.queue.start();
    startSocket();
    renderTeam();
  }

  function endSession(noticeKey) {
    started = false;
    everConnected = false;
    lastScreen = null;
    if (UT.socket) {
      var s = UT.socket;
      UT.socket = null;
      s.close();
    }
    UT.conv.close();
    UT.queue.reset();
    UT.composer.reset();
    presence.clear();
    UT.staffNames.clear();
    $("mainnav").hidden = true;
    $("session").hidden = true;
    showLogin(noticeKey);
  }

  function showLogin(noticeKey) {
    showScreen("login");
    document.title = UT.t("title");
    $("login-notice").textContent = noticeKey ? UT.t(noticeKey) : "";
    $("login-error").textContent = "";
    $("login-email").focus();
  }

  async function onLoginSubmit(e) {
    e.preventDefault();
    var email = $("login-email").value.trim();
    var password = $("login-password").value;
    var btn = $("login-submit");
    $("login-error").textContent = "";
    $("login-notice").textContent = "";
    if (!email || !password) {
      $("login-error").textContent = UT.t("err_invalid_credentials");
      return;
    }
    btn.disabled = true;
    btn.textContent = UT.t("signingIn");
    try {
      await UT.login(email, password);
    } catch (err) {
      UT.showError($("login-error"), err);
      $("login-password").focus();
    } finally {
      btn.disabled = false;
      btn.textContent = UT.t("signIn");
    }
  }

  async function boot() {
    UT.applyStrings(document);
    document.title = UT.t("title");
    $("login-form").addEventListener("submit", onLoginSubmit);
    $("logout-btn").addEventListener("click", function () {
      UT.logout();
    });
    $("skip-link").addEventListener("click", function (e) {
      e.preventDefault();
      $("main").focus();
    });
    $("presence-select").addEventListener("change", function () {
      var st = $("presence-select").value;
      try {
        localStorage.setItem(PRESENCE_KEY, st);
      } catch (x) {
        /* kept for this page only */
      }
      if (UT.socket && UT.socket.connected) UT.socket.emit("presence:set", { status: st }).catch(function () {});
    });
    document.querySelectorAll("main h1").forEach(function (h1) {
      h1.setAttribute("tabindex", "-1");
    });
    UT.queue.init();
    UT.conv.init();
    UT.composer.init();
    UT.canned.init();
    UT.reports.init();
    UT.users.init();
    UT.onAuth(function (kind, detail) {
      if (kind === "login") startSession();
      else if (kind === "logout") endSession(detail);
    });
    window.addEventListener("hashchange", route);
    if (UT.hasRefreshToken()) {
      try {
        await UT.resume();
        startSession();
        return;
      } catch (e) {
        // A refused refresh token has ended the session and shown the login screen.
        if (!UT.hasRefreshToken()) return;
        // The server is away, not the session: try again shortly.
        showLogin(null);
        $("login-error").textContent = UT.errorText(e);
        setTimeout(boot2, 5000);
        return;
      }
    }
    showLogin(null);
  }

  // A retry of a resume that failed on the network.
  function boot2() {
    if (started || !UT.hasRefreshToken()) return;
    UT.resume().then(startSession, function () {
      if (!started && UT.hasRefreshToken()) setTimeout(boot2, 5000);
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
  else boot();
})();
