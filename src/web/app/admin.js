// The reports screen (KPIs of the last days and the daily reports' signed
// links) and the users screen (admins: add, change role, disable, set a
// password).
"use strict";
(function () {
  var UT = window.UT;
  var $ = UT.$;
  var h = UT.h;

  // ---- reports -------------------------------------------------------------------
  var KPIS = [
    { key: "conversations", fmt: "count" },
    { key: "messages", fmt: "count" },
    { key: "botResponseTimeMs", fmt: "ms", target: 2000, below: true },
    { key: "firstContactResolution", fmt: "pct", target: 0.7 },
    { key: "agentSpeedOfAnswerMs", fmt: "ms", target: 30000, below: true },
    { key: "escalationRate", fmt: "pct", target: 0.2, below: true },
    { key: "csat", fmt: "pct", target: 0.85 },
    { key: "nps", fmt: "num", target: 50 },
  ];

  function fmt(kind, v) {
    if (v === null || v === undefined) return "—";
    if (kind === "count") return String(v);
    if (kind === "pct") return (v * 100).toFixed(1) + "%";
    if (kind === "num") return String(Math.round(v));
    if (v < 1000) return Math.round(v) + " ms";
    if (v < 60000) return (v / 1000).toFixed(1) + " s";
    return (v / 60000).toFixed(1) + " min";
  }

  async function loadKpis() {
    var head = UT.clear($("kpi-head"));
    var rows = UT.clear($("kpi-rows"));
    head.appendChild(
      h(
        "tr",
        {},
        [h("th", { scope: "col", text: UT.t("kpi_day") })].concat(
          KPIS.map(function (k) {
            return h("th", { scope: "col", text: UT.t("kpi_" + k.key) });
          })
        )
      )
    );
    $("kpi-status").textContent = UT.t("loading");
    var from = new Date();
    from.setUTCHours(0, 0, 0, 0);
    from.setUTCDate(from.getUTCDate() - 6);
    try {
      var r = await UT.api("GET", "/api/v1/reports/kpis", { query: { granularity: "day", from: from.toISOString() } });
      (r.items || [])
        .slice()
        .reverse()
        .forEach(function (b) {
          rows.appendChild(
            h(
              "tr",
              {},
              [h("th", { scope: "row", text: UT.fmtDate(b.bucketStart) })].concat(
                KPIS.map(function (k) {
                  var v = b[k.key];
                  if (k.target === undefined || v === null || v === undefined) return h("td", { text: fmt(k.fmt, v) });
                  var met = k.below ? v < k.target : v > k.target;
                  return h("td", { class: met ? "met" : "missed" }, [
                    fmt(k.fmt, v) + " ",
                    h("span", { "aria-hidden": "true", text: met ? "✓" : "✗" }),
                    h("span", { class: "visually-hidden", text: UT.t(met ? "targetMet" : "targetMissed") }),
                  ]);
                })
              )
            )
          );
        });
      rows.appendChild(
        h(
          "tr",
          { class: "target" },
          [h("th", { scope: "row", text: UT.t("kpi_target") })].concat(
            KPIS.map(function (k) {
              return h("td", { text: k.target === undefined ? "" : (k.below ? "< " : "> ") + fmt(k.fmt, k.target) });
            })
          )
        )
      );
      $("kpi-status").textContent = r.asOf ? UT.t("kpiAsOf", { time: UT.fmtTime(r.asOf) }) : "";
    } catch (e) {
      $("kpi-status").textContent = UT.errorText(e);
    }
  }

  async function loadDaily() {
    var ul = UT.clear($("daily-list"));
    try {
      var r = await UT.api("GET", "/api/v1/reports", { query: { limit: 30 } });
      if (!r.items.length) ul.appendChild(h("li", { class: "muted", text: UT.t("dailyEmpty") }));
      r.items.forEach(function (rep) {
        ul.appendChild(
          h("li", {}, [
            h("a", { href: rep.url, target: "_blank", rel: "noopener", text: UT.t("dailyLink", { date: rep.date }) }),
            " ",
            h("span", { class: "muted", text: Math.round((rep.bytes || 0) / 1024) + " KB" }),
          ])
        );
      });
    } catch (e) {
      UT.showError($("daily-error"), e);
    }
  }

  async function makeReport() {
    $("daily-error").textContent = "";
    var btn = $("daily-make");
    btn.disabled = true;
    try {
      var rep = await UT.api("POST", "/api/v1/reports/daily", { body: {} });
      UT.toast(UT.t("reportMade", { date: rep.date }));
      await loadDaily();
    } catch (e) {
      UT.showError($("daily-error"), e);
    } finally {
      btn.disabled = false;
    }
  }

  UT.reports = {
    init: function () {
      $("daily-make").addEventListener("click", makeReport);
    },
    show: function () {
      $("daily-error").textContent = "";
      loadKpis();
      loadDaily();
    },
  };

  // ---- users ------------------------------------------------------------------------
  var users = [];
  var pwFor = null; // id of the user whose password form is open

  // Loads every user, and keeps their names for the queue and the assign menu.
  async function loadUsers() {
    var all = [];
    var cursor = "";
    for (var i = 0; i < 50 && cursor !== null; i++) {
      var page = await UT.api("GET", "/api/v1/users", { query: { limit: 200, cursor: cursor || null } });
      all = all.concat(page.items || []);
      cursor = page.nextCursor || null;
    }
    users = all;
    UT.staffNames.clear();
    all.forEach(function (u) {
      UT.staffNames.set(u.id, u);
    });
    UT.queue.render();
    return all;
  }

  function roleSelect(u, self) {
    var sel = h(
      "select",
      { "aria-label": UT.t("roleOf", { email: u.email }), disabled: self },
      ["admin", "operator", "agent", "readonly"].map(function (r) {
        return h("option", { value: r, text: UT.t("role_" + r), selected: u.role === r });
      })
    );
    sel.addEventListener("change", function () {
      patch(u, { role: sel.value }, UT.t("roleChanged", { email: u.email, role: UT.t("role_" + sel.value) }), sel);
    });
    return sel;
  }

  async function patch(u, change, done, focusEl) {
    $("users-status").textContent = "";
    try {
      var nu = await UT.api("PATCH", "/api/v1/users/" + encodeURIComponent(u.id), { body: change });
      Object.assign(u, nu);
      UT.staffNames.set(u.id, u);
      UT.toast(done);
    } catch (e) {
      $("users-status").textContent = UT.errorText(e);
    }
    renderUsers();
    var row = document.querySelector('#users-rows tr[data-id="' + u.id + '"]');
    var again = row && focusEl && row.querySelector(focusEl.tagName.toLowerCase() + (focusEl.getAttribute("data-action") ? '[data-action="' + focusEl.getAttribute("data-action") + '"]' : ""));
    if (again) again.focus();
  }

  function passwordForm(u) {
    var input = h("input", { type: "password", autocomplete: "new-password", minlength: "10", required: true, id: "pw-" + u.id });
    var err = h("p", { class: "error", role: "alert" });
    var form = h("form", { class: "row pw-form", novalidate: true }, [
      h("label", { for: "pw-" + u.id, text: UT.t("newPassword", { email: u.email }) }),
      input,
      h("button", { type: "submit", class: "btn btn-primary btn-small", text: UT.t("save") }),
      h("button", { type: "button", class: "btn btn-quiet btn-small", text: UT.t("cancel"), onclick: closePw }),
      err,
    ]);
    function closePw() {
      pwFor = null;
      renderUsers();
      var b = document.querySelector('#users-rows tr[data-id="' + u.id + '"] [data-action="password"]');
      if (b) b.focus();
    }
    form.addEventListener("keydown", function (e) {
      if (e.key === "Escape") closePw();
    });
    form.addEventListener("submit", async function (e) {
      e.preventDefault();
      try {
        await UT.api("POST", "/api/v1/users/" + encodeURIComponent(u.id) + "/password", { body: { password: input.value } });
        UT.toast(UT.t("passwordSet", { email: u.email }));
        closePw();
      } catch (x) {
        UT.showError(err, x);
      }
    });
    return form;
  }

  function renderUsers() {
    var me = UT.auth.user && UT.auth.user.id;
    var tbody = UT.clear($("users-rows"));
    users.forEach(function (u) {
      var self = u.id === me;
      var toggle = h("button", {
        type: "button",
        class: "btn btn-small" + (u.disabled ? "" : " btn-quiet"),
        "data-action": "toggle",
        disabled: self,
        "aria-label": UT.t(u.disabled ? "enableNamed" : "disableNamed", { email: u.email }),
        text: UT.t(u.disabled ? "enable" : "disable"),
      });
      toggle.addEventListener("click", function () {
        var on = !u.disabled;
        patch(u, { disabled: on }, UT.t(on ? "userDisabled" : "userEnabled", { email: u.email }), toggle);
      });
      var pwBtn = h("button", {
        type: "button",
        class: "btn btn-small btn-quiet",
        "data-action": "password",
        "aria-label": UT.t("setPasswordNamed", { email: u.email }),
        text: UT.t("setPassword"),
        onclick: function () {
          pwFor = u.id;
          renderUsers();
          var input = UT.$("pw-" + u.id);
          if (input) input.focus();
        },
      });
      tbody.appendChild(
        h("tr", { "data-id": u.id, class: u.disabled ? "is-disabled" : "" }, [
          h("td", {}, [h("span", { class: "u-name", text: u.name || u.email }), u.name ? h("span", { class: "muted u-email", text: u.email }) : null, self ? h("span", { class: "muted", text: " " + UT.t("thisIsYou") }) : null]),
          h("td", {}, roleSelect(u, self)),
          h("td", { text: UT.t(u.disabled ? "disabled" : "enabled") }),
          h("td", {}, pwFor === u.id ? passwordForm(u) : h("div", { class: "row" }, [toggle, pwBtn])),
        ])
      );
    });
  }

  async function showUsers() {
    $("users-status").textContent = UT.t("loading");
    try {
      await loadUsers();
      $("users-status").textContent = "";
    } catch (e) {
      $("users-status").textContent = UT.errorText(e);
    }
    renderUsers();
  }

  async function addUser(e) {
    e.preventDefault();
    var email = $("user-email").value.trim();
    var name = $("user-name").value.trim();
    var role = $("user-role").value;
    var password = $("user-password").value;
    $("user-error").textContent = "";
    if (!email) {
      $("user-error").textContent = UT.t("err_invalid_email");
      return $("user-email").focus();
    }
    if (password.length < 10) {
      $("user-error").textContent = UT.t("err_weak_password");
      return $("user-password").focus();
    }
    try {
      var u = await UT.api("POST", "/api/v1/users", { body: { email: email, password: password, role: role } });
      // The name goes in a change of its own, which every server version takes.
      if (name) u = await UT.api("PATCH", "/api/v1/users/" + encodeURIComponent(u.id), { body: { name: name } });
      $("user-form").reset();
      UT.toast(UT.t("userCreated", { email: u.email }));
      await showUsers();
      $("user-email").focus();
    } catch (x) {
      UT.showError($("user-error"), x);
    }
  }

  UT.users = {
    init: function () {
      $("user-form").addEventListener("submit", addUser);
    },
    show: function () {
      pwFor = null;
      showUsers();
    },
    // Admins: learn every staff member's name (for the queue and the assign menu).
    loadNames: function () {
      return loadUsers().catch(function () {});
    },
  };
})();
