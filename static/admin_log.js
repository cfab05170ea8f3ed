// Manage repositories: one integration's log (templates/admin_log.html), from
// GET /api/integrations/{id}/log. Entries are words from the server; their `detail` (small JSON:
// counts, samples of issue keys or commits) is rendered as a readable list, never as JSON.
(function () {
  "use strict";
  var gcj = window.gcjAdmin;
  if (!gcj) { return; }
  var byId = gcj.byId;
  var el = gcj.el;
  var clear = gcj.clear;
  var show = gcj.show;

  var LEVELS = { error: "Error", warning: "Warning", info: "Info" };
  var LEVEL_TONE = { error: "error", warning: "warning", info: "default" };
  var SOURCES = {
    devinfo: "Development panel", smart_commit: "Smart commits", webhook: "Webhooks", discovery: "Repository discovery",
    credentials: "Credentials", settings: "Settings", action: "Branches and pull requests"
  };
  var PAGE = 50;
  var MAX_DEPTH = 4;
  var filters = { level: byId("gcj-log-level"), source: byId("gcj-log-source"), repository: byId("gcj-log-repository") };
  var list = byId("gcj-log-list");
  var status = byId("gcj-log-status");
  var more = byId("gcj-log-more");
  var s = { integration: null, nextBefore: null, request: 0 };

  function open(integration) {
    var fresh = !s.integration || s.integration.id !== integration.id;
    s.integration = integration;
    byId("gcj-log-runs").href = "#queue?integration=" + integration.id;
    if (fresh) {
      filters.level.value = "";
      filters.source.value = "";
      loadRepositories(integration.id);
    }
    fetchPage(true);
    summary(integration.id);
  }

  // GET /api/integrations/{id}/log/summary: the Development panel and smart commits right now.
  function summary(id) {
    var section = byId("gcj-log-summary");
    return gcj.call("GET", "/api/integrations/" + id + "/log/summary").then(function (r) {
      if (!s.integration || s.integration.id !== id) { return; }
      var dl = clear(byId("gcj-log-summary-list"));
      function row(term, words, tone) {
        dl.appendChild(el("dt", null, term));
        var dd = el("dd", tone ? "gcj-error-text" : null, words);
        dl.appendChild(dd);
      }
      var panel = r.development_panel || {};
      var site = panel.site || {};
      var repos = panel.repositories || [];
      var troubled = repos.filter(function (x) { return x.status !== "ok" || x.last_error || (x.unknown_issue_keys || []).length; });
      if (!panel.enabled) {
        row("Development panel", "Off: nothing is sent to Jira's Development panel.");
      } else if (site.status === "needs_attention") {
        row("Development panel", "Jira refuses Git Connect's pushes on this site" + (site.detail ? ": " + site.detail : "") + ". Nothing is sent until that is fixed.", true);
      } else if (!panel.repository_count) {
        row("Development panel", "Nothing sent to Jira's Development panel yet.");
      } else {
        row("Development panel", gcj.plural(panel.repository_count, "repository", "repositories") + " sent to Jira" +
          (troubled.length ? "; " + gcj.plural(troubled.length, "needs", "need") + " a look (below)." : ", all without problems."));
      }
      var smart = r.smart_commits || {};
      if (!smart.enabled) {
        row("Smart commits", "Off.");
      } else {
        var counts = {};
        (smart.recent || []).forEach(function (x) { counts[x.status] = (counts[x.status] || 0) + 1; });
        var recent = Object.keys(counts).map(function (k) { return counts[k] + " " + k.replace(/_/g, " "); }).join(", ");
        row("Smart commits", (smart.run_by === "app" ? "Run by Git Connect as the commit's author" : "Run by Jira from its Development panel") +
          ", for commits of the last " + gcj.plural(smart.max_age_days, "day", "days") + "." + (recent ? " Recently: " + recent + "." : ""));
      }
      var ul = clear(byId("gcj-log-problems"));
      troubled.slice(0, 20).forEach(function (x) {
        var li = el("li", "gcj-item");
        li.appendChild(el("strong", null, (x.repository && x.repository.name) || "Repository"));
        var words = [];
        if (x.last_error) { words.push(x.last_error); }
        else if (x.status === "partial") { words.push("the last push was interrupted and resumes on the next run"); }
        else if (x.status === "needs_attention") { words.push("Jira refused the push"); }
        var keys = x.unknown_issue_keys || [];
        if (keys.length) { words.push("issue keys Jira does not know: " + keys.slice(-10).join(", ") + (keys.length > 10 ? " and " + (keys.length - 10) + " more" : "")); }
        var line = words.map(function (w) { return String(w).replace(/\.+$/, ""); }).join("; ");
        li.appendChild(el("span", "gcj-meta", line.charAt(0).toUpperCase() + line.slice(1) + "."));
        ul.appendChild(li);
      });
      show(section, true);
      gcj.resize();
    }).catch(function () { show(section, false); });
  }

  function loadRepositories(id) {
    var select = filters.repository;
    while (select.options.length > 1) { select.remove(1); }
    select.value = "";
    return gcj.call("GET", "/api/integrations/" + id + "/repositories?limit=1000").then(function (r) {
      r.repositories.forEach(function (repo) {
        var option = el("option", null, repo.name);
        option.value = String(repo.id);
        select.appendChild(option);
      });
    }).catch(function () { /* the filter stays at "All" */ });
  }

  function params(before) {
    return { level: filters.level.value, source: filters.source.value, repository: filters.repository.value, before: before, limit: PAGE };
  }

  function fetchPage(fresh) {
    var id = s.integration.id;
    var request = s.request = s.request + 1;
    if (fresh) { status.textContent = "Loading the log…"; }
    more.disabled = true;
    return gcj.call("GET", "/api/integrations/" + id + "/log" + gcj.query(params(fresh ? null : s.nextBefore))).then(function (r) {
      if (request !== s.request) { return; }
      if (fresh) { clear(list); }
      (r.events || []).forEach(function (event) { list.appendChild(item(event)); });
      s.nextBefore = r.next_before || null;
      show(more, !!s.nextBefore);
      var filtered = filters.level.value || filters.source.value || filters.repository.value;
      status.textContent = list.children.length ? "" : filtered ? "No log entries match these filters." : "Nothing is logged for this integration yet.";
      list.setAttribute("data-loaded", String(id));
      gcj.resize();
    }).catch(function (err) {
      if (request === s.request) { status.textContent = err.message; }
    }).then(function () { more.disabled = false; });
  }

  function item(event) {
    var li = el("li", "gcj-log-item");
    li.setAttribute("data-event-id", String(event.id));
    li.setAttribute("data-level", event.level || "");
    var head = el("div", "gcj-log-head");
    var level = el("span", "gcj-lozenge gcj-lozenge-" + (LEVEL_TONE[event.level] || "default"), LEVELS[event.level] || event.level);
    head.appendChild(level);
    head.appendChild(gcj.timeEl(event.at));
    head.appendChild(el("span", "gcj-tag", SOURCES[event.source] || event.source));
    if (event.repository && event.repository.name) { head.appendChild(el("span", "gcj-log-repo", event.repository.name)); }
    li.appendChild(head);
    li.appendChild(el("p", "gcj-log-message", event.message));
    var detail = event.detail;
    if (detail && typeof detail === "object" && Object.keys(detail).length) {
      var box = el("details", "gcj-log-detail");
      box.appendChild(el("summary", null, "Details"));
      box.appendChild(value(detail, 0));
      li.appendChild(box);
    }
    return li;
  }

  // A key of `detail` in words: "unknown_issue_keys" -> "Unknown issue keys".
  function words(key) {
    var text = String(key).replace(/[_-]+/g, " ").replace(/([a-z])([A-Z])/g, "$1 $2").trim().toLowerCase();
    text = text.replace(/\b(id|ids|url|sha|pr|prs)\b/g, function (w) { return w === "prs" ? "PRs" : w.toUpperCase(); });
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  function scalar(v) { return v === null || v === undefined || typeof v !== "object"; }

  function scalarText(v) {
    if (v === null || v === undefined || v === "") { return "—"; }
    if (typeof v === "boolean") { return v ? "Yes" : "No"; }
    if (typeof v === "number") { return v.toLocaleString(); }
    return String(v);
  }

  function scalarNode(v) {
    if (typeof v === "string" && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/.test(v)) { return gcj.timeEl(v); }
    if (typeof v === "string" && /^https?:\/\/\S+$/i.test(v)) {
      var a = el("a", null, v);
      a.href = v;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      return a;
    }
    return el("span", null, scalarText(v));
  }

  function value(v, depth) {
    if (scalar(v)) { return scalarNode(v); }
    if (depth >= MAX_DEPTH) { return el("span", "gcj-muted", "(more detail not shown)"); }
    if (Array.isArray(v)) {
      if (!v.length) { return el("span", "gcj-muted", "none"); }
      if (v.every(scalar)) { return el("span", null, v.map(scalarText).join(", ")); }
      var ul = el("ul", "gcj-log-values");
      v.forEach(function (x) { var li = el("li"); li.appendChild(value(x, depth + 1)); ul.appendChild(li); });
      return ul;
    }
    var dl = el("dl", "gcj-details");
    Object.keys(v).forEach(function (key) {
      dl.appendChild(el("dt", null, words(key)));
      var dd = el("dd");
      dd.appendChild(value(v[key], depth + 1));
      dl.appendChild(dd);
    });
    return dl;
  }

  function refilter() { if (s.integration) { fetchPage(true); } }
  filters.level.addEventListener("change", refilter);
  filters.source.addEventListener("change", refilter);
  filters.repository.addEventListener("change", refilter);
  byId("gcj-log-refresh").addEventListener("click", function () { refilter(); if (s.integration) { summary(s.integration.id); } });
  byId("gcj-log-filters").addEventListener("submit", function (e) { e.preventDefault(); });
  more.addEventListener("click", function () { if (s.nextBefore) { fetchPage(false); } });

  gcj.panels.log = { open: open };
})();
