// The head of the conversation view: who the customer is, the
// conversation's facts, its labels (shown and edited) and the actions:
// take, assign (admins), escalate, pause or resume the bot, close.
"use strict";
(function () {
  var UT = window.UT;
  var $ = UT.$;
  var h = UT.h;
  var menus = {};

  function me() {
    return UT.auth.user && UT.auth.user.id;
  }

  function fact(name, value) {
    return [h("dt", { text: UT.t("fact_" + name) }), h("dd", { text: value })];
  }

  function render(c) {
    var canChange = UT.can("change");
    var closed = c.status === "closed";
    $("conv-title").textContent = UT.customerName(c);
    var contact = [c.customer && c.customer.phone, c.customer && c.customer.email, c.subject].filter(Boolean);
    $("conv-contact").textContent = contact.join(" · ");
    var facts = UT.clear($("conv-facts"));
    [].concat(
      fact("channel", UT.t("channel_" + c.channel)),
      fact("status", UT.t("status_" + c.status)),
      fact("assignee", UT.staffName(c.assigneeId)),
      fact("bot", c.botEnabled ? UT.t("botOn") : UT.t("botOff"))
    ).forEach(function (el) {
      facts.appendChild(el);
    });

    history(c);

    var labels = c.labels || [];
    var ul = UT.clear($("conv-labels"));
    if (!labels.length) ul.appendChild(h("li", { class: "muted", text: UT.t("noLabels") }));
    labels.forEach(function (l) {
      var remove = function () {
        setLabels(labels.filter(function (x) { return x !== l; }), true);
      };
      ul.appendChild(
        h("li", { class: "chip" }, [
          h("span", { text: l }),
          canChange ? h("button", { type: "button", class: "chip-remove", "aria-label": UT.t("removeLabel", { label: l }), text: "×", onclick: remove }) : null,
        ])
      );
    });
    $("label-add-form").hidden = !canChange;

    $("conv-actions").hidden = !canChange;
    $("act-take").hidden = closed || c.assigneeId === me();
    $("assign-wrap").hidden = closed || !UT.can("assign");
    $("act-escalate").parentNode.hidden = c.status !== "open";
    $("act-bot").hidden = closed;
    $("act-bot").textContent = c.botEnabled ? UT.t("pauseBot") : UT.t("resumeBot");
    $("act-close").parentNode.hidden = closed;
    UT.composer.applyMode();
    var canReply = UT.can("reply");
    $("composer").hidden = !canReply;
    $("readonly-note").hidden = canReply;
  }

  // The customer's other conversations (their contact's), newest first, as links.
  var historyFor = null;
  async function history(c) {
    var box = $("contact-history");
    if (!c.contactId) {
      box.hidden = true;
      return;
    }
    var key = c.id + "/" + c.contactId;
    if (historyFor === key) return;
    historyFor = key;
    try {
      var r = await UT.api("GET", "/api/v1/contacts/" + encodeURIComponent(c.contactId) + "/conversations", { query: { limit: 50 } });
      if (historyFor !== key) return;
      var others = (r.items || []).filter(function (o) { return o.id !== c.id; }).reverse();
      box.hidden = !others.length;
      $("contact-history-summary").textContent = UT.t("otherConversations", { n: others.length });
      var ul = UT.clear($("contact-history-list"));
      others.forEach(function (o) {
        ul.appendChild(
          h("li", null, [
            h("a", { href: "#/queue/" + (o.status === "closed" ? "closed" : "open") + "/" + encodeURIComponent(o.id) }, [
              UT.t("channel_" + o.channel) + " · " + UT.t("status_" + o.status) + " · ",
              UT.timeEl(o.createdAt),
            ]),
          ])
        );
      });
    } catch (e) {
      // The list is a help, not the conversation: without it the view still works.
      box.hidden = true;
    }
  }

  // Runs a change of the open conversation; shows the server's refusal, or says it is done.
  async function act(run, doneKey, vars) {
    var id = UT.conv.currentId();
    if (!id) return false;
    $("conv-error").textContent = "";
    try {
      var conv = await run(id);
      if (conv && conv.id) {
        UT.queue.upsert(conv, "local");
        UT.conv.onConversation(conv);
      }
      if (doneKey) UT.toast(UT.t(doneKey, vars));
      return true;
    } catch (e) {
      if (UT.conv.currentId() === id) UT.showError($("conv-error"), e);
      return false;
    }
  }

  function path(id, tail) {
    return "/api/v1/conversations/" + encodeURIComponent(id) + (tail || "");
  }

  function patch(body) {
    return function (id) {
      return UT.api("PATCH", path(id), { body: body });
    };
  }

  function setLabels(labels, removing) {
    return act(patch({ labels: labels })).then(function (ok) {
      if (ok && removing) $("label-add").focus();
      return ok;
    });
  }

  function fillAssignees() {
    var sel = UT.clear($("assign-select"));
    var cur = UT.conv.current();
    var users = [];
    UT.staffNames.forEach(function (u) {
      if (!u.disabled && u.role !== "readonly") users.push(u);
    });
    users.sort(function (a, b) {
      return (a.name || a.email).localeCompare(b.name || b.email);
    });
    users.forEach(function (u) {
      var text = (u.name ? u.name + " <" + u.email + ">" : u.email) + " · " + UT.t("role_" + u.role);
      sel.appendChild(h("option", { value: u.id, text: text, selected: !!cur && u.id === cur.assigneeId }));
    });
  }

  function init() {
    $("act-take").addEventListener("click", function () {
      act(patch({ assigneeId: me() }), "taken");
    });
    $("act-bot").addEventListener("click", function () {
      var cur = UT.conv.current();
      var on = !(cur && cur.botEnabled);
      act(patch({ botEnabled: on }), on ? "botResumed" : "botPaused");
    });

    menus.assign = UT.menu($("act-assign"), $("assign-menu"), fillAssignees);
    $("assign-menu").addEventListener("submit", function (e) {
      e.preventDefault();
      var to = $("assign-select").value;
      if (!to) return;
      menus.assign.close(true);
      act(patch({ assigneeId: to }), "assignedTo", { name: UT.staffName(to) });
    });

    menus.escalate = UT.menu($("act-escalate"), $("escalate-menu"));
    $("escalate-menu").addEventListener("submit", function (e) {
      e.preventDefault();
      var reason = $("escalate-reason").value.trim();
      menus.escalate.close(false);
      $("escalate-reason").value = "";
      act(function (id) {
        return UT.api("POST", path(id, "/escalate"), { body: reason ? { reason: reason } : {} });
      }, "escalated").then(function () {
        $("conv-title").focus();
      });
    });

    menus.close = UT.menu($("act-close"), $("close-menu"));
    $("close-menu").addEventListener("submit", function (e) {
      e.preventDefault();
      var resolution = $("close-resolution").value.trim();
      if (!resolution) {
        $("conv-error").textContent = UT.t("resolutionRequired");
        $("close-resolution").focus();
        return;
      }
      menus.close.close(false);
      var ask = $("close-ask-rating").checked;
      act(function (id) {
        return UT.api("POST", path(id, "/close"), { body: { resolution: resolution, askRating: ask } });
      }, "closed").then(function (ok) {
        if (ok) $("close-resolution").value = "";
        $("conv-title").focus();
      });
    });

    $("label-add-form").addEventListener("submit", function (e) {
      e.preventDefault();
      var cur = UT.conv.current();
      if (!cur) return;
      var v = $("label-add").value.trim().toLowerCase();
      var labels = (cur.labels || []).slice();
      if (!UT.LABEL_RE.test(v)) {
        $("conv-error").textContent = UT.t("labelInvalid");
        return;
      }
      if (labels.indexOf(v) >= 0) {
        $("label-add").value = "";
        return;
      }
      if (labels.length >= 10) {
        $("conv-error").textContent = UT.t("labelTooMany");
        return;
      }
      labels.push(v);
      setLabels(labels).then(function (ok) {
        if (ok) $("label-add").value = "";
      });
    });
  }

  UT.convHead = {
    init: init,
    render: render,
    closeMenus: function () {
      Object.keys(menus).forEach(function (k) {
        menus[k].close(false);
      });
    },
  };
})();
