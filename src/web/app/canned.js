// The canned responses screen: list, add, edit and delete the texts agents
// insert with "/code" in the reply box.
"use strict";
(function () {
  var UT = window.UT;
  var $ = UT.$;
  var h = UT.h;
  var CODE_RE = /^[a-z0-9_-]{1,32}$/;

  var items = [];
  var editing = null; // the item being edited, or null when adding
  var confirming = null; // id of the item whose deletion is being confirmed

  async function load() {
    $("canned-status").textContent = UT.t("loading");
    try {
      var all = [];
      var cursor = "";
      for (var i = 0; i < 10 && cursor !== null; i++) {
        var page = await UT.api("GET", "/api/v1/canned-responses", { query: { limit: 200, cursor: cursor || null } });
        all = all.concat(page.items || []);
        cursor = page.nextCursor || null;
      }
      items = all.sort(function (a, b) {
        return a.shortCode.localeCompare(b.shortCode);
      });
      $("canned-status").textContent = items.length ? "" : UT.t("cannedEmpty");
    } catch (e) {
      $("canned-status").textContent = UT.errorText(e);
    }
    render();
  }

  function render() {
    var canEdit = UT.can("manageCanned");
    $("canned-form").hidden = !canEdit;
    var tbody = UT.clear($("canned-rows"));
    items.forEach(function (c) {
      var actions;
      if (!canEdit) actions = null;
      else if (confirming === c.id) {
        actions = h("div", { class: "row", role: "group", "aria-label": UT.t("confirmDelete", { code: c.shortCode }) }, [
          h("span", { text: UT.t("confirmDelete", { code: c.shortCode }) }),
          h("button", { type: "button", class: "btn btn-danger btn-small", "data-confirm": c.id, text: UT.t("confirmDeleteYes"), onclick: function () { remove(c); } }),
          h("button", { type: "button", class: "btn btn-quiet btn-small", text: UT.t("cancel"), onclick: function () { confirming = null; render(); focusRow(c.id, "delete"); } }),
        ]);
      } else {
        actions = h("div", { class: "row" }, [
          h("button", { type: "button", class: "btn btn-small", "data-action": "edit", "aria-label": UT.t("editNamed", { code: c.shortCode }), text: UT.t("edit"), onclick: function () { startEdit(c); } }),
          h("button", { type: "button", class: "btn btn-small btn-quiet", "data-action": "delete", "aria-label": UT.t("deleteNamed", { code: c.shortCode }), text: UT.t("delete"), onclick: function () { confirming = c.id; render(); var yes = document.querySelector('[data-confirm="' + c.id + '"]'); if (yes) yes.focus(); } }),
        ]);
      }
      tbody.appendChild(
        h("tr", { "data-id": c.id }, [
          h("td", {}, h("code", { text: "/" + c.shortCode })),
          h("td", { class: "pre", text: c.content }),
          h("td", {}, UT.timeEl(c.updatedAt || c.createdAt)),
          h("td", {}, actions),
        ])
      );
    });
  }

  function focusRow(id, action) {
    var btn = document.querySelector('#canned-rows tr[data-id="' + id + '"] [data-action="' + action + '"]');
    if (btn) btn.focus();
  }

  function startEdit(c) {
    editing = c;
    $("canned-code").value = c.shortCode;
    $("canned-content").value = c.content;
    $("canned-form-h").textContent = UT.t("cannedEdit", { code: c.shortCode });
    $("canned-submit").textContent = UT.t("saveChanges");
    $("canned-cancel").hidden = false;
    $("canned-error").textContent = "";
    $("canned-code").focus();
  }

  function resetForm() {
    editing = null;
    $("canned-form").reset();
    $("canned-form-h").textContent = UT.t("cannedAdd");
    $("canned-submit").textContent = UT.t("save");
    $("canned-cancel").hidden = true;
    $("canned-error").textContent = "";
  }

  async function save(e) {
    e.preventDefault();
    var code = $("canned-code").value.trim().toLowerCase();
    var content = $("canned-content").value;
    $("canned-error").textContent = "";
    if (!CODE_RE.test(code)) {
      $("canned-error").textContent = UT.t("shortCodeInvalid");
      $("canned-code").focus();
      return;
    }
    if (!content.trim()) {
      $("canned-error").textContent = UT.t("contentRequired");
      $("canned-content").focus();
      return;
    }
    try {
      if (editing) {
        var change = {};
        if (code !== editing.shortCode) change.shortCode = code;
        if (content !== editing.content) change.content = content;
        if (Object.keys(change).length) await UT.api("PATCH", "/api/v1/canned-responses/" + encodeURIComponent(editing.id), { body: change });
      } else {
        await UT.api("POST", "/api/v1/canned-responses", { body: { shortCode: code, content: content } });
      }
      var wasEditing = editing;
      resetForm();
      UT.composer.invalidateCanned();
      UT.toast(UT.t("cannedSaved", { code: code }));
      await load();
      if (wasEditing) focusRow(wasEditing.id, "edit");
      else $("canned-code").focus();
    } catch (err) {
      UT.showError($("canned-error"), err);
    }
  }

  async function remove(c) {
    try {
      await UT.api("DELETE", "/api/v1/canned-responses/" + encodeURIComponent(c.id));
      confirming = null;
      if (editing && editing.id === c.id) resetForm();
      UT.composer.invalidateCanned();
      UT.toast(UT.t("cannedDeleted", { code: c.shortCode }));
      await load();
      $("canned-h").focus();
    } catch (err) {
      confirming = null;
      render();
      $("canned-status").textContent = UT.errorText(err);
    }
  }

  UT.canned = {
    init: function () {
      $("canned-form").addEventListener("submit", save);
      $("canned-cancel").addEventListener("click", function () {
        var id = editing && editing.id;
        resetForm();
        if (id) focusRow(id, "edit");
      });
      $("canned-rows").addEventListener("keydown", function (e) {
        if (e.key === "Escape" && confirming) {
          var id = confirming;
          confirming = null;
          render();
          focusRow(id, "delete");
        }
      });
      $("canned-h").setAttribute("tabindex", "-1");
    },
    show: function () {
      resetForm();
      confirming = null;
      load();
    },
    // Another agent changed the canned responses: list them again if this
    // screen is showing and nothing is being typed into its form.
    changed: function () {
      if (!$("screen-canned").hidden && !editing && !confirming) load();
    },
  };
})();
