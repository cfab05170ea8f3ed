// Manage repositories (templates/admin.html): the integrations list, the Add-integration wizard,
// one integration's settings and repositories, and the indexing queue viewer.
//
// Rules kept everywhere below:
// * every value from the API (git data, host errors, names) reaches the DOM through
//   textContent, a form value or a checked http(s) href: never innerHTML;
// * errors are shown in words (the API's message), next to the field it names when it names one;
// * AP (all.js) is optional: without it the page uses the token it was rendered with.
(function () {
  "use strict";

  // ---- the OAuth popup's last page (templates/admin_oauth_done.html) ---------------------------
  var oauthDone = document.getElementById("gcj-oauth-done");
  if (oauthDone) {
    var message = { type: "gcj-oauth", flow: oauthDone.getAttribute("data-flow"), ok: oauthDone.getAttribute("data-ok") === "true" };
    try {
      if (window.opener && message.flow) { window.opener.postMessage(message, window.location.origin); }
    } catch (e) { /* the wizard polls anyway */ }
    var closeButton = document.getElementById("gcj-oauth-close");
    if (closeButton) { closeButton.addEventListener("click", function () { window.close(); }); }
    if (message.ok) { window.setTimeout(function () { window.close(); }, 2500); }
    return;
  }

  var root = document.getElementById("gcj-admin");
  if (!root) { return; }
  var body = document.body;
  var pageToken = body.getAttribute("data-page-token") || "";

  // ---- small helpers ----------------------------------------------------------------------------

  function $(selector, scope) { return (scope || document).querySelector(selector); }
  function $$(selector, scope) { return Array.prototype.slice.call((scope || document).querySelectorAll(selector)); }
  function byId(id) { return document.getElementById(id); }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function clear(node) { while (node.firstChild) { node.removeChild(node.firstChild); } return node; }

  function show(node, visible) { if (node) { node.hidden = !visible; } return node; }

  function button(text, className, onClick, label) {
    var b = el("button", "gcj-button" + (className ? " " + className : ""), text);
    b.type = "button";
    if (label) { b.setAttribute("aria-label", label); }
    if (onClick) { b.addEventListener("click", onClick); }
    return b;
  }

  function safeHref(url) { return typeof url === "string" && /^https?:\/\//i.test(url) ? url : null; }

  function extLink(url, text, className) {
    var href = safeHref(url);
    var node = el(href ? "a" : "span", className, text);
    if (href) { node.href = href; node.target = "_blank"; node.rel = "noopener noreferrer"; }
    return node;
  }

  function plural(n, one, many) { return (typeof n === "number" ? n.toLocaleString() : n) + " " + (n === 1 ? one : many); }

  function num(n) { return typeof n === "number" ? n.toLocaleString() : "—"; }

  function timeEl(iso, fallback) {
    var node = el("time", "gcj-time");
    if (!iso) { node.textContent = fallback || "—"; return node; }
    var date = new Date(iso);
    node.setAttribute("datetime", iso);
    node.textContent = isNaN(date.getTime()) ? iso : date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
    node.title = relative(date);
    return node;
  }

  function relative(date) {
    var s = Math.round((Date.now() - date.getTime()) / 1000);
    if (s < 0) { return "in the future"; }
    if (s < 60) { return "just now"; }
    if (s < 3600) { return plural(Math.floor(s / 60), "minute", "minutes") + " ago"; }
    if (s < 86400) { return plural(Math.floor(s / 3600), "hour", "hours") + " ago"; }
    return plural(Math.floor(s / 86400), "day", "days") + " ago";
  }

  function duration(ms) {
    if (typeof ms !== "number") { return "—"; }
    if (ms < 1000) { return ms + " ms"; }
    var s = ms / 1000;
    if (s < 60) { return (s < 10 ? s.toFixed(1) : Math.round(s)) + " s"; }
    var m = Math.floor(s / 60);
    if (m < 60) { return m + " min " + Math.round(s - m * 60) + " s"; }
    var h = Math.floor(m / 60);
    return h + " h " + (m - h * 60) + " min";
  }

  var INTEGRATION_STATUS = { pending: "Pending", indexing: "Indexing", indexed: "Indexed", error: "Error", rate_limited: "Rate limited", disabled: "Disabled" };
  var REPO_STATUS = { "new": "Not indexed yet", queued: "Queued", indexing: "Indexing", ok: "Indexed", failed: "Failed", rate_limited: "Rate limited", removed: "Removed from host" };
  var RUN_STATUS = { queued: "Queued", running: "Running", done: "Done", failed: "Failed", rate_limited: "Rate limited" };
  var TRIGGERS = { initial: "Initial", scheduled: "Scheduled", webhook: "Webhook", manual: "Manual" };
  var AUTH_TYPES = { pat: "Personal access token", oauth: "OAuth", password: "User name and password", aws: "AWS access key", none: "None (public)", ssh_key: "SSH key" };
  var FEATURES = { create_branch: "Create branch", create_pull_request: "Create PR", smart_commits: "Smart commits", development_panel: "Development panel", webhooks: "Webhooks" };
  var FEATURE_NEEDS = { create_branch: "create_branch", create_pull_request: "create_pull_request", webhooks: "webhooks" };
  var SELECTION = { all: "All current repositories", all_future: "All repositories, now and in the future", selected: "Picked repositories" };
  var TONE = {
    indexed: "success", ok: "success", done: "success",
    indexing: "progress", running: "progress", queued: "progress", pending: "progress",
    error: "error", failed: "error",
    rate_limited: "warning"
  };

  // What fixes refused credentials: a new sign-in for OAuth, a new token (or password, key) otherwise.
  function credentialsAction(i) {
    return i.auth_type === "oauth" ? "Sign in again" : i.auth_type === "password" ? "Replace password" : i.auth_type === "aws" ? "Replace access key" : i.auth_type === "ssh_key" ? "Replace key" : "Replace token";
  }

  function lozenge(status, words) {
    var node = el("span", "gcj-lozenge gcj-lozenge-" + (TONE[status] || "default"), (words && words[status]) || status || "—");
    node.setAttribute("data-status", status || "");
    return node;
  }

  // ---- API --------------------------------------------------------------------------------------

  function contextToken() {
    if (window.AP && window.AP.context && window.AP.context.getToken) {
      return new Promise(function (resolve) {
        var settled = false;
        window.setTimeout(function () { if (!settled) { settled = true; resolve(pageToken); } }, 3000);
        window.AP.context.getToken(function (token) { if (!settled) { settled = true; resolve(token || pageToken); } });
      });
    }
    return Promise.resolve(pageToken);
  }

  // fetch with the context JWT; rejects with an Error carrying .status, .code and .field.
  function call(method, path, payload) {
    return contextToken().then(function (token) {
      var options = { method: method, headers: { "Accept": "application/json", "Authorization": "JWT " + token } };
      if (payload !== undefined) {
        options.headers["Content-Type"] = "application/json";
        options.body = JSON.stringify(payload);
      }
      return fetch(path, options).catch(function () {
        var offline = new Error("Git Connect could not be reached. Check the connection and try again.");
        offline.status = 0;
        throw offline;
      });
    }).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (data) {
        if (response.ok && data !== null) { return data; }
        var problem = (data && data.error) || {};
        var text = problem.message;
        if (!text) {
          text = response.status === 401
            ? "Your session has expired. Reload the page."
            : "Git Connect answered with an error (HTTP " + response.status + "). Try again in a moment.";
        } else if (response.status === 401) {
          text = text + " Reload the page to continue.";
        }
        var err = new Error(text);
        err.status = response.status;
        err.code = problem.code || "";
        err.field = problem.field || "";
        throw err;
      });
    });
  }

  function query(params) {
    var parts = [];
    Object.keys(params).forEach(function (k) {
      if (params[k] !== "" && params[k] !== null && params[k] !== undefined) {
        parts.push(encodeURIComponent(k) + "=" + encodeURIComponent(params[k]));
      }
    });
    return parts.length ? "?" + parts.join("&") : "";
  }

  // ---- page chrome: flags, errors, dialog, resizing ------------------------------------------------

  var flags = byId("gcj-flags");

  // Inside Jira (AP.js loaded) the message shows in Jira's own flag group, as plain text (the
  // flag's title); this page keeps a visually hidden copy for its own live region. Without
  // AP.js it shows here.
  function apFlag(kind, text) {
    if (!(window.AP && window.AP.flag && typeof window.AP.flag.create === "function")) { return false; }
    try {
      window.AP.flag.create({ title: text, type: kind === "error" ? "error" : kind === "warning" ? "warning" : kind === "success" ? "success" : "info", close: kind === "error" ? "manual" : "auto" });
      return true;
    } catch (e) { return false; }
  }

  function flag(kind, text) {
    var inJira = apFlag(kind, text);
    var item = el("div", "gcj-flag gcj-flag-" + kind + (inJira ? " gcj-visually-hidden" : ""));
    item.setAttribute("role", kind === "error" ? "alert" : "status");
    item.appendChild(el("span", "gcj-flag-text", text));
    var close = button("Dismiss", "gcj-button-subtle", function () { item.remove(); resize(); }, "Dismiss message");
    item.appendChild(close);
    flags.appendChild(item);
    while (flags.children.length > 4) { flags.removeChild(flags.firstChild); }
    if (kind !== "error") { window.setTimeout(function () { item.remove(); resize(); }, 8000); }
    resize();
    return item;
  }

  function errorTargets(scope, field) {
    if (!field) { return null; }
    var candidates = [field, field.replace(/\[\d+\]$/, ""), field.split(".").slice(0, 2).join("."), field.split(".")[0]];
    for (var i = 0; i < candidates.length; i++) {
      var found = $$("[data-error-for]", scope).filter(function (node) {
        return node.getAttribute("data-error-for") === candidates[i] && !(node.parentElement && node.parentElement.closest("[hidden]"));
      })[0];
      if (found) { return found; }
    }
    return null;
  }

  function clearErrors(scope) {
    $$("[data-error-for], .gcj-step-error", scope).forEach(function (node) { node.textContent = ""; node.hidden = true; });
    $$("[aria-invalid]", scope).forEach(function (node) { node.removeAttribute("aria-invalid"); });
  }

  // Show err next to the field it names (else in `fallback`, else as a flag); returns the element.
  function showError(scope, err, fallback) {
    var target = errorTargets(scope, err.field) || fallback;
    if (!target) { flag("error", err.message); return null; }
    target.textContent = err.message;
    target.hidden = false;
    target.setAttribute("role", "alert");
    var container = target.parentElement;
    var input = container && $("input:not([type=hidden]), select, textarea", container);
    if (input && !input.disabled) {
      input.setAttribute("aria-invalid", "true");
      input.focus();
    }
    resize();
    return target;
  }

  var dialog = byId("gcj-confirm");

  // A modal confirmation next to the control that asked for it: Jira sizes this iframe to its
  // content, so a dialog centred in the iframe could open far outside the admin's screen.
  function confirmAction(title, lines, okText, anchor) {
    var near = anchor || document.activeElement;
    byId("gcj-confirm-title").textContent = title;
    var bodyEl = clear(byId("gcj-confirm-body"));
    lines.forEach(function (line) { bodyEl.appendChild(el("p", null, line)); });
    byId("gcj-confirm-ok").textContent = okText;
    if (!dialog || typeof dialog.showModal !== "function") {
      return Promise.resolve(window.confirm(title + "\n\n" + lines.join("\n")));
    }
    return new Promise(function (resolve) {
      dialog.returnValue = "";
      dialog.addEventListener("close", function done() {
        dialog.removeEventListener("close", done);
        resize();
        // Back to the control that asked (when it is still there), so keyboard users keep their place.
        if (near && near.focus && document.contains(near)) { near.focus(); }
        resolve(dialog.returnValue === "confirm");
      });
      dialog.showModal();
      if (near && near.getBoundingClientRect && near !== document.body) {
        var rect = near.getBoundingClientRect();
        var height = dialog.offsetHeight;
        var top = Math.min(Math.max(8, rect.top - height / 2), Math.max(8, window.innerHeight - height - 8));
        dialog.style.margin = "0 auto";
        dialog.style.top = Math.round(top) + "px";
      }
      byId("gcj-confirm-cancel").focus();
    });
  }

  var resizeTimer = null;
  function resize() {
    if (!(window.AP && window.AP.resize)) { return; }
    window.clearTimeout(resizeTimer);
    resizeTimer = window.setTimeout(function () { try { window.AP.resize(); } catch (e) { /* optional */ } }, 50);
  }

  // ---- pollers: one registry, all stopped when the view changes -------------------------------------

  var timers = {};
  function every(name, ms, fn) {
    stop(name);
    timers[name] = window.setTimeout(function tick() {
      if (!timers[name]) { return; }
      Promise.resolve(fn()).then(function (again) {
        if (timers[name] && again !== false) { timers[name] = window.setTimeout(tick, ms); } else { delete timers[name]; }
      }, function () {
        if (timers[name]) { timers[name] = window.setTimeout(tick, ms * 2); }
      });
    }, ms);
  }
  function stop(name) { if (timers[name]) { window.clearTimeout(timers[name]); delete timers[name]; } }
  function stopAll() { Object.keys(timers).forEach(stop); }

  // ---- shared data ------------------------------------------------------------------------------

  var cache = { providers: null, oauth: null, projects: null };

  function providers() {
    if (!cache.providers) {
      cache.providers = call("GET", "/api/providers").catch(function (err) { cache.providers = null; throw err; });
    }
    return cache.providers;
  }

  function oauthProviders() {
    if (!cache.oauth) {
      cache.oauth = call("GET", "/api/oauth/providers").catch(function () { return { providers: [] }; });
    }
    return cache.oauth;
  }

  function jiraProjects(refresh) {
    if (!cache.projects || refresh) {
      cache.projects = call("GET", "/api/jira-projects" + (refresh ? "?refresh=true" : "")).catch(function (err) {
        return { projects: [], error: err.message };
      });
    }
    return cache.projects;
  }

  // ---- router -------------------------------------------------------------------------------------

  var views = { integrations: byId("gcj-view-integrations"), wizard: byId("gcj-view-wizard"), integration: byId("gcj-view-integration"), queue: byId("gcj-view-queue") };

  function parseHash() {
    var hash = window.location.hash.replace(/^#/, "");
    var q = hash.indexOf("?");
    var path = q >= 0 ? hash.slice(0, q) : hash;
    var params = {};
    if (q >= 0) {
      hash.slice(q + 1).split("&").forEach(function (pair) {
        var kv = pair.split("=");
        if (kv[0]) { params[decodeURIComponent(kv[0])] = decodeURIComponent(kv[1] || ""); }
      });
    }
    return { parts: path.split("/").filter(Boolean), params: params };
  }

  function showView(name) {
    Object.keys(views).forEach(function (key) { show(views[key], key === name); });
    $$("[data-nav]").forEach(function (link) {
      var current = link.getAttribute("data-nav") === (name === "queue" ? "queue" : "integrations");
      if (current) { link.setAttribute("aria-current", "page"); } else { link.removeAttribute("aria-current"); }
    });
    resize();
  }

  function route() {
    stopAll();
    var where = parseHash();
    var head = where.parts[0] || "integrations";
    if (head === "add") {
      showView("wizard");
      wizard.open();
    } else if (head === "integration" && /^\d+$/.test(where.parts[1] || "")) {
      showView("integration");
      detail.open(parseInt(where.parts[1], 10), where.parts[2] || "settings");
    } else if (head === "queue") {
      showView("queue");
      queue.open(where.params);
    } else {
      showView("integrations");
      list.open();
    }
  }

  function focusHeading(view) {
    var heading = $("h2", view);
    if (heading) { heading.setAttribute("tabindex", "-1"); heading.focus({ preventScroll: true }); }
  }

  // ==== integrations list =============================================================================

  var list = (function () {
    var table = byId("gcj-integrations");
    var tbody = $("tbody", table);
    var empty = byId("gcj-integrations-empty");
    var loading = byId("gcj-integrations-loading");

    function open() {
      load(true);
    }

    function load(first) {
      return call("GET", "/api/integrations").then(function (data) {
        var rows = data.integrations || [];
        show(loading, false);
        show(empty, rows.length === 0);
        show(table, rows.length > 0);
        render(rows);
        var busy = rows.some(function (i) { return i.status === "indexing" || i.status === "pending"; });
        if (busy && !timers.list) { every("list", 4000, function () { return load(false); }); }
        if (first) { root.setAttribute("data-ready", "true"); }
        return busy;
      }).catch(function (err) {
        loading.textContent = err.message;
        show(loading, true);
        root.setAttribute("data-ready", "true");
        return false;
      });
    }

    function render(rows) {
      clear(tbody);
      rows.forEach(function (integration) { tbody.appendChild(row(integration)); });
      resize();
    }

    function row(i) {
      var tr = el("tr");
      tr.setAttribute("data-integration-id", String(i.id));
      var name = el("td", "gcj-name-cell");
      var link = el("a", "gcj-strong", i.display_name);
      link.href = "#integration/" + i.id;
      name.appendChild(link);
      var sub = [i.account_name, i.base_url].filter(Boolean).join(" · ");
      if (sub) { name.appendChild(el("span", "gcj-meta", sub)); }
      tr.appendChild(name);
      tr.appendChild(el("td", null, i.provider_name));
      tr.appendChild(el("td", null, AUTH_TYPES[i.auth_type] || i.auth_type));
      var status = el("td");
      status.appendChild(lozenge(i.status, INTEGRATION_STATUS));
      if (i.status_detail) { status.appendChild(el("span", "gcj-meta", i.status_detail)); }
      tr.appendChild(status);
      var last = el("td");
      last.appendChild(timeEl(i.last_indexed_at, "Never"));
      tr.appendChild(last);
      tr.appendChild(el("td", "gcj-num", num(i.repository_count)));
      var counters = el("td", "gcj-counters");
      counters.appendChild(el("span", "gcj-counter", plural(i.counters.commits, "commit", "commits")));
      counters.appendChild(el("span", "gcj-counter", plural(i.counters.branches, "branch", "branches")));
      counters.appendChild(el("span", "gcj-counter", plural(i.counters.pull_requests, "pull request", "pull requests")));
      tr.appendChild(counters);
      var features = el("td", "gcj-features");
      Object.keys(FEATURES).forEach(function (key) {
        if (i.features && i.features[key]) { features.appendChild(el("span", "gcj-tag", FEATURES[key])); }
      });
      tr.appendChild(features);
      tr.appendChild(actions(i));
      return tr;
    }

    function actions(i) {
      var td = el("td", "gcj-actions");
      if (i.auth_failed) {
        var fix = el("a", "gcj-button gcj-button-primary", credentialsAction(i));
        fix.href = "#integration/" + i.id + "/credentials";
        fix.setAttribute("aria-label", credentialsAction(i) + " for " + i.display_name);
        td.appendChild(fix);
      }
      var edit = el("a", "gcj-button gcj-button-subtle", "Edit");
      edit.href = "#integration/" + i.id;
      edit.setAttribute("aria-label", "Edit " + i.display_name);
      td.appendChild(edit);
      var reindex = button("Reindex now", "gcj-button-subtle", function () {
        reindex.disabled = true;
        call("POST", "/api/integrations/" + i.id + "/reindex").then(function (r) {
          flag("success", r.note || ("Reindex requested for " + plural(r.requested, "repository", "repositories") + " of " + i.display_name + "."));
          return load(false);
        }).catch(function (err) { flag("error", err.message); }).then(function () { reindex.disabled = false; });
      }, "Reindex " + i.display_name + " now");
      reindex.disabled = !i.enabled;
      td.appendChild(reindex);
      var toggle = button(i.enabled ? "Disable" : "Enable", "gcj-button-subtle", function () {
        toggle.disabled = true;
        call("PATCH", "/api/integrations/" + i.id, { enabled: !i.enabled }).then(function () {
          flag("success", i.display_name + (i.enabled ? " is disabled: no indexing until it is enabled again." : " is enabled again."));
          return load(false);
        }).catch(function (err) { flag("error", err.message); toggle.disabled = false; });
      }, (i.enabled ? "Disable " : "Enable ") + i.display_name);
      td.appendChild(toggle);
      var log = el("a", "gcj-button gcj-button-subtle", "View log");
      log.href = "#integration/" + i.id + "/log";
      log.setAttribute("aria-label", "View the log of " + i.display_name);
      td.appendChild(log);
      var runs = el("a", "gcj-button gcj-button-subtle", "Index runs");
      runs.href = "#queue?integration=" + i.id;
      runs.setAttribute("aria-label", "Index runs of " + i.display_name);
      td.appendChild(runs);
      td.appendChild(button("Disconnect", "gcj-button-subtle gcj-danger-text", function () { disconnect(i, this); }, "Disconnect " + i.display_name));
      return td;
    }

    function disconnect(i, anchor) {
      confirmAction("Disconnect " + i.display_name + "?", [
        "Its " + plural(i.repository_count, "repository", "repositories") + " and every commit, branch and pull request indexed from them are removed from Jira's issue panel.",
        "Webhooks Git Connect created on the host are deleted. The host itself and its repositories are not changed."
      ], "Disconnect", anchor).then(function (yes) {
        if (!yes) { return; }
        call("DELETE", "/api/integrations/" + i.id).then(function (r) {
          var text = i.display_name + " is disconnected (" + plural(r.repositories_removed, "repository", "repositories") + " removed).";
          flag("success", text);
          (r.webhooks.failed || []).forEach(function (f) {
            flag("warning", "The webhook on " + f.repository_name + " could not be deleted (" + f.error + "); remove it on the host.");
          });
          return load(false);
        }).catch(function (err) { flag("error", err.message); });
      });
    }

    return { open: open, load: load };
  })();

  // ==== settings fields (wizard and settings view) =========================================================

  function SettingsFields(scope) {
    this.scope = scope;
    this.keys = [];
    this.hint = null;
    var self = this;
    var picker = $("[data-project-picker]", scope);
    $$("input[type=radio][value=all], input[type=radio][value=some]", $("[data-project-association]", scope)).forEach(function (radio) {
      radio.addEventListener("change", function () {
        show(picker, self.projectsMode() === "some");
        if (self.projectsMode() === "some") { self.loadProjects(); }
        resize();
      });
    });
    $("[data-project-add]", scope).addEventListener("click", function () { self.addProject(); });
    $("[data-project-input]", scope).addEventListener("keydown", function (e) {
      if (e.key === "Enter") { e.preventDefault(); self.addProject(); }
    });
    var minutes = $("[data-field=reindex_interval_minutes]", scope);
    $$("input[type=radio][value=adaptive], input[type=radio][value=fixed]", scope).forEach(function (radio) {
      radio.addEventListener("change", function () { minutes.disabled = self.intervalMode() !== "fixed"; });
    });
    $$("[data-feature=smart_commits], [data-feature=development_panel]", scope).forEach(function (box) {
      box.addEventListener("change", function () { self.syncSmartCommits(); });
    });
    $("[data-use-hint]", scope).addEventListener("click", function () {
      if (!self.hint) { return; }
      $("input[type=radio][value=fixed]", scope).checked = true;
      minutes.disabled = false;
      minutes.value = String(self.hint.recommended_minutes);
      minutes.focus();
    });
  }

  // Who runs smart commits: only meaningful with the feature on; "jira" only when Jira sees the
  // commits at all (the Development panel feature), as connect_app.jira.smart_commits decides.
  SettingsFields.prototype.syncSmartCommits = function () {
    var scope = this.scope;
    var box = $("[data-smart-commits]", scope);
    var smart = $("[data-feature=smart_commits]", scope);
    var panel = $("[data-feature=development_panel]", scope);
    var on = !!(smart && smart.checked && !smart.disabled);
    var jiraCan = !!(panel && panel.checked && !panel.disabled);
    box.disabled = !on;
    var jira = $("[data-smart-by][value=jira]", scope);
    jira.disabled = !jiraCan;
    if (!jiraCan && jira.checked) { $("[data-smart-by][value=app]", scope).checked = true; }
    show($("[data-smart-note]", scope), on && !jiraCan);
  };

  SettingsFields.prototype.smartCommitsBy = function () {
    var checked = $("[data-smart-by]:checked", this.scope);
    return checked ? checked.value : "jira";
  };

  SettingsFields.prototype.projectsMode = function () {
    var checked = $("[data-project-association] input[type=radio]:checked", this.scope);
    return checked ? checked.value : "all";
  };

  SettingsFields.prototype.intervalMode = function () {
    var checked = $("input[type=radio][value=adaptive]:checked, input[type=radio][value=fixed]:checked", this.scope);
    return checked ? checked.value : "adaptive";
  };

  SettingsFields.prototype.loadProjects = function (refresh) {
    var self = this;
    var status = $("[data-project-status]", this.scope);
    var datalist = $("[data-project-list]", this.scope);
    status.textContent = "Loading Jira projects…";
    return jiraProjects(refresh).then(function (data) {
      self.projects = data.projects || [];
      clear(datalist);
      self.projects.forEach(function (p) {
        var option = el("option");
        option.value = p.key;
        option.label = p.name;
        datalist.appendChild(option);
      });
      status.textContent = data.error ? data.error
        : self.projects.length ? plural(self.projects.length, "project", "projects") + " on this site: type a key or a name."
        : "No projects were found on this site; type project keys.";
      self.renderChips();
    });
  };

  SettingsFields.prototype.projectName = function (key) {
    var found = (this.projects || []).filter(function (p) { return p.key === key; })[0];
    return found ? found.name : null;
  };

  SettingsFields.prototype.addProject = function () {
    var input = $("[data-project-input]", this.scope);
    var status = $("[data-project-status]", this.scope);
    var text = input.value.trim();
    if (!text) { return; }
    var lower = text.toLowerCase();
    var match = (this.projects || []).filter(function (p) { return p.key.toLowerCase() === lower || p.name.toLowerCase() === lower; })[0];
    var key = match ? match.key : text.toUpperCase();
    if (!/^[A-Z][A-Z0-9_]+$/.test(key)) {
      status.textContent = "“" + text + "” is not a Jira project key (a letter, then letters, digits or _, e.g. ABC).";
      input.setAttribute("aria-invalid", "true");
      return;
    }
    input.removeAttribute("aria-invalid");
    if (this.keys.indexOf(key) < 0) { this.keys.push(key); }
    input.value = "";
    status.textContent = key + " added.";
    this.renderChips();
    input.focus();
  };

  SettingsFields.prototype.renderChips = function () {
    var self = this;
    var chips = clear($("[data-project-chips]", this.scope));
    this.keys.forEach(function (key) {
      var li = el("li", "gcj-chip");
      var name = self.projectName(key);
      li.appendChild(el("span", null, name ? key + " — " + name : key));
      li.appendChild(button("×", "gcj-chip-remove", function () {
        self.keys = self.keys.filter(function (k) { return k !== key; });
        self.renderChips();
        $("[data-project-input]", self.scope).focus();
      }, "Remove " + key));
      chips.appendChild(li);
    });
    resize();
  };

  // Which switches the host supports (provider from /api/providers).
  SettingsFields.prototype.setProvider = function (provider) {
    var caps = provider.capabilities || [];
    var enforce = $("[data-field=enforce_permissions]", this.scope);
    var canEnforce = caps.indexOf("user_permissions") >= 0;
    enforce.disabled = !canEnforce;
    if (!canEnforce) { enforce.checked = false; }
    show($("[data-unsupported-note]", this.scope), !canEnforce);
    $$("[data-feature]", this.scope).forEach(function (box) {
      var need = FEATURE_NEEDS[box.getAttribute("data-feature")];
      var supported = !need || caps.indexOf(need) >= 0;
      box.disabled = !supported;
      if (!supported) { box.checked = false; }
      show($("[data-unsupported-feature]", box.parentElement), !supported);
    });
  };

  SettingsFields.prototype.fill = function (displayName, settings, hint) {
    var scope = this.scope;
    $("[data-field=display_name]", scope).value = displayName || "";
    $("[data-field=require_user_pat]", scope).checked = !!settings.require_user_pat;
    var enforce = $("[data-field=enforce_permissions]", scope);
    enforce.checked = !!settings.enforce_permissions && !enforce.disabled;
    this.keys = (settings.project_keys || []).slice();
    var some = this.keys.length > 0;
    $("[data-project-association] input[value=" + (some ? "some" : "all") + "]", scope).checked = true;
    show($("[data-project-picker]", scope), some);
    if (some) { this.loadProjects(); }
    this.renderChips();
    var minutes = $("[data-field=reindex_interval_minutes]", scope);
    var fixed = typeof settings.reindex_interval_minutes === "number";
    $("input[type=radio][value=" + (fixed ? "fixed" : "adaptive") + "]", scope).checked = true;
    minutes.disabled = !fixed;
    if (fixed) { minutes.value = String(settings.reindex_interval_minutes); }
    var features = settings.features || {};
    $$("[data-feature]", scope).forEach(function (box) {
      var key = box.getAttribute("data-feature");
      box.checked = !box.disabled && (key in features ? !!features[key] : true);
    });
    if (settings.branch_name_template) { $("[data-field=branch_name_template]", scope).value = settings.branch_name_template; }
    var by = settings.smart_commits_by === "app" || settings.smart_commits_by === "jira" ? settings.smart_commits_by
      : features.development_panel === false ? "app" : "jira";
    $("[data-smart-by][value=" + by + "]", scope).checked = true;
    var age = settings.smart_commits_max_age_days;
    $("[data-field=smart_commits_max_age_days]", scope).value = String(typeof age === "number" ? age : 14);
    this.syncSmartCommits();
    this.setHint(hint);
  };

  SettingsFields.prototype.setHint = function (hint) {
    this.hint = hint && hint.recommended_minutes ? hint : null;
    var text = $("[data-interval-hint]", this.scope);
    var use = $("[data-use-hint]", this.scope);
    if (!this.hint) {
      text.textContent = "The recommended interval is computed from the durations of recent runs, after the first index.";
    } else {
      text.textContent = "Recommended: every " + plural(this.hint.recommended_minutes, "minute", "minutes") +
        (this.hint.based_on_runs ? " (from the last " + plural(this.hint.based_on_runs, "run", "runs") +
          (typeof this.hint.average_run_seconds === "number" ? ", " + duration(Math.round(this.hint.average_run_seconds * 1000)) + " on average" : "") + ")." : ".");
    }
    show(use, !!this.hint);
  };

  // {display_name, settings} as the API takes them; throws {field, message} for what the page can tell.
  SettingsFields.prototype.read = function () {
    var scope = this.scope;
    var settings = {
      require_user_pat: $("[data-field=require_user_pat]", scope).checked,
      enforce_permissions: $("[data-field=enforce_permissions]", scope).checked,
      project_keys: this.projectsMode() === "some" ? this.keys.slice() : [],
      reindex_interval_minutes: null,
      features: {},
      branch_name_template: $("[data-field=branch_name_template]", scope).value.trim()
    };
    if (this.projectsMode() === "some" && settings.project_keys.length === 0) {
      throw fieldProblem("settings.project_keys", "Add at least one Jira project, or choose “All projects”.");
    }
    if (this.intervalMode() === "fixed") {
      var minutes = $("[data-field=reindex_interval_minutes]", scope);
      var value = Number(minutes.value);
      if (!/^\d+$/.test(minutes.value.trim()) || value < Number(minutes.min) || value > Number(minutes.max)) {
        throw fieldProblem("settings.reindex_interval_minutes", "The interval must be a whole number of minutes between " + minutes.min + " and " + minutes.max + ".");
      }
      settings.reindex_interval_minutes = value;
    }
    $$("[data-feature]", scope).forEach(function (box) {
      if (!box.disabled) { settings.features[box.getAttribute("data-feature")] = box.checked; }
    });
    settings.smart_commits_by = this.smartCommitsBy();
    var age = $("[data-field=smart_commits_max_age_days]", scope);
    var days = Number(age.value);
    if (!/^\d+$/.test(age.value.trim()) || days < Number(age.min) || days > Number(age.max)) {
      throw fieldProblem("settings.smart_commits_max_age_days", "The age limit for smart commits must be a whole number of days between " + age.min + " and " + age.max + ".");
    }
    settings.smart_commits_max_age_days = days;
    if (settings.branch_name_template.indexOf("${issuekey}") < 0) {
      throw fieldProblem("settings.branch_name_template", "The branch name template must contain ${issuekey}, or new branches would not link to their issue.");
    }
    return { display_name: $("[data-field=display_name]", scope).value.trim(), settings: settings };
  };

  function fieldProblem(field, message) {
    var err = new Error(message);
    err.field = field;
    return err;
  }

  // ==== Add-integration wizard ===============================================================================

  var wizard = (function () {
    var view = views.wizard;
    var form = byId("gcj-wizard");
    var steps = ["host", "connect", "repositories", "settings", "finish"];
    var settingsFields = new SettingsFields($("[data-step=settings] [data-settings]", form));
    var w = null; // the wizard's state, fresh on every open

    function reset() {
      stop("oauth");
      stop("progress");
      w = { provider: null, authType: null, checked: false, account: null, repos: null, listError: null, truncated: false, picked: {}, flow: null, flowStatus: null, created: null, checkAttempt: 0 };
      form.reset();
      clearErrors(form);
      $$("[data-step-nav]", view).forEach(function (li) { li.className = ""; li.removeAttribute("aria-current"); });
      show(byId("gcj-progress"), false);
      show(byId("gcj-finish-actions"), true);
      $("[data-action=finish]", form).disabled = false;
      byId("gcj-check-result").textContent = "";
      byId("gcj-list-result").textContent = "";
      byId("gcj-oauth-status").textContent = "";
      show(byId("gcj-oauth-link"), false);
      byId("gcj-progress").removeAttribute("data-state");
    }

    function open() {
      reset();
      goStep("host", false);
      focusHeading(view);
      var grid = clear(byId("gcj-providers"));
      grid.appendChild(el("p", "gcj-muted", "Loading hosts…"));
      Promise.all([providers(), oauthProviders()]).then(function (results) {
        var oauth = {};
        (results[1].providers || []).forEach(function (p) { oauth[p.id] = p.configured; });
        w.oauthConfigured = oauth;
        renderProviders(results[0]);
      }).catch(function (err) { clear(grid).appendChild(el("p", "gcj-field-error", err.message)); });
    }

    function renderProviders(list) {
      var grid = clear(byId("gcj-providers"));
      w.providers = {};
      list.forEach(function (p, index) {
        w.providers[p.id] = p;
        var label = el("label", "gcj-provider");
        var radio = el("input");
        radio.type = "radio";
        radio.name = "gcj-provider";
        radio.value = p.id;
        if (index === 0) { radio.checked = true; }
        label.appendChild(radio);
        var text = el("span", "gcj-provider-text");
        text.appendChild(el("span", "gcj-provider-name", p.name));
        text.appendChild(el("span", "gcj-meta", p.id === "git" ? "One repository by URL" : p.self_hosted ? "Self-hosted" : "Cloud"));
        label.appendChild(text);
        radio.addEventListener("dblclick", function () { next(); });
        grid.appendChild(label);
      });
      resize();
    }

    function goStep(name, focus) {
      w.step = name;
      var index = steps.indexOf(name);
      $$("[data-step]", form).forEach(function (fs) { show(fs, fs.getAttribute("data-step") === name); });
      $$("[data-step-nav]", view).forEach(function (li) {
        var i = steps.indexOf(li.getAttribute("data-step-nav"));
        li.className = i < index ? "gcj-step-done" : i === index ? "gcj-step-current" : "";
        if (i === index) { li.setAttribute("aria-current", "step"); } else { li.removeAttribute("aria-current"); }
      });
      if (focus !== false) {
        var step = $("[data-step=" + name + "]", form);
        var target = $$("input:not([disabled]), textarea, select, button:not([disabled])", step).filter(function (n) {
          return active(n) && (n.type !== "radio" || n.checked);
        })[0];
        if (target) { target.focus(); }
      }
      resize();
    }

    function provider() { return w.provider; }

    // -- step 1 -> 2
    function chooseProvider() {
      var checked = $("input[name=gcj-provider]:checked", form);
      if (!checked) { showError(form, fieldProblem("provider", "Choose a git host.")); return false; }
      var p = w.providers[checked.value];
      if (!w.provider || w.provider.id !== p.id) { setupConnect(p); }
      return true;
    }

    var BASE_URL = {
      git: ["Repository URL", "The clone URL, e.g. https://git.example.com/team/app.git or ssh://git@git.example.com/team/app.git"],
      "github-enterprise": ["Server URL", "e.g. https://github.example.com"],
      "gitlab-self-managed": ["Server URL", "e.g. https://gitlab.example.com"],
      "bitbucket-datacenter": ["Server URL", "e.g. https://bitbucket.example.com"],
      "azure-devops-server": ["Collection URL", "e.g. https://tfs.example.com/tfs/DefaultCollection"],
      gerrit: ["Server URL", "e.g. https://review.example.com"]
    };
    var NAMESPACE = {
      github: ["Organization or user (optional)", "Only this organization's (or user's) repositories; empty: every repository the token can read."],
      "github-enterprise": ["Organization or user (optional)", "Only this organization's (or user's) repositories."],
      gitlab: ["Group (optional)", "Only this group's projects (full path, e.g. acme/platform)."],
      "gitlab-self-managed": ["Group (optional)", "Only this group's projects (full path, e.g. acme/platform)."],
      "bitbucket-cloud": ["Workspace (optional)", "Only this workspace's repositories."],
      "bitbucket-datacenter": ["Project key (optional)", "Only this project's repositories."],
      "azure-devops": ["Organization", "Your organization's name, as in https://dev.azure.com/<organization>."]
    };
    var TOKEN_HELP = {
      github: "A classic token with the repo, admin:repo_hook and read:user scopes, or a fine-grained token with read access to contents, metadata and pull requests (and webhooks).",
      "github-enterprise": "A classic token with the repo, admin:repo_hook and read:user scopes.",
      gitlab: "A personal, group or project access token with the api scope (read_api to index only).",
      "gitlab-self-managed": "A personal, group or project access token with the api scope (read_api to index only).",
      "bitbucket-cloud": "A workspace, project or repository access token with repository and pull request read access (webhooks: write).",
      "bitbucket-datacenter": "An HTTP access token with repository read permission (project admin to register webhooks).",
      "azure-devops": "A personal access token with the Code (read & write) and Service hooks scopes.",
      "azure-devops-server": "A personal access token with the Code (read & write) and Service hooks scopes.",
      git: "Sent as the password over HTTPS (the user name defaults to the server's convention)."
    };

    function setupConnect(p) {
      w.provider = p;
      w.checked = false;
      w.repos = null;
      w.picked = {};
      w.flow = null;
      w.flowStatus = null;
      stop("oauth");
      $$("[data-provider-name]", view).forEach(function (n) { n.textContent = p.name; });
      var connect = $("[data-step=connect]", form);
      $$("input:not([type=radio]), textarea", connect).forEach(function (input) { input.value = ""; input.removeAttribute("aria-invalid"); });
      clearErrors(connect);
      byId("gcj-check-result").textContent = "";
      byId("gcj-list-result").textContent = "";
      byId("gcj-oauth-status").textContent = "";
      show(byId("gcj-oauth-link"), false);
      var base = BASE_URL[p.id];
      show($("[data-when=base-url]", connect), !!p.self_hosted);
      if (p.self_hosted) {
        $("[data-base-url-label]", connect).textContent = base ? base[0] : "Server URL";
        $("[data-base-url-help]", connect).textContent = base ? base[1] : "";
        byId("gcj-base-url").type = p.id === "git" ? "text" : "url";
      }
      var ns = NAMESPACE[p.id];
      show($("[data-when=namespace]", connect), !!ns);
      if (ns) {
        $("[data-namespace-label]", connect).textContent = ns[0];
        $("[data-namespace-help]", connect).textContent = ns[1];
      }
      show($("[data-when=api-url]", connect), !p.self_hosted && p.id !== "aws-codecommit");
      $("[data-default-api-url]", connect).textContent = p.name + "'s public API";
      $("[data-token-help]", connect).textContent = TOKEN_HELP[p.id] || "";
      show($("[data-when=pat-username]", connect), p.id === "git");
      $("[data-password-label]", connect).textContent = p.id === "bitbucket-cloud" ? "App password" : p.id === "gerrit" ? "HTTP password" : "Password";
      var types = clear(byId("gcj-auth-types"));
      var first = null;
      p.auth_types.forEach(function (type) {
        var wrap = el("div", "gcj-radio");
        var radio = el("input");
        radio.type = "radio";
        radio.name = "gcj-auth-type";
        radio.value = type;
        radio.id = "gcj-auth-" + type;
        var label = el("label", null, AUTH_TYPES[type] || type);
        label.htmlFor = radio.id;
        wrap.appendChild(radio);
        wrap.appendChild(label);
        if (type === "oauth" && !(w.oauthConfigured || {})[p.id]) {
          radio.disabled = true;
          wrap.appendChild(el("span", "gcj-help", "(not set up on this app; an administrator of the app sets its OAuth client)"));
        } else if (!first) {
          first = radio;
        }
        radio.addEventListener("change", function () { setAuthType(type); });
        types.appendChild(wrap);
      });
      if (first) { first.checked = true; setAuthType(first.value); }
      $("[data-action=next]", connect).disabled = true;
      settingsFields.fill("", { features: {} }, null);
      settingsFields.setProvider(p);
      resize();
    }

    function setAuthType(type) {
      w.authType = type;
      $$("[data-auth]", form).forEach(function (box) { show(box, box.getAttribute("data-auth") === type); });
      invalidate();
      resize();
    }

    function invalidate() {
      w.checked = false;
      w.checkAttempt = (w.checkAttempt || 0) + 1;
      w.repos = null;
      w.listError = null;
      w.picked = {};
      var connect = $("[data-step=connect]", form);
      $("[data-action=next]", connect).disabled = true;
      byId("gcj-check-result").textContent = "";
      byId("gcj-list-result").textContent = "";
    }

    // Whether an input is part of the form as it stands: not inside a hidden block of its step
    // (the step itself may be hidden: the summary reads the connect step from the finish step).
    function active(node) {
      for (var n = node; n && n !== form; n = n.parentElement) {
        if (n.hasAttribute("data-step")) { return true; }
        if (n.hidden) { return false; }
      }
      return true;
    }

    function value(id) { var n = byId(id); return n && active(n) ? n.value.trim() : ""; }

    function connection() {
      var p = provider();
      var data = { provider: p.id };
      var url = p.self_hosted ? value("gcj-base-url") : value("gcj-api-url");
      if (url) { data.base_url = url; }
      var ns = value("gcj-namespace");
      if (ns) { data.namespace = ns; }
      if (w.authType !== "oauth") {
        var auth = { type: w.authType };
        $$("[data-auth=" + w.authType + "] [data-cred]", form).forEach(function (input) {
          if (active(input) && input.value.trim()) { auth[input.getAttribute("data-cred")] = input.value.trim(); }
        });
        data.auth = auth;
      }
      return data;
    }

    function check() {
      var connect = $("[data-step=connect]", form);
      clearErrors(connect);
      var result = byId("gcj-check-result");
      var p = provider();
      if (p.self_hosted && !value("gcj-base-url")) {
        showError(connect, fieldProblem("base_url", (BASE_URL[p.id] ? BASE_URL[p.id][0] : "The server URL") + " is required."));
        return Promise.resolve(false);
      }
      if (w.authType === "oauth" && w.flowStatus !== "authorized") {
        showError(connect, fieldProblem("auth", "Sign in with " + p.name + " first."));
        return Promise.resolve(false);
      }
      var checkButton = $("[data-action=check]", connect);
      var nextButton = $("[data-action=next]", connect);
      checkButton.disabled = true;
      result.className = "gcj-check-result";
      result.textContent = "Checking the connection with " + p.name + "…";
      var single = p.id === "git"; // one repository: listing it is part of the check
      var attempt = w.checkAttempt = (w.checkAttempt || 0) + 1;
      function validate(listing) {
        var options = listing ? { list_repositories: true, limit: 1000 } : {};
        return w.authType === "oauth"
          ? call("POST", "/api/oauth/flows/" + encodeURIComponent(w.flow) + "/validate", options)
          : call("POST", "/api/integrations/validate", Object.assign(connection(), options));
      }
      return validate(single).then(function (r) {
        w.checked = true;
        w.account = r.account_name;
        w.repos = single ? r.repositories || [] : null;
        w.listError = null;
        result.className = "gcj-check-result gcj-ok";
        result.textContent = "Connected" + (r.account_name ? " as " + r.account_name : "") + ".";
        nextButton.disabled = false;
        nextButton.focus();
        if (!single && (p.capabilities || []).indexOf("list_repositories") >= 0) { listRepositories(attempt, validate); }
        return true;
      }).catch(function (err) {
        result.className = "gcj-check-result";
        result.textContent = "";
        var shown = showError(connect, err, $("[data-error-for=auth]", connect));
        if (!shown) { result.textContent = err.message; }
        return false;
      }).then(function (ok) { checkButton.disabled = false; return ok; });
    }

    // The repositories to pick from, read after the credentials passed; a failure here does not
    // block the wizard (all repositories can still be chosen, or names typed).
    function listRepositories(attempt, validate) {
      var note = byId("gcj-list-result");
      note.textContent = "Reading the repository list…";
      w.listing = validate(true).then(function (r) {
        if (attempt !== w.checkAttempt) { return; }
        w.repos = r.repositories || [];
        w.truncated = !!r.truncated;
        note.textContent = w.repos.length + (w.repos.length === 1 ? " repository is" : " repositories are") + " visible to these credentials" +
          (w.truncated ? " (only the first " + w.repos.length + " are listed here)" : "") + ".";
      }).catch(function (err) {
        if (attempt !== w.checkAttempt) { return; }
        w.repos = null;
        w.listError = err.message;
        note.textContent = "The repository list could not be read (" + err.message + "). You can still choose all repositories, or type the names of the ones to index.";
      }).then(function () { if (w.step === "repositories") { renderRepoOptions(); } });
    }

    // -- OAuth: a popup to the host, the wizard polls the flow
    function startOAuth() {
      var p = provider();
      var connect = $("[data-step=connect]", form);
      clearErrors(connect);
      var status = byId("gcj-oauth-status");
      var link = byId("gcj-oauth-link");
      var popup = window.open("", "gcj-oauth", "popup=yes,width=760,height=800");
      var data = { provider: p.id };
      var url = p.self_hosted ? value("gcj-base-url") : value("gcj-api-url");
      if (url) { data.base_url = url; }
      if (value("gcj-namespace")) { data.namespace = value("gcj-namespace"); }
      status.textContent = "Starting the sign-in…";
      invalidate();
      call("POST", "/api/oauth/flows", data).then(function (flow) {
        w.flow = flow.id;
        w.flowStatus = flow.status;
        link.href = flow.authorize_url;
        show(link, true);
        if (popup && !popup.closed) {
          popup.location.href = flow.authorize_url;
          status.textContent = "Sign in on " + p.name + " in the window that opened, then come back here.";
        } else {
          status.textContent = "Your browser blocked the sign-in window: use “Open the sign-in page”.";
        }
        every("oauth", 1500, pollFlow);
      }).catch(function (err) {
        if (popup && !popup.closed) { popup.close(); }
        status.textContent = "";
        showError(connect, err, $("[data-error-for=auth]", connect));
      });
    }

    function pollFlow() {
      if (!w.flow) { return false; }
      var status = byId("gcj-oauth-status");
      return call("GET", "/api/oauth/flows/" + encodeURIComponent(w.flow)).then(function (flow) {
        w.flowStatus = flow.status;
        if (flow.status === "authorized") {
          status.textContent = "Signed in to " + provider().name + ".";
          show(byId("gcj-oauth-link"), false);
          check();
          return false;
        }
        if (flow.status === "failed") {
          status.textContent = "";
          showError($("[data-step=connect]", form), fieldProblem("auth", flow.error || "The sign-in failed."));
          show(byId("gcj-oauth-link"), false);
          return false;
        }
        return true;
      }).catch(function (err) {
        status.textContent = err.status === 404 ? "The sign-in expired. Choose “Sign in” again." : err.message;
        return err.status !== 404;
      });
    }

    window.addEventListener("message", function (event) {
      if (event.origin !== window.location.origin || !event.data || event.data.type !== "gcj-oauth") { return; }
      if (w && w.flow && event.data.flow === w.flow) { pollFlow(); }
    });

    // -- step 3: repositories
    function setupRepositories() {
      var step = $("[data-step=repositories]", form);
      var single = provider().id === "git";
      show($("[data-when=repo-choice]", step), !single);
      show($("[data-when=single-repo]", step), single);
      if (single) {
        byId("gcj-single-repo").textContent = (w.repos && w.repos[0] && w.repos[0].name) || value("gcj-base-url");
      }
      var canList = (provider().capabilities || []).indexOf("list_repositories") >= 0;
      $("#gcj-repos-picked", step).disabled = !canList;
      renderRepoOptions();
    }

    function repoChoice() {
      var checked = $("input[name=gcj-repos]:checked", form);
      return checked ? checked.value : "all_future";
    }

    function renderRepoOptions() {
      var picker = byId("gcj-repo-picker");
      show(picker, repoChoice() === "picked");
      if (repoChoice() !== "picked") { resize(); return; }
      var manual = w.repos === null;
      show(byId("gcj-repo-listed"), !manual);
      show(byId("gcj-repo-manual"), manual);
      if (manual) {
        byId("gcj-repo-manual-note").textContent = w.listError
          ? "The host's repository list could not be read: type the full names (or ids) of the repositories, one per line."
          : "Reading the repository list… You can also type full names (or ids), one per line.";
        resize();
        return;
      }
      var search = byId("gcj-repo-search").value.trim().toLowerCase();
      var listEl = clear(byId("gcj-repo-options"));
      var repos = w.repos || [];
      var shown = 0;
      repos.forEach(function (r, i) {
        if (search && r.name.toLowerCase().indexOf(search) < 0) { return; }
        if (shown >= 300) { return; }
        shown += 1;
        var li = el("li", "gcj-option");
        var box = el("input");
        box.type = "checkbox";
        box.id = "gcj-repo-option-" + i;
        box.value = r.external_id;
        box.checked = !!w.picked[r.external_id];
        box.addEventListener("change", function () {
          if (box.checked) { w.picked[r.external_id] = r.name; } else { delete w.picked[r.external_id]; }
          clearErrors($("[data-step=repositories]", form));
          countRepos(shown);
        });
        var label = el("label", null, r.name);
        label.htmlFor = box.id;
        li.appendChild(box);
        li.appendChild(label);
        if (r.private === false) { li.appendChild(el("span", "gcj-tag", "public")); }
        listEl.appendChild(li);
      });
      countRepos(shown);
      resize();
    }

    function countRepos(shown) {
      var picked = Object.keys(w.picked).length;
      var total = (w.repos || []).length;
      byId("gcj-repo-count").textContent = plural(picked, "repository", "repositories") + " picked · showing " + shown + " of " + total +
        (w.truncated ? " (the host listed more: search narrows the first " + total + ")" : "");
    }

    $$("input[name=gcj-repos]", form).forEach(function (radio) { radio.addEventListener("change", renderRepoOptions); });
    byId("gcj-repo-search").addEventListener("input", renderRepoOptions);
    byId("gcj-repo-names").addEventListener("input", function () { clearErrors($("[data-step=repositories]", form)); });

    function typedRepositories() {
      return byId("gcj-repo-names").value.split(/[\r\n,]+/).map(function (x) { return x.trim(); }).filter(Boolean);
    }

    // The API's "repositories" (undefined for plain git: the integration is its one repository).
    function repositoriesValue() {
      if (provider().id === "git") { return undefined; }
      var choice = repoChoice();
      if (choice === "picked" && w.repos === null) {
        var typed = typedRepositories();
        if (!typed.length) { throw fieldProblem("repositories", "Type at least one repository name, or choose all repositories."); }
        typed.forEach(function (name) { w.picked[name] = name; });
        return typed;
      }
      if (choice === "picked") {
        var ids = Object.keys(w.picked);
        if (!ids.length) { throw fieldProblem("repositories", "Pick at least one repository, or choose all repositories."); }
        return ids;
      }
      return choice;
    }

    // -- step 5: summary and Finish
    function summary() {
      var dl = clear(byId("gcj-summary"));
      var p = provider();
      var s = settingsFields.read();
      function item(term, text) { dl.appendChild(el("dt", null, term)); dl.appendChild(el("dd", null, text)); }
      item("Host", p.name);
      var url = p.self_hosted ? value("gcj-base-url") : value("gcj-api-url");
      if (url) { item(p.id === "git" ? "Repository" : "Server", url); }
      if (value("gcj-namespace")) { item("Namespace", value("gcj-namespace")); }
      item("Account", w.account || "—");
      item("Authentication", AUTH_TYPES[w.authType] || w.authType);
      var repos = repositoriesValue();
      item("Repositories", Array.isArray(repos) ? plural(repos.length, "picked repository", "picked repositories") + ": " + repos.map(function (id) { return w.picked[id]; }).join(", ") : repos === undefined ? "This repository" : SELECTION[repos]);
      item("Display name", s.display_name || "(automatic)");
      item("Jira projects", s.settings.project_keys.length ? s.settings.project_keys.join(", ") : "All projects");
      item("Reindex interval", s.settings.reindex_interval_minutes ? "Every " + plural(s.settings.reindex_interval_minutes, "minute", "minutes") : "Adaptive");
      var on = Object.keys(s.settings.features).filter(function (k) { return s.settings.features[k]; }).map(function (k) { return FEATURES[k]; });
      item("Features", on.length ? on.join(", ") : "None");
      if (s.settings.features.smart_commits) {
        item("Smart commits", (s.settings.smart_commits_by === "app" ? "Run by Git Connect" : "Run by Jira") + ", commits of the last " + plural(s.settings.smart_commits_max_age_days, "day", "days"));
      }
      item("Branch name template", s.settings.branch_name_template);
    }

    var STEP_OF_FIELD = { provider: "host", base_url: "connect", namespace: "connect", auth: "connect", repositories: "repositories", display_name: "settings", settings: "settings" };

    function finish() {
      var finishButton = $("[data-action=finish]", form);
      var errorBox = byId("gcj-finish-error");
      clearErrors(form);
      var s;
      var repos;
      try { s = settingsFields.read(); repos = repositoriesValue(); } catch (err) { return fail(err); }
      var payload = { settings: s.settings };
      if (repos !== undefined) { payload.repositories = repos; }
      if (s.display_name) { payload.display_name = s.display_name; }
      finishButton.disabled = true;
      errorBox.hidden = true;
      var request = w.authType === "oauth"
        ? call("POST", "/api/oauth/flows/" + encodeURIComponent(w.flow) + "/integration", payload)
        : call("POST", "/api/integrations", Object.assign(connection(), payload));
      request.then(function (created) {
        w.created = created;
        stop("oauth");
        show(byId("gcj-finish-actions"), false);
        startProgress(created);
      }).catch(function (err) { finishButton.disabled = false; fail(err); });

      function fail(err) {
        var step = STEP_OF_FIELD[(err.field || "").split(/[.[]/)[0]];
        if (step) {
          goStep(step, false);
          if (errorTargets($("[data-step=" + step + "]", form), err.field)) {
            showError($("[data-step=" + step + "]", form), err);
            return;
          }
          goStep("finish", false);
        }
        errorBox.textContent = err.message;
        errorBox.hidden = false;
        errorBox.setAttribute("tabindex", "-1");
        errorBox.focus();
        resize();
      }
    }

    // -- initial index progress (polls the integration and its runs)
    function startProgress(created) {
      var section = byId("gcj-progress");
      show(section, true);
      section.setAttribute("data-state", "running");
      section.setAttribute("data-integration-id", String(created.id));
      byId("gcj-progress-open").href = "#integration/" + created.id;
      byId("gcj-progress-queue").href = "#queue?integration=" + created.id;
      byId("gcj-progress-text").textContent = created.note || (created.display_name + " is connected. Indexing starts…");
      flag("success", created.display_name + " is connected.");
      section.scrollIntoView({ block: "nearest" });
      $("h3", section).setAttribute("tabindex", "-1");
      $("h3", section).focus({ preventScroll: true });
      every("progress", 1500, function () { return progress(created.id, created.note); });
    }

    function progress(id, note) {
      return Promise.all([
        call("GET", "/api/integrations/" + id),
        call("GET", "/api/index-runs" + query({ integration: id, limit: 50 }))
      ]).then(function (results) {
        var i = results[0];
        var runs = results[1].runs || [];
        var active = runs.some(function (r) { return r.status === "queued" || r.status === "running"; });
        var by = i.repositories.by_status || {};
        var total = i.repositories.enabled || 0;
        var waiting = (by["new"] || 0) + (by.queued || 0) + (by.indexing || 0);
        var bar = byId("gcj-progress-bar");
        bar.max = Math.max(total, 1);
        bar.value = Math.max(0, total - waiting);
        var text;
        var finished = !active && ["indexed", "error", "rate_limited", "disabled"].indexOf(i.status) >= 0;
        if (finished && i.status === "indexed") {
          text = "Initial index finished: " + plural(i.counters.commits, "commit", "commits") + ", " + plural(i.counters.branches, "branch", "branches") + " and " +
            plural(i.counters.pull_requests, "pull request", "pull requests") + " in " + plural(total, "repository", "repositories") + ".";
        } else if (finished) {
          text = "Initial index finished with problems: " + (i.status_detail || INTEGRATION_STATUS[i.status]) + ". The queue viewer shows each run's error.";
        } else if (i.last_discovery && (i.last_discovery.status === "queued" || i.last_discovery.status === "running")) {
          text = "Listing the repositories on " + i.provider_name + "…";
        } else if (!total && !active) {
          text = note || "Waiting for the job queue to pick the work up…";
        } else {
          text = "Indexing: " + (total - waiting) + " of " + plural(total, "repository", "repositories") + " done · " + plural(i.counters.commits, "commit", "commits") + " so far.";
        }
        byId("gcj-progress-text").textContent = text;
        var hook = i.webhook || {};
        byId("gcj-progress-webhook").textContent = !(i.features && i.features.webhooks) ? ""
          : hook.manual ? "Webhooks: add the webhook on the host yourself" + (hook.manual_reason ? " (" + hook.manual_reason + ")" : "") + "; the integration's settings show its URL and secret."
          : "Webhooks: Git Connect registers them on each repository where the credentials allow it; the integration's settings show the URL and secret to add one by hand.";
        renderProgressRuns(runs);
        var section = byId("gcj-progress");
        section.setAttribute("data-status", i.status);
        if (finished) { section.setAttribute("data-state", "done"); return false; }
        return true;
      });
    }

    function renderProgressRuns(runs) {
      var ul = clear(byId("gcj-progress-runs"));
      runs.slice(0, 20).forEach(function (r) {
        var li = el("li", "gcj-item");
        li.appendChild(lozenge(r.status, RUN_STATUS));
        li.appendChild(el("span", null, r.kind === "discover" ? "List repositories" : (r.repository_name || "Repository")));
        var meta = [];
        if (r.duration_ms !== null) { meta.push(duration(r.duration_ms)); }
        if (r.counts && r.counts.commits_seen) { meta.push(plural(r.counts.commits_seen, "commit", "commits") + " read"); }
        if (meta.length) { li.appendChild(el("span", "gcj-meta", meta.join(" · "))); }
        if (r.error) { li.appendChild(el("span", "gcj-meta gcj-error-text", r.error)); }
        ul.appendChild(li);
      });
      resize();
    }

    // -- buttons
    form.addEventListener("submit", function (e) { e.preventDefault(); });
    // Enter in a field moves on as the step's main button would (checking the connection first
    // on the connect step); fields with their own Enter (the project picker) prevent this.
    form.addEventListener("keydown", function (e) {
      if (e.key !== "Enter" || e.defaultPrevented || e.isComposing) { return; }
      var target = e.target;
      if (!target.matches || !target.matches("input:not([type=checkbox]):not([type=radio]):not([type=button]):not([type=submit]), select")) { return; }
      var step = $("[data-step=" + w.step + "]", form);
      var main = $("[data-action=next]:not([disabled]), [data-action=finish]:not([disabled])", step) ||
        (w.step === "connect" ? $("[data-action=check]:not([disabled])", step) : null);
      if (!main || $("#gcj-finish-actions", form).hidden && w.step === "finish") { return; }
      e.preventDefault();
      main.click();
    });
    form.addEventListener("click", function (e) {
      var target = e.target.closest("[data-action]");
      if (!target || !form.contains(target)) { return; }
      var action = target.getAttribute("data-action");
      var index = steps.indexOf(w.step);
      if (action === "back") { goStep(steps[Math.max(0, index - 1)]); return; }
      if (action === "check") { check(); return; }
      if (action === "finish") { finish(); return; }
      if (action === "next") {
        clearErrors($("[data-step=" + w.step + "]", form));
        if (w.step === "host") { if (chooseProvider()) { goStep("connect"); } return; }
        if (w.step === "connect") {
          if (!w.checked) { check(); return; }
          setupRepositories();
          goStep("repositories");
          return;
        }
        if (w.step === "repositories") {
          try { repositoriesValue(); } catch (err) { showError($("[data-step=repositories]", form), err); return; }
          goStep("settings");
          return;
        }
        if (w.step === "settings") {
          try { settingsFields.read(); } catch (err) { showError($("[data-step=settings]", form), err); return; }
          summary();
          goStep("finish");
        }
      }
    });
    byId("gcj-oauth-start").addEventListener("click", startOAuth);
    $$("[data-step=connect] input:not([type=radio]), [data-step=connect] textarea", form).forEach(function (input) {
      input.addEventListener("input", function () {
        if (w && w.checked) { invalidate(); }
        if (w && w.flow && (input.id === "gcj-base-url" || input.id === "gcj-api-url" || input.id === "gcj-namespace")) {
          w.flow = null;
          w.flowStatus = null;
          stop("oauth");
          byId("gcj-oauth-status").textContent = "The server changed: sign in again.";
        }
      });
    });

    return { open: open };
  })();

  // ==== one integration: settings and repositories ==============================================================

  var detail = (function () {
    var view = views.integration;
    var formEl = byId("gcj-settings-form");
    var settingsFields = new SettingsFields($("[data-settings]", formEl));
    show($("[data-webhook-wizard-note]", formEl), false); // the webhook block below says it here
    var reposPanel = $("[data-panel=repositories]", view);
    var tbody = $("#gcj-repositories tbody", view);
    var d = { id: null, integration: null, offset: 0, total: 0 };
    var LIMIT = 100;

    function open(id, panel) {
      if (d.id !== id) { d = { id: id, integration: null, offset: 0, total: 0 }; }
      if (panel !== "settings" && panel !== "repositories" && !gcj.panels[panel]) { panel = "settings"; }
      $$("[data-subnav]", view).forEach(function (link) {
        var name = link.getAttribute("data-subnav");
        link.href = "#integration/" + id + (name === "settings" ? "" : "/" + name);
        if (name === panel) { link.setAttribute("aria-current", "page"); } else { link.removeAttribute("aria-current"); }
      });
      $("[data-subnav-runs]", view).href = "#queue?integration=" + id;
      $$("[data-panel]", view).forEach(function (node) { show(node, node.getAttribute("data-panel") === panel); });
      clearErrors(formEl);
      load(panel).then(function () { focusHeading(view); });
    }

    // The host refused the credentials: say so above every panel, with the way out.
    function attention(i) {
      var box = byId("gcj-attention");
      var needs = !!i.auth_failed;
      show(box, needs);
      if (!needs) { return; }
      byId("gcj-attention-text").textContent = (i.status_detail || "The host refused this integration's credentials.") +
        " Indexing is paused until new credentials are saved.";
      var action = byId("gcj-attention-action");
      action.textContent = credentialsAction(i);
      action.href = "#integration/" + i.id + "/credentials";
    }

    function load(panel) {
      return call("GET", "/api/integrations/" + d.id).then(function (i) {
        d.integration = i;
        attention(i);
        byId("gcj-integration-title").textContent = i.display_name;
        var status = byId("gcj-integration-status");
        status.className = "gcj-lozenge gcj-lozenge-" + (TONE[i.status] || "default");
        status.textContent = INTEGRATION_STATUS[i.status] || i.status;
        status.setAttribute("data-status", i.status);
        byId("gcj-integration-meta").textContent = [i.provider_name, i.account_name, i.base_url, AUTH_TYPES[i.auth_type] || i.auth_type, SELECTION[i.repository_selection] || ""].filter(Boolean).join(" · ");
        if (panel === "settings") { fillSettings(i); } else if (panel === "repositories") { loadRepos(true); } else { gcj.panels[panel].open(i); }
        root.setAttribute("data-ready", "true");
      }).catch(function (err) {
        byId("gcj-integration-title").textContent = "Integration";
        flag("error", err.message);
      });
    }

    function fillSettings(i) {
      formEl.removeAttribute("data-loaded");
      providers().then(function (list) {
        var p = list.filter(function (x) { return x.id === i.provider; })[0];
        if (p) { settingsFields.setProvider(p); }
        settingsFields.fill(i.display_name, i.settings, i.reindex_interval_hint);
        formEl.setAttribute("data-loaded", String(i.id));
        resize();
      }).catch(function (err) { flag("error", err.message); });
      var hook = i.webhook || {};
      byId("gcj-webhook-url").value = hook.url || "";
      var secret = byId("gcj-webhook-secret");
      secret.value = hook.secret || "";
      secret.type = "password";
      byId("gcj-webhook-reveal").textContent = "Show";
      byId("gcj-webhook-reveal").setAttribute("aria-pressed", "false");
      var on = !!(i.features && i.features.webhooks);
      byId("gcj-webhook-state").textContent = !on
        ? "Webhook indexing is off: the reindex schedule keeps repositories up to date."
        : hook.manual
          ? "Add this webhook on the host yourself" + (hook.manual_reason ? " (" + hook.manual_reason + ")" : "") + ", with the URL and secret below."
          : "Git Connect registers this webhook on each repository where the credentials allow it. To add it by hand, use:";
      show(byId("gcj-webhook-info"), !!hook.url);
      resize();
    }

    byId("gcj-webhook-reveal").addEventListener("click", function () {
      var secret = byId("gcj-webhook-secret");
      var reveal = secret.type === "password";
      secret.type = reveal ? "text" : "password";
      this.textContent = reveal ? "Hide" : "Show";
      this.setAttribute("aria-pressed", reveal ? "true" : "false");
    });

    $$("[data-copy]", view).forEach(function (b) {
      b.addEventListener("click", function () {
        var input = byId(b.getAttribute("data-copy"));
        var text = input.value;
        var done = function () { flag("success", "Copied."); };
        if (navigator.clipboard && navigator.clipboard.writeText) {
          navigator.clipboard.writeText(text).then(done, function () { input.type = "text"; input.select(); });
        } else { input.type = "text"; input.select(); }
      });
    });

    formEl.addEventListener("submit", function (e) {
      e.preventDefault();
      clearErrors(formEl);
      var errorBox = byId("gcj-settings-error");
      var s;
      try { s = settingsFields.read(); } catch (err) { showError(formEl, err, errorBox); return; }
      if (!s.display_name) { showError(formEl, fieldProblem("display_name", "The display name must not be empty.")); return; }
      var patch = { display_name: s.display_name, settings: s.settings };
      var submit = $("button[type=submit]", formEl);
      submit.disabled = true;
      call("PATCH", "/api/integrations/" + d.id, patch).then(function (r) {
        flag("success", "Settings of " + r.display_name + " saved." + (r.note ? " " + r.note : ""));
        return load("settings");
      }).catch(function (err) {
        showError(formEl, err, errorBox);
      }).then(function () { submit.disabled = false; });
    });

    // -- repositories
    function loadRepos(fresh) {
      if (fresh) { d.offset = 0; }
      var params = { q: byId("gcj-repo-filter").value.trim(), status: byId("gcj-repo-status-filter").value, limit: LIMIT, offset: 0 };
      params.limit = fresh ? LIMIT : d.offset + LIMIT;
      return call("GET", "/api/integrations/" + d.id + "/repositories" + query(params)).then(function (r) {
        d.total = r.total;
        d.offset = r.repositories.length;
        if (!tbody.contains(document.activeElement) || fresh) { renderRepos(r.repositories); }
        byId("gcj-repos-summary").textContent = r.total ? "Showing " + r.repositories.length + " of " + plural(r.total, "repository", "repositories") + "." : "No repositories match.";
        show(byId("gcj-repos-more"), r.repositories.length < r.total);
        var busy = r.repositories.some(function (x) { return x.status === "queued" || x.status === "indexing" || x.active_run; });
        if (busy && !timers.repos) { every("repos", 4000, function () { return loadRepos(false); }); }
        var addRepos = byId("gcj-add-repos");
        show(addRepos, d.integration && d.integration.provider !== "git");
        return busy;
      }).catch(function (err) { flag("error", err.message); return false; });
    }

    function renderRepos(repos) {
      clear(tbody);
      repos.forEach(function (repo) { tbody.appendChild(repoRow(repo)); });
      resize();
    }

    function repoRow(repo) {
      var tr = el("tr");
      tr.setAttribute("data-repository-id", String(repo.id));
      var name = el("td", "gcj-name-cell");
      name.appendChild(extLink(repo.web_url, repo.name, "gcj-strong"));
      if (repo.default_branch) { name.appendChild(el("span", "gcj-meta", repo.default_branch)); }
      tr.appendChild(name);
      var status = el("td");
      status.appendChild(lozenge(repo.status, REPO_STATUS));
      if (repo.active_run) {
        status.appendChild(el("span", "gcj-meta", repo.active_run.status === "running" ? "Running now" : "Waiting in the queue"));
      }
      if (repo.last_error && repo.status !== "ok") { status.appendChild(el("span", "gcj-meta gcj-error-text", repo.last_error)); }
      tr.appendChild(status);
      var last = el("td");
      last.appendChild(timeEl(repo.last_indexed_at, "Never"));
      tr.appendChild(last);
      tr.appendChild(el("td", "gcj-num", num(repo.counters.commits)));
      tr.appendChild(el("td", "gcj-num", num(repo.counters.branches)));
      tr.appendChild(el("td", "gcj-num", num(repo.counters.pull_requests)));
      var enabledCell = el("td");
      var box = el("input");
      box.type = "checkbox";
      box.checked = !!repo.enabled;
      box.id = "gcj-repo-enabled-" + repo.id;
      box.disabled = repo.status === "removed";
      var boxLabel = el("label", "gcj-visually-hidden", "Index " + repo.name);
      boxLabel.htmlFor = box.id;
      box.addEventListener("change", function () {
        box.disabled = true;
        call("PATCH", "/api/repositories/" + repo.id, { enabled: box.checked }).then(function (r) {
          flag("success", r.name + (r.enabled ? " is indexed again." : " is no longer indexed."));
          tr.replaceWith(repoRow(r));
        }).catch(function (err) { box.checked = !box.checked; box.disabled = false; flag("error", err.message); });
      });
      enabledCell.appendChild(box);
      enabledCell.appendChild(boxLabel);
      tr.appendChild(enabledCell);
      var projects = el("td", "gcj-repo-projects");
      var input = el("input", "gcj-input-keys");
      input.type = "text";
      input.value = (repo.project_keys || []).join(", ");
      input.placeholder = "Integration's projects";
      input.setAttribute("aria-label", "Jira project keys for " + repo.name + " (comma-separated; empty: the integration's projects)");
      input.spellcheck = false;
      var save = button("Save", "gcj-button-subtle", function () {
        var keys = input.value.split(/[\s,]+/).map(function (k) { return k.trim().toUpperCase(); }).filter(Boolean);
        save.disabled = true;
        call("PATCH", "/api/repositories/" + repo.id, { project_keys: keys }).then(function (r) {
          flag("success", "Jira projects of " + r.name + ": " + (r.project_keys.length ? r.project_keys.join(", ") : "the integration's") + ".");
          tr.replaceWith(repoRow(r));
        }).catch(function (err) { save.disabled = false; input.setAttribute("aria-invalid", "true"); flag("error", err.message); input.focus(); });
      }, "Save Jira projects of " + repo.name);
      input.addEventListener("keydown", function (e) { if (e.key === "Enter") { e.preventDefault(); save.click(); } });
      projects.appendChild(input);
      projects.appendChild(save);
      tr.appendChild(projects);
      var actions = el("td", "gcj-actions");
      var reindex = button("Reindex", "gcj-button-subtle", function () {
        reindex.disabled = true;
        call("POST", "/api/repositories/" + repo.id + "/reindex").then(function (r) {
          flag("success", r.note || ("Reindex of " + repo.name + " requested."));
          return loadRepos(false);
        }).catch(function (err) { reindex.disabled = false; flag("error", err.message); });
      }, "Reindex " + repo.name);
      reindex.disabled = !repo.enabled || repo.status === "removed";
      actions.appendChild(reindex);
      tr.appendChild(actions);
      return tr;
    }

    var filterTimer = null;
    byId("gcj-repo-filter").addEventListener("input", function () {
      window.clearTimeout(filterTimer);
      filterTimer = window.setTimeout(function () { loadRepos(true); }, 250);
    });
    byId("gcj-repo-status-filter").addEventListener("change", function () { loadRepos(true); });
    byId("gcj-repos-more").addEventListener("click", function () { loadRepos(false); });
    byId("gcj-reindex-all").addEventListener("click", function () {
      var b = this;
      b.disabled = true;
      call("POST", "/api/integrations/" + d.id + "/reindex").then(function (r) {
        flag("success", r.note || ("Reindex requested for " + plural(r.requested, "repository", "repositories") + "."));
        return loadRepos(false);
      }).catch(function (err) { flag("error", err.message); }).then(function () { b.disabled = false; });
    });

    // -- add repositories from the host
    var remotePicked = {};
    function loadRemote() {
      var status = byId("gcj-remote-status");
      var listEl = clear(byId("gcj-remote-options"));
      remotePicked = {};
      status.textContent = "Asking the host…";
      show(byId("gcj-remote-add"), false);
      call("GET", "/api/integrations/" + d.id + "/remote-repositories" + query({ q: byId("gcj-remote-search").value.trim(), limit: 200 })).then(function (r) {
        status.textContent = r.repositories.length ? plural(r.repositories.length, "repository", "repositories") + (r.truncated ? " (more on the host: search to narrow)" : "") + "." : "No repository matches.";
        r.repositories.forEach(function (remote, i) {
          var li = el("li", "gcj-option");
          var box = el("input");
          box.type = "checkbox";
          box.id = "gcj-remote-" + i;
          box.disabled = !!remote.added;
          box.checked = !!remote.added;
          box.addEventListener("change", function () {
            if (box.checked) { remotePicked[remote.external_id] = true; } else { delete remotePicked[remote.external_id]; }
            show(byId("gcj-remote-add"), Object.keys(remotePicked).length > 0);
          });
          var label = el("label", null, remote.name + (remote.added ? " (already added)" : ""));
          label.htmlFor = box.id;
          li.appendChild(box);
          li.appendChild(label);
          listEl.appendChild(li);
        });
        resize();
      }).catch(function (err) { status.textContent = err.message; });
    }
    byId("gcj-remote-load").addEventListener("click", loadRemote);
    byId("gcj-remote-search").addEventListener("keydown", function (e) { if (e.key === "Enter") { e.preventDefault(); loadRemote(); } });
    byId("gcj-remote-add").addEventListener("click", function () {
      var ids = Object.keys(remotePicked);
      call("POST", "/api/integrations/" + d.id + "/repositories", { repositories: ids }).then(function (r) {
        flag("success", plural(r.repositories_added, "repository", "repositories") + " added; indexing starts.");
        loadRemote();
        return loadRepos(true);
      }).catch(function (err) { flag("error", err.message); });
    });

    return { open: open, reload: load };
  })();

  // ==== indexing queue viewer =====================================================================================

  var queue = (function () {
    var view = views.queue;
    var table = byId("gcj-runs");
    var tbody = $("tbody", table);
    var filters = { status: byId("gcj-filter-status"), trigger: byId("gcj-filter-trigger"), integration: byId("gcj-filter-integration"), repository: byId("gcj-filter-repository") };
    var q = { runs: [], expanded: {}, nextBefore: null, integrations: [] };
    var PAGE = 100;

    function open(params) {
      filters.status.value = params.status || "";
      filters.trigger.value = params.trigger || "";
      focusHeading(view);
      call("GET", "/api/integrations").then(function (data) {
        q.integrations = data.integrations || [];
        var select = filters.integration;
        while (select.options.length > 1) { select.remove(1); }
        q.integrations.forEach(function (i) {
          var option = el("option", null, i.display_name);
          option.value = String(i.id);
          select.appendChild(option);
        });
        select.value = params.integration && q.integrations.some(function (i) { return String(i.id) === params.integration; }) ? params.integration : "";
        return loadRepositoryOptions(params.repository || "");
      }).catch(function (err) { flag("error", err.message); }).then(function () {
        refresh(true);
        root.setAttribute("data-ready", "true");
      });
    }

    function loadRepositoryOptions(selected) {
      var select = filters.repository;
      while (select.options.length > 1) { select.remove(1); }
      var integration = filters.integration.value;
      select.disabled = !integration;
      select.value = "";
      if (!integration) { return Promise.resolve(); }
      return call("GET", "/api/integrations/" + integration + "/repositories?limit=1000").then(function (r) {
        r.repositories.forEach(function (repo) {
          var option = el("option", null, repo.name);
          option.value = String(repo.id);
          select.appendChild(option);
        });
        select.value = selected && r.repositories.some(function (x) { return String(x.id) === selected; }) ? selected : "";
      });
    }

    function params() {
      return { status: filters.status.value, trigger: filters.trigger.value, integration: filters.integration.value, repository: filters.repository.value };
    }

    function syncHash() {
      var hash = "#queue" + query(params());
      if (window.location.hash !== hash && window.history && window.history.replaceState) { window.history.replaceState(null, "", hash); }
    }

    function refresh(fresh) {
      if (fresh) { q.expanded = {}; }
      var p = params();
      var status = byId("gcj-queue-status");
      return Promise.all([
        call("GET", "/api/index-runs" + query(Object.assign({}, p, { limit: fresh ? PAGE : Math.min(500, Math.max(PAGE, q.runs.length)) }))),
        call("GET", "/api/index-runs" + query({ status: "queued,running", integration: p.integration, repository: p.repository, limit: 200 })),
        call("GET", "/api/index-runs" + query({ status: "done,failed,rate_limited", kind: "index", trigger: p.trigger, integration: p.integration, repository: p.repository, limit: 500 }))
      ]).then(function (results) {
        q.runs = results[0].runs || [];
        q.nextBefore = results[0].next_before;
        renderRuns();
        show(byId("gcj-runs-more"), !!q.nextBefore);
        status.textContent = q.runs.length ? "" : "No runs match these filters.";
        show(table, q.runs.length > 0);
        var active = results[1].runs || [];
        renderRunning(active);
        chart.render(results[2].runs || [], q.integrations);
        if (active.length && !timers.queue) { every("queue", 2000, function () { return refresh(false).then(function (n) { return n > 0; }); }); }
        resize();
        return active.length;
      }).catch(function (err) { status.textContent = err.message; return 0; });
    }

    function renderRuns() {
      clear(tbody);
      q.runs.forEach(function (run) { appendRun(run); });
    }

    function appendRun(run) {
      var tr = el("tr", "gcj-run-row");
      tr.setAttribute("data-run-id", String(run.id));
      tr.setAttribute("data-status", run.status);
      var detailId = "gcj-run-detail-" + run.id;
      var toggleCell = el("td");
      var expanded = !!q.expanded[run.id];
      var toggle = button(expanded ? "▾" : "▸", "gcj-button-subtle gcj-expand", null, "Details of run " + run.id);
      toggle.setAttribute("aria-expanded", expanded ? "true" : "false");
      toggle.setAttribute("aria-controls", detailId);
      toggleCell.appendChild(toggle);
      tr.appendChild(toggleCell);
      var finished = el("td");
      finished.appendChild(run.finished_at ? timeEl(run.finished_at) : el("span", "gcj-muted", run.status === "running" ? "Running" : "Not yet"));
      tr.appendChild(finished);
      tr.appendChild(el("td", null, run.integration_name || "—"));
      tr.appendChild(el("td", null, run.kind === "discover" ? "(list repositories)" : run.repository_name || "—"));
      tr.appendChild(el("td", null, TRIGGERS[run.trigger] || run.trigger));
      tr.appendChild(el("td", "gcj-num", duration(run.delay_ms)));
      tr.appendChild(el("td", "gcj-num", duration(run.duration_ms)));
      var status = el("td");
      status.appendChild(lozenge(run.status, RUN_STATUS));
      tr.appendChild(status);
      tbody.appendChild(tr);

      var detailRow = el("tr", "gcj-run-detail");
      detailRow.id = detailId;
      detailRow.hidden = !expanded;
      var cell = el("td");
      cell.colSpan = 8;
      cell.appendChild(runDetails(run));
      detailRow.appendChild(cell);
      tbody.appendChild(detailRow);
      toggle.addEventListener("click", function () {
        var open = detailRow.hidden;
        detailRow.hidden = !open;
        toggle.setAttribute("aria-expanded", open ? "true" : "false");
        toggle.textContent = open ? "▾" : "▸";
        if (open) { q.expanded[run.id] = true; } else { delete q.expanded[run.id]; }
        resize();
      });
    }

    function runDetails(run) {
      var dl = el("dl", "gcj-details");
      function item(term, node) {
        dl.appendChild(el("dt", null, term));
        var dd = el("dd");
        if (typeof node === "string") { dd.textContent = node; } else { dd.appendChild(node); }
        dl.appendChild(dd);
      }
      item("Queued", timeEl(run.queued_at));
      item("Started", timeEl(run.started_at, "Not yet"));
      item("Finished", timeEl(run.finished_at, "Not yet"));
      item("Kind", run.kind === "discover" ? "List repositories" : "Index repository");
      if (run.attempts > 1) { item("Attempts", String(run.attempts)); }
      var c = run.counts || {};
      if (run.kind === "discover") {
        item("Repositories seen", num(c.repositories_seen));
      } else {
        item("Commits", num(c.commits_seen) + " read, " + num(c.commits_linked) + " linked to issues");
        item("Branches", num(c.branches_seen));
        item("Pull requests", num(c.pull_requests_seen));
        item("Links created", num(c.links_created));
      }
      if (run.rate_limited_until) { item("Rate limited until", timeEl(run.rate_limited_until)); }
      if (run.error) {
        var pre = el("pre", "gcj-error-text", run.error);
        item("Error", pre);
      }
      return dl;
    }

    function renderRunning(active) {
      var section = byId("gcj-running");
      var ul = clear(byId("gcj-running-list"));
      var running = active.filter(function (r) { return r.status === "running"; });
      var queued = active.length - running.length;
      running.forEach(function (r) {
        var li = el("li", "gcj-item");
        li.setAttribute("data-run-id", String(r.id));
        li.appendChild(el("span", "gcj-spinner"));
        li.lastChild.setAttribute("aria-hidden", "true");
        li.appendChild(el("strong", null, r.kind === "discover" ? "Listing repositories of " + r.integration_name : r.repository_name || "Repository"));
        var meta = ["running for " + duration(r.duration_ms)];
        if (r.kind !== "discover") { meta.push(plural((r.counts && r.counts.commits_seen) || 0, "commit", "commits") + " read"); }
        meta.push(r.integration_name);
        li.appendChild(el("span", "gcj-meta", meta.join(" · ")));
        ul.appendChild(li);
      });
      if (queued) { ul.appendChild(el("li", "gcj-item gcj-muted", plural(queued, "run waits", "runs wait") + " in the queue.")); }
      show(section, active.length > 0);
    }

    filters.status.addEventListener("change", function () { syncHash(); stop("queue"); refresh(true); });
    filters.trigger.addEventListener("change", function () { syncHash(); stop("queue"); refresh(true); });
    filters.repository.addEventListener("change", function () { syncHash(); stop("queue"); refresh(true); });
    filters.integration.addEventListener("change", function () {
      stop("queue");
      loadRepositoryOptions("").then(function () { syncHash(); refresh(true); });
    });
    byId("gcj-queue-refresh").addEventListener("click", function () { stop("queue"); refresh(true); });
    byId("gcj-queue-filters").addEventListener("submit", function (e) { e.preventDefault(); });
    byId("gcj-runs-more").addEventListener("click", function () {
      if (!q.nextBefore) { return; }
      var more = this;
      more.disabled = true;
      call("GET", "/api/index-runs" + query(Object.assign(params(), { before: q.nextBefore, limit: PAGE }))).then(function (r) {
        (r.runs || []).forEach(function (run) { q.runs.push(run); appendRun(run); });
        q.nextBefore = r.next_before;
        show(more, !!q.nextBefore);
        resize();
      }).catch(function (err) { flag("error", err.message); }).then(function () { more.disabled = false; });
    });
    byId("gcj-clear-queued").addEventListener("click", function () {
      var anchor = this;
      var p = params();
      var scope = p.repository ? "of this repository" : p.integration ? "of this integration" : "of every integration";
      confirmAction("Clear queued runs?", [
        "Runs " + scope + " that wait in the queue are cancelled. Running ones finish; the schedule queues new runs later."
      ], "Clear queued runs", anchor).then(function (yes) {
        if (!yes) { return; }
        call("DELETE", "/api/index-runs" + query({ status: "queued", integration: p.integration, repository: p.repository })).then(function (r) {
          flag("success", plural(r.cancelled, "queued run", "queued runs") + " cleared" + (r.already_started ? " (" + r.already_started + " had already started)" : "") + ".");
          return refresh(true);
        }).catch(function (err) { flag("error", err.message); });
      });
    });

    return { open: open };
  })();

  // ==== chart: run durations over time, one series per integration (inline SVG) =====================================

  var chart = (function () {
    var SVG = "http://www.w3.org/2000/svg";
    var COLORS = ["#0052CC", "#00875A", "#FF8B00", "#6554C0", "#DE350B", "#00A3BF", "#403294", "#97A0AF"];
    var W = 760;
    var H = 220;
    var M = { left: 64, right: 16, top: 12, bottom: 36 };

    function svgEl(tag, attrs, text) {
      var node = document.createElementNS(SVG, tag);
      Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, String(attrs[k])); });
      if (text !== undefined) { node.textContent = String(text); }
      return node;
    }

    function render(runs, integrations) {
      var figure = byId("gcj-chart");
      var holder = clear(byId("gcj-chart-svg"));
      var legend = clear(byId("gcj-chart-legend"));
      var points = runs.filter(function (r) { return r.finished_at && typeof r.duration_ms === "number"; }).map(function (r) {
        return { t: new Date(r.finished_at).getTime(), ms: r.duration_ms, run: r };
      }).filter(function (p) { return !isNaN(p.t); });
      show(figure, points.length > 0);
      if (!points.length) { return; }
      var names = {};
      (integrations || []).forEach(function (i) { names[i.id] = i.display_name; });
      var series = {};
      var order = [];
      points.forEach(function (p) {
        var key = p.run.integration_id;
        if (!series[key]) { series[key] = []; order.push(key); names[key] = names[key] || p.run.integration_name; }
        series[key].push(p);
      });
      var t0 = Math.min.apply(null, points.map(function (p) { return p.t; }));
      var t1 = Math.max.apply(null, points.map(function (p) { return p.t; }));
      if (t1 - t0 < 60000) { t0 -= 30000; t1 += 30000; }
      var maxMs = Math.max.apply(null, points.map(function (p) { return p.ms; }));
      var yMax = niceMax(Math.max(maxMs, 1));
      var pw = W - M.left - M.right;
      var ph = H - M.top - M.bottom;
      function x(t) { return M.left + ((t - t0) / (t1 - t0)) * pw; }
      function y(ms) { return M.top + ph - (ms / yMax) * ph; }

      var svg = svgEl("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-labelledby": "gcj-chart-title gcj-chart-desc", "class": "gcj-chart-svg", preserveAspectRatio: "xMinYMin meet" });
      svg.appendChild(svgEl("title", { id: "gcj-chart-title" }, "Run durations over time"));
      var longest = points.reduce(function (a, b) { return b.ms > a.ms ? b : a; });
      svg.appendChild(svgEl("desc", { id: "gcj-chart-desc" },
        plural(points.length, "finished run", "finished runs") + " of " + plural(order.length, "integration", "integrations") +
        " from " + new Date(t0).toLocaleString() + " to " + new Date(t1).toLocaleString() + "; the longest took " + duration(longest.ms) +
        " (" + (longest.run.repository_name || longest.run.integration_name) + ")."));
      // grid and y axis
      for (var i = 0; i <= 4; i++) {
        var v = (yMax / 4) * i;
        var gy = y(v);
        svg.appendChild(svgEl("line", { x1: M.left, x2: W - M.right, y1: gy, y2: gy, "class": "gcj-chart-grid" }));
        svg.appendChild(svgEl("text", { x: M.left - 6, y: gy + 4, "text-anchor": "end", "class": "gcj-chart-label" }, duration(Math.round(v))));
      }
      // x axis
      svg.appendChild(svgEl("line", { x1: M.left, x2: W - M.right, y1: M.top + ph, y2: M.top + ph, "class": "gcj-chart-axis" }));
      var sameDay = new Date(t0).toDateString() === new Date(t1).toDateString();
      for (var j = 0; j <= 4; j++) {
        var t = t0 + ((t1 - t0) / 4) * j;
        var d = new Date(t);
        var clock = t1 - t0 < 600000 ? { hour: "2-digit", minute: "2-digit", second: "2-digit" } : { hour: "2-digit", minute: "2-digit" };
        var label = sameDay ? d.toLocaleTimeString(undefined, clock) : d.toLocaleDateString(undefined, { month: "short", day: "numeric" }) + " " + d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
        svg.appendChild(svgEl("text", { x: x(t), y: H - 12, "text-anchor": j === 0 ? "start" : j === 4 ? "end" : "middle", "class": "gcj-chart-label" }, label));
      }
      order.forEach(function (key, index) {
        var color = COLORS[index % COLORS.length];
        var pts = series[key].sort(function (a, b) { return a.t - b.t; });
        var group = svgEl("g", { "class": "gcj-chart-series", "data-integration-id": key });
        if (pts.length > 1) {
          group.appendChild(svgEl("polyline", { points: pts.map(function (p) { return x(p.t).toFixed(1) + "," + y(p.ms).toFixed(1); }).join(" "), fill: "none", stroke: color, "stroke-width": 1.5, "stroke-opacity": 0.6 }));
        }
        pts.forEach(function (p) {
          var dot = svgEl("circle", { cx: x(p.t).toFixed(1), cy: y(p.ms).toFixed(1), r: 3.5, fill: p.run.status === "done" ? color : "#fff", stroke: color, "stroke-width": 1.5 });
          dot.appendChild(svgEl("title", {}, (names[key] || "") + " · " + (p.run.repository_name || "") + ": " + duration(p.ms) + " (" + (RUN_STATUS[p.run.status] || p.run.status) + "), " + new Date(p.t).toLocaleString()));
          group.appendChild(dot);
        });
        svg.appendChild(group);
        var ms = pts.map(function (p) { return p.ms; }).sort(function (a, b) { return a - b; });
        var li = el("li", "gcj-legend-item");
        var swatch = el("span", "gcj-swatch");
        swatch.style.backgroundColor = color;
        swatch.setAttribute("aria-hidden", "true");
        li.appendChild(swatch);
        li.appendChild(el("span", null, (names[key] || "Integration " + key) + ": " + plural(ms.length, "run", "runs") + ", median " + duration(ms[Math.floor((ms.length - 1) / 2)]) + ", longest " + duration(ms[ms.length - 1])));
        legend.appendChild(li);
      });
      holder.appendChild(svg);
    }

    function niceMax(ms) {
      var steps = [25, 50, 100, 250, 500, 1000, 2000, 5000, 10000, 15000, 30000, 60000, 120000, 300000, 600000, 900000, 1800000, 3600000, 7200000];
      for (var i = 0; i < steps.length; i++) { if (ms <= steps[i] * 4) { return steps[i] * 4; } }
      return Math.ceil(ms / 3600000) * 3600000;
    }

    return { render: render };
  })();

  // ---- start ------------------------------------------------------------------------------------------------------

  // The repository browser is our generalPages module: inside Jira, AP.navigator opens it;
  // without AP.js the link itself (target=_top) goes to the same Jira URL.
  var browseLink = byId("gcj-browse-link");
  if (browseLink) {
    browseLink.addEventListener("click", function (e) {
      if (window.AP && window.AP.navigator && typeof window.AP.navigator.go === "function") {
        e.preventDefault();
        window.AP.navigator.go("addonmodule", { moduleKey: browseLink.getAttribute("data-module-key") });
      }
    });
  }

  // What static/admin_*.js (loaded after this file) use; they add panels of the integration view
  // to `panels` ({open(integration)}) before the first route runs.
  var gcj = window.gcjAdmin = {
    panels: {},
    call: call, query: query, el: el, clear: clear, show: show, button: button, byId: byId, $: $, $$: $$,
    flag: flag, timeEl: timeEl, plural: plural, lozenge: lozenge, resize: resize, every: every, stop: stop,
    clearErrors: clearErrors, showError: showError, fieldProblem: fieldProblem, providers: providers,
    oauthProviders: oauthProviders, credentialsAction: credentialsAction, authTypes: AUTH_TYPES,
    reload: function (panel) { return detail.reload(panel); }
  };

  window.addEventListener("hashchange", route);
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", route); } else { window.setTimeout(route, 0); }
})();
