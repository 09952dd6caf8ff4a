// Small DOM and formatting helpers shared by the console's screens.
// Server data only ever reaches the page through textContent, attribute
// values and element properties: never through innerHTML.
"use strict";
(function () {
  var UT = window.UT;

  UT.$ = function (id) {
    return document.getElementById(id);
  };

  // h("button", {type: "button", class: "btn", onclick: fn, text: "Go"}, [children])
  // Keys starting with "on" add listeners; class, text, hidden, disabled,
  // checked, value and selected set properties; anything else is an attribute.
  UT.h = function (tag, props, children) {
    var el = document.createElement(tag);
    if (props) {
      Object.keys(props).forEach(function (k) {
        var v = props[k];
        if (v === undefined || v === null || v === false) return;
        if (k.slice(0, 2) === "on" && typeof v === "function") el.addEventListener(k.slice(2), v);
        else if (k === "class") el.className = v;
        else if (k === "text") el.textContent = v;
        else if (k === "hidden" || k === "disabled" || k === "checked" || k === "value" || k === "selected") el[k] = v;
        else el.setAttribute(k, v === true ? "" : String(v));
      });
    }
    UT.append(el, children);
    return el;
  };

  UT.append = function (el, children) {
    if (children === undefined || children === null) return el;
    if (!Array.isArray(children)) children = [children];
    children.forEach(function (c) {
      if (c === null || c === undefined || c === false) return;
      el.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    });
    return el;
  };

  UT.clear = function (el) {
    while (el.firstChild) el.removeChild(el.firstChild);
    return el;
  };

  UT.show = function (el, on) {
    el.hidden = !on;
  };

  // ---- time -------------------------------------------------------------
  var timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
  var dateTimeFmt = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  var dateFmt = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric" });
  var fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" });

  UT.fmtTime = function (iso) {
    if (!iso) return "";
    var d = new Date(iso);
    if (isNaN(d)) return "";
    var now = new Date();
    if (d.toDateString() === now.toDateString()) return timeFmt.format(d);
    return dateTimeFmt.format(d);
  };
  UT.fmtDate = function (iso) {
    var d = new Date(iso);
    return isNaN(d) ? "" : dateFmt.format(d);
  };
  UT.timeEl = function (iso) {
    var d = new Date(iso);
    return UT.h("time", { datetime: iso, title: isNaN(d) ? null : fullFmt.format(d), text: UT.fmtTime(iso) });
  };

  // ---- announcements and errors -------------------------------------------
  var toastTimer = null;
  // Says `text` in the polite status region (and shows it briefly).
  UT.toast = function (text) {
    var el = UT.$("toast");
    el.textContent = text;
    el.classList.add("visible");
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () {
      el.classList.remove("visible");
      el.textContent = "";
    }, 5000);
  };

  // A readable sentence for an error from the API or the socket.
  UT.errorText = function (err) {
    if (!err) return "";
    var code = err.code || (err.error && err.error.code) || err.message || "internal";
    if (code === "too_many_attempts" || code === "rate_limited") {
      if (err.retryAfter) return UT.t("err_" + code, { seconds: err.retryAfter });
      if (code === "too_many_attempts") return UT.t("err_too_many_attempts_plain");
    }
    var key = "err_" + code;
    var s = UT.t(key);
    if (s !== key) return s;
    var msg = err.serverMessage || (err.error && err.error.message);
    return msg ? msg : UT.t("err_generic", { code: code });
  };

  UT.showError = function (el, err) {
    el.textContent = err ? UT.errorText(err) : "";
  };

  // ---- menus (small forms that open below a button) -------------------------
  // Escape or a click elsewhere closes an open menu; Escape puts focus back
  // on the button that opened it.
  var openMenu = null;
  UT.menu = function (button, panel, onOpen) {
    function close(refocus) {
      if (panel.hidden) return;
      panel.hidden = true;
      button.setAttribute("aria-expanded", "false");
      if (openMenu && openMenu.panel === panel) openMenu = null;
      if (refocus) button.focus();
    }
    function open() {
      if (openMenu) openMenu.close(false);
      panel.hidden = false;
      button.setAttribute("aria-expanded", "true");
      openMenu = { panel: panel, close: close, button: button };
      if (onOpen) onOpen();
      var first = panel.querySelector("input, select, textarea, button");
      if (first) first.focus();
    }
    button.addEventListener("click", function () {
      if (panel.hidden) open();
      else close(false);
    });
    panel.addEventListener("keydown", function (e) {
      if (e.key === "Escape") {
        e.preventDefault();
        e.stopPropagation();
        close(true);
      }
    });
    return { open: open, close: close };
  };
  document.addEventListener("mousedown", function (e) {
    if (openMenu && !openMenu.panel.contains(e.target) && !openMenu.button.contains(e.target)) openMenu.close(false);
  });
  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape" && openMenu) {
      e.preventDefault();
      openMenu.close(true);
    }
  });

  // ---- people ---------------------------------------------------------------
  // Names of staff the console knows (all users for admins, else only itself).
  UT.staffNames = new Map();
  UT.staffName = function (id) {
    if (!id) return UT.t("unassigned");
    if (UT.auth && UT.auth.user && id === UT.auth.user.id) return UT.t("you");
    var u = UT.staffNames.get(id);
    if (u) return u.name || u.email;
    return UT.t("staff", { id: id.slice(-4) });
  };

  UT.customerName = function (conv) {
    var c = (conv && conv.customer) || {};
    return c.name || c.phone || c.email || UT.t("anonymous");
  };

  UT.LABEL_RE = /^[a-z0-9_-]{1,32}$/;
})();
