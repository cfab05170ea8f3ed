// The repository browser (/browse): repositories, a ref's commits, and compare. Works without
// AP.js (window.GitConnect.api falls back to the page token). Every piece of git data goes
// into the DOM through textContent or a checked http(s) href -- never innerHTML.
(function () {
  "use strict";

  var root = document.getElementById("gcj-browse");
  if (!root) { return; }
  var reposUrl = root.getAttribute("data-api-url");
  var byId = function (id) { return document.getElementById(id); };
  var state = { reposCursor: null, query: "", repo: null, commitsCursor: null, commitsQuery: null,
                compareCursor: null, compareQuery: null };

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function safeHref(url) {
    return typeof url === "string" && /^https?:\/\//i.test(url) ? url : null;
  }

  function link(url, text, className, target) {
    var href = safeHref(url);
    var node = el(href ? "a" : "span", className, text);
    if (href) {
      node.href = href;
      node.target = target || "_blank";
      node.rel = "noopener noreferrer";
    }
    return node;
  }

  function firstLine(text) { return String(text || "").split(/\r?\n/, 1)[0]; }

  function timeEl(iso) {
    var node = el("time", "gcj-time");
    if (!iso) { return node; }
    node.setAttribute("datetime", iso);
    var date = new Date(iso);
    node.textContent = isNaN(date.getTime()) ? iso : date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
    node.title = iso;
    return node;
  }

  function plural(n, one, many) { return n + " " + (n === 1 ? one : many); }

  function query(params) {
    return Object.keys(params).filter(function (k) { return params[k] !== null && params[k] !== undefined && params[k] !== ""; })
      .map(function (k) { return encodeURIComponent(k) + "=" + encodeURIComponent(params[k]); }).join("&");
  }

  function errorText(err) {
    var code = String((err && err.code) || "");
    if (/^jwt_/.test(code) || code === "unauthorized") { return "Your session expired: reload the page."; }
    return (err && err.message) || "Something went wrong.";
  }

  function resize() { if (window.AP && window.AP.resize) { window.AP.resize(); } }

  function issueLinks(container, issues) {
    (issues || []).forEach(function (issue) {
      container.appendChild(link(issue.url, issue.key, "gcj-issue-key", "_top"));
    });
  }

  // ------------------------------------------------------------------ repositories

  function repoRow(repo) {
    var tr = el("tr", "gcj-repo-row");
    tr.setAttribute("data-repository-id", String(repo.id));
    var nameCell = el("td");
    var open = el("button", "gcj-button gcj-button-subtle gcj-repo-open", repo.name);
    open.type = "button";
    open.addEventListener("click", function () { openRepository(repo); });
    nameCell.appendChild(open);
    if (repo.url) { nameCell.appendChild(document.createTextNode(" ")); nameCell.appendChild(link(repo.url, "↗", "gcj-muted")); }
    if (repo.indexing_first_time) { nameCell.appendChild(el("span", "gcj-lozenge gcj-lozenge-progress", "indexing")); }
    if (repo.token_needed) { nameCell.appendChild(el("span", "gcj-lozenge gcj-lozenge-warning gcj-token-needed", "token needed")); }
    tr.appendChild(nameCell);
    var last = repo.last_commit;
    var commitCell = el("td");
    if (last) {
      commitCell.appendChild(link(last.url, last.short_sha, "gcj-sha"));
      commitCell.appendChild(el("span", "gcj-message", firstLine(last.message)));
    } else {
      commitCell.appendChild(el("span", "gcj-muted", "No commits indexed yet"));
    }
    tr.appendChild(commitCell);
    tr.appendChild(el("td", "gcj-author", last ? (last.author.name || last.author.email) : ""));
    var dateCell = el("td");
    if (last) { dateCell.appendChild(timeEl(last.time)); }
    tr.appendChild(dateCell);
    var issueCell = el("td", "gcj-keys gcj-last-issue");
    if (repo.last_linked_issue) { issueLinks(issueCell, repo.last_linked_issue.issues); }
    tr.appendChild(issueCell);
    return tr;
  }

  function loadRepositories(more) {
    var status = byId("gcj-list-status");
    var body = byId("gcj-repos").querySelector("tbody");
    var button = byId("gcj-repos-more");
    if (!more) { body.textContent = ""; state.reposCursor = null; }
    status.textContent = "Loading…";
    button.disabled = true;
    var url = reposUrl + "?" + query({ q: state.query, cursor: more ? state.reposCursor : null });
    return window.GitConnect.api(url).then(function (page) {
      page.repositories.forEach(function (repo) { body.appendChild(repoRow(repo)); });
      state.reposCursor = page.next_cursor;
      button.hidden = !page.next_cursor;
      status.textContent = page.total === 0
        ? (state.query ? "No repository you can see matches “" + state.query + "”." : "No repositories you can see yet.")
        : plural(page.total, "repository", "repositories");
      var needs = page.needs_token || [];
      var notice = byId("gcj-needs-token");
      notice.hidden = needs.length === 0;
      notice.querySelector("[data-needs-token-names]").textContent = needs.map(function (i) { return i.name; }).join(", ");
    }).catch(function (err) {
      status.textContent = "Could not load repositories: " + errorText(err);
    }).then(function () { button.disabled = false; resize(); });
  }

  // ------------------------------------------------------------------ one repository

  function repoApi(path) { return reposUrl + "/" + encodeURIComponent(String(state.repo.id)) + path; }

  function commitItem(commit) {
    var li = el("li", "gcj-commit");
    li.appendChild(link(commit.url, commit.short_sha, "gcj-sha"));
    var message = el("span", "gcj-message", firstLine(commit.message));
    message.title = String(commit.message || "");
    li.appendChild(message);
    var keys = el("span", "gcj-keys");
    issueLinks(keys, commit.issue_keys);
    li.appendChild(document.createTextNode(" "));
    li.appendChild(keys);
    var meta = el("span", "gcj-meta gcj-muted");
    meta.appendChild(document.createTextNode(" · " + ((commit.author && (commit.author.name || commit.author.email)) || "") + " · "));
    meta.appendChild(timeEl(commit.time));
    li.appendChild(meta);
    return li;
  }

  function option(select, value, text) {
    var node = el("option", null, text);
    node.value = value;
    select.appendChild(node);
  }

  function loadRefs() {
    var select = byId("gcj-ref");
    var names = byId("gcj-ref-names");
    select.textContent = "";
    names.textContent = "";
    return window.GitConnect.api(repoApi("/refs")).then(function (refs) {
      var branches = el("optgroup");
      branches.label = "Branches";
      refs.branches.forEach(function (b) { option(branches, "refs/heads/" + b.name, b.name); option(names, b.name, "branch"); });
      var tags = el("optgroup");
      tags.label = "Tags";
      refs.tags.forEach(function (t) { option(tags, "refs/tags/" + t.name, t.name); option(names, t.name, "tag"); });
      if (refs.branches.length) { select.appendChild(branches); }
      if (refs.tags.length) { select.appendChild(tags); }
    }).catch(function (err) {
      byId("gcj-commits-status").textContent = "Could not load branches and tags: " + errorText(err);
    });
  }

  function loadCommits(more) {
    var list = byId("gcj-commits");
    var status = byId("gcj-commits-status");
    var button = byId("gcj-commits-more");
    if (!more) {
      var form = byId("gcj-commits-form");
      var checked = form.querySelector("input[name=filter]:checked");
      state.commitsQuery = { ref: byId("gcj-ref").value, filter: checked ? checked.value : "all" };
      state.commitsCursor = null;
      list.textContent = "";
    }
    status.textContent = "Loading…";
    button.disabled = true;
    var params = Object.assign({}, state.commitsQuery, { cursor: more ? state.commitsCursor : null });
    return window.GitConnect.api(repoApi("/commits?" + query(params))).then(function (page) {
      page.commits.forEach(function (c) { list.appendChild(commitItem(c)); });
      state.commitsCursor = page.next_cursor;
      button.hidden = !page.next_cursor;
      var shown = list.children.length;
      var text = plural(shown, "commit", "commits") + " shown from " + page.ref.kind + " " + page.ref.name;
      if (page.scan_limited) { text += " (looked at " + page.scanned + " commits; show more to keep looking)"; }
      status.textContent = shown === 0 && !page.next_cursor ? "No commits match." : text + ".";
    }).catch(function (err) {
      status.textContent = errorText(err);
      button.hidden = true;
    }).then(function () { button.disabled = false; resize(); });
  }

  function loadCompare(more) {
    var status = byId("gcj-compare-status");
    var result = byId("gcj-compare-result");
    var list = byId("gcj-compare-commits");
    var button = byId("gcj-compare-more");
    if (!more) {
      state.compareQuery = { from: byId("gcj-from").value.trim(), to: byId("gcj-to").value.trim() };
      state.compareCursor = null;
    }
    status.textContent = "Comparing…";
    button.disabled = true;
    var params = Object.assign({}, state.compareQuery, { cursor: more ? state.compareCursor : null });
    return window.GitConnect.api(repoApi("/compare?" + query(params))).then(function (page) {
      if (!more) {
        list.textContent = "";
        var summary = byId("gcj-compare-summary");
        summary.textContent = plural(page.total_commits, "commit", "commits") + " in " + page.to.name +
          " that are not in " + page.from.name + " · " + plural(page.files_changed, "file", "files") + " changed · " +
          plural(page.issues.length, "issue", "issues") + " linked";
        var links = byId("gcj-jira-links");
        links.textContent = "";
        page.jira_links.forEach(function (jl, i) {
          var label = page.jira_links.length === 1 ? "View in Jira" : "View in Jira (part " + (i + 1) + " of " + page.jira_links.length + ")";
          var a = link(jl.url, label, "gcj-button gcj-jira-link", "_top");
          a.title = jl.jql;
          links.appendChild(a);
          links.appendChild(document.createTextNode(" "));
        });
        var issues = byId("gcj-compare-issues");
        issues.textContent = "";
        issueLinks(issues, page.issues);
        if (!page.issues.length) { issues.appendChild(el("span", "gcj-muted", "None of these commits mention an issue.")); }
        result.hidden = false;
      }
      page.commits.forEach(function (c) { list.appendChild(commitItem(c)); });
      state.compareCursor = page.next_cursor;
      button.hidden = !page.next_cursor;
      status.textContent = page.total_commits === 0 ? page.to.name + " has no commits that " + page.from.name + " lacks." : "";
    }).catch(function (err) {
      status.textContent = errorText(err);
      if (!more) { result.hidden = true; }
    }).then(function () { button.disabled = false; resize(); });
  }

  function showTab(name) {
    byId("gcj-commits-section").hidden = name !== "commits";
    byId("gcj-compare-section").hidden = name !== "compare";
    byId("gcj-tab-commits").setAttribute("aria-pressed", String(name === "commits"));
    byId("gcj-tab-compare").setAttribute("aria-pressed", String(name === "compare"));
    resize();
  }

  function openRepository(repo) {
    state.repo = repo;
    byId("gcj-list-view").hidden = true;
    byId("gcj-repo-view").hidden = false;
    byId("gcj-repo-title").textContent = repo.name;
    byId("gcj-repo-token").hidden = !repo.token_needed;
    byId("gcj-commits").textContent = "";
    byId("gcj-compare-result").hidden = true;
    byId("gcj-compare-status").textContent = "";
    showTab("commits");
    loadRefs().then(function () {
      var select = byId("gcj-ref");
      if (repo.default_branch) { select.value = "refs/heads/" + repo.default_branch; }
      return loadCommits(false);
    });
    var title = byId("gcj-repo-title");
    title.setAttribute("tabindex", "-1");
    title.focus();
  }

  function closeRepository() {
    state.repo = null;
    byId("gcj-repo-view").hidden = true;
    byId("gcj-list-view").hidden = false;
    resize();
  }

  byId("gcj-search").addEventListener("submit", function (e) {
    e.preventDefault();
    state.query = byId("gcj-q").value.trim();
    loadRepositories(false);
  });
  byId("gcj-repos-more").addEventListener("click", function () { loadRepositories(true); });
  byId("gcj-back").addEventListener("click", closeRepository);
  byId("gcj-tab-commits").addEventListener("click", function () { showTab("commits"); });
  byId("gcj-tab-compare").addEventListener("click", function () { showTab("compare"); });
  byId("gcj-commits-form").addEventListener("submit", function (e) { e.preventDefault(); loadCommits(false); });
  byId("gcj-commits-more").addEventListener("click", function () { loadCommits(true); });
  byId("gcj-compare-form").addEventListener("submit", function (e) { e.preventDefault(); loadCompare(false); });
  byId("gcj-compare-more").addEventListener("click", function () { loadCompare(true); });

  loadRepositories(false).then(function () { root.setAttribute("data-ready", "true"); });
})();
