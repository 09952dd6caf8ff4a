// The session and the REST API (same origin as the page).
//
// - The access token lives in memory only; the refresh token in
//   localStorage, so a reload stays signed in. Logging out removes it.
// - The access token is refreshed shortly before it expires, and on a 401
//   `token_expired` (the call is then retried once).
// - Refresh tokens are single use and a reused one signs the user out
//   everywhere, so refreshes take a Web Lock (one tab at a time) and always
//   use the newest token in localStorage, which another tab may have replaced.
"use strict";
(function () {
  var UT = window.UT;
  var RT_KEY = "utalk.console.refreshToken";
  var LOCK_NAME = "utalk.console.refresh";

  function ApiError(status, code, message, extra) {
    var e = new Error(message || code);
    e.name = "ApiError";
    e.status = status;
    e.code = code;
    e.serverMessage = message;
    if (extra) Object.assign(e, extra);
    return e;
  }
  UT.ApiError = ApiError;

  var auth = (UT.auth = { accessToken: null, expiresAt: 0, user: null });
  var listeners = [];
  var refreshTimer = null;
  var refreshing = null;

  // fn(kind, detail): kind "login", "refresh", "logout" (detail: a string key for the notice, or null).
  UT.onAuth = function (fn) {
    listeners.push(fn);
  };
  function fire(kind, detail) {
    listeners.slice().forEach(function (fn) {
      fn(kind, detail);
    });
  }

  function storedRefresh() {
    try {
      return localStorage.getItem(RT_KEY);
    } catch (e) {
      return null;
    }
  }
  function storeRefresh(rt) {
    try {
      if (rt) localStorage.setItem(RT_KEY, rt);
      else localStorage.removeItem(RT_KEY);
    } catch (e) {
      /* storage off: the session lasts as long as the page */
    }
  }

  function accept(body) {
    auth.accessToken = body.accessToken;
    auth.expiresAt = Date.now() + body.expiresIn * 1000;
    auth.lifetime = body.expiresIn * 1000;
    if (body.user) auth.user = body.user;
    storeRefresh(body.refreshToken);
    schedule(body.expiresIn);
  }

  // Refresh when 80% of the lifetime is gone (at most a minute early).
  function schedule(expiresIn) {
    clearTimeout(refreshTimer);
    var lead = Math.min(60, Math.max(1, expiresIn * 0.2));
    refreshTimer = setTimeout(function () {
      UT.refresh().catch(function () {});
    }, Math.max(0, expiresIn - lead) * 1000);
  }

  // One HTTP call; answers {status, headers, body} and never throws but on a network failure.
  async function rawFetch(method, path, opts) {
    opts = opts || {};
    var headers = {};
    var body;
    if (opts.token) headers.authorization = "Bearer " + opts.token;
    if (opts.form) body = opts.form;
    else if (opts.body !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(opts.body);
    }
    var res;
    try {
      res = await fetch(location.origin + path, { method: method, headers: headers, body: body, credentials: "omit", cache: "no-store" });
    } catch (e) {
      throw ApiError(0, "network_error", String(e && e.message));
    }
    var data = null;
    var text = await res.text().catch(function () {
      return "";
    });
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (e) {
        data = null;
      }
    }
    return { status: res.status, headers: res.headers, body: data };
  }

  function toError(r) {
    var err = (r.body && r.body.error) || {};
    var retry = r.headers.get("retry-after");
    return ApiError(r.status, err.code || "http_" + r.status, err.message, {
      requestId: err.requestId,
      details: err.details,
      retryAfter: retry ? Number(retry) || retry : undefined,
    });
  }

  function withLock(fn) {
    if (navigator.locks && navigator.locks.request) return navigator.locks.request(LOCK_NAME, fn);
    return fn();
  }

  // Gets a new token pair with the stored refresh token; ends the session when refused.
  UT.refresh = function () {
    if (refreshing) return refreshing;
    refreshing = withLock(async function () {
      var rt = storedRefresh();
      if (!rt) {
        endSession("sessionEnded");
        throw ApiError(401, "invalid_refresh_token");
      }
      var r;
      try {
        r = await rawFetch("POST", "/api/v1/auth/refresh", { body: { refreshToken: rt } });
      } catch (e) {
        // Offline: try again soon; the current token may still be good.
        clearTimeout(refreshTimer);
        refreshTimer = setTimeout(function () {
          UT.refresh().catch(function () {});
        }, 5000);
        throw e;
      }
      if (r.status === 200) {
        accept(r.body);
        fire("refresh");
        return auth.accessToken;
      }
      var err = toError(r);
      if (r.status === 401 || r.status === 403) endSession("sessionEnded");
      else {
        clearTimeout(refreshTimer);
        refreshTimer = setTimeout(function () {
          UT.refresh().catch(function () {});
        }, 5000);
      }
      throw err;
    });
    refreshing.then(
      function () {
        refreshing = null;
      },
      function () {
        refreshing = null;
      }
    );
    return refreshing;
  };

  // An access token good for a few more seconds (refreshing first if needed).
  UT.freshToken = async function () {
    if (!auth.accessToken) throw ApiError(401, "missing_token");
    if (auth.expiresAt - Date.now() < Math.min(3000, (auth.lifetime || 0) / 4)) await UT.refresh();
    return auth.accessToken;
  };

  function endSession(noticeKey) {
    var had = !!(auth.accessToken || storedRefresh());
    clearTimeout(refreshTimer);
    auth.accessToken = null;
    auth.expiresAt = 0;
    auth.user = null;
    storeRefresh(null);
    if (had) fire("logout", noticeKey || null);
  }

  // Another tab logged out: so does this one.
  window.addEventListener("storage", function (e) {
    if (e.key === RT_KEY && e.newValue === null && auth.accessToken) endSession("loggedOut");
  });

  // REST call with the session's token: resolves with the parsed body, rejects with an ApiError.
  // opts: {body} (JSON), {form} (FormData), {query} (object), {retried} (internal).
  UT.api = async function (method, path, opts) {
    opts = opts || {};
    if (opts.query) path += UT.qs(opts.query);
    var token = await UT.freshToken();
    var r = await rawFetch(method, path, { token: token, body: opts.body, form: opts.form });
    if (r.status === 401) {
      var code = r.body && r.body.error && r.body.error.code;
      if (code === "token_expired" || code === "token_revoked" || code === "invalid_token") {
        // Refresh (which ends the session if the refresh token is refused) and retry once.
        await UT.refresh();
        r = await rawFetch(method, path, { token: auth.accessToken, body: opts.body, form: opts.form });
        if (r.status === 401) {
          endSession("sessionEnded");
        }
      }
    }
    if (r.status >= 400) throw toError(r);
    return r.body;
  };

  UT.qs = function (query) {
    var parts = [];
    Object.keys(query).forEach(function (k) {
      var v = query[k];
      if (v === undefined || v === null || v === "") return;
      parts.push(encodeURIComponent(k) + "=" + encodeURIComponent(String(v)));
    });
    return parts.length ? "?" + parts.join("&") : "";
  };

  UT.login = async function (email, password) {
    var r = await rawFetch("POST", "/api/v1/auth/login", { body: { email: email, password: password } });
    if (r.status !== 200) throw toError(r);
    accept(r.body);
    fire("login");
    return auth.user;
  };

  // Restores the session of a reload from the stored refresh token; false when there is none.
  UT.resume = async function () {
    if (!storedRefresh()) return false;
    await UT.refresh();
    auth.user = await UT.api("GET", "/api/v1/auth/me");
    return true;
  };

  // Re-reads who the user is (a role may have changed).
  UT.reloadMe = async function () {
    auth.user = await UT.api("GET", "/api/v1/auth/me");
    return auth.user;
  };

  UT.logout = function () {
    endSession("loggedOut");
  };

  UT.hasRefreshToken = function () {
    return !!storedRefresh();
  };

  // What a role may do (docs/auth.md, route × role matrix).
  var CAN = {
    reply: ["admin", "operator", "agent"],
    change: ["admin", "operator", "agent"],
    assign: ["admin"],
    reports: ["admin", "operator", "readonly"],
    makeReport: ["admin", "operator"],
    users: ["admin"],
    manageCanned: ["admin", "operator", "agent"],
  };
  UT.can = function (what) {
    var role = auth.user && auth.user.role;
    return !!role && (CAN[what] || []).indexOf(role) >= 0;
  };
})();
