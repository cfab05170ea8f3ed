// The issue panel: renders the development data embedded in the page (#gcj-initial) and
// fetches further pages with "Show more". Every piece of git data goes into the DOM through
// textContent or a checked http(s) href — never innerHTML — so commit messages, branch
// names and pull request titles can never become markup or script.
(function () {
  "use strict";

  var root = document.getElementById("gcj-dev");
  if (!root) { return; }
  var groupsEl = document.getElementById("gcj-groups");
  var moreButton = document.getElementById("gcj-more");
  var moreStatus = document.getElementById("gcj-more-status");
  var apiUrl = root.getAttribute("data-api-url");
  var tokensUrl = root.getAttribute("data-tokens-url");
  var PAGE_SIZE = 50;
  var groups = {}; // repository id -> {section, lists: {pull_requests, branches, commits}, tags}
  var nextCursor = null;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function safeHref(url) {
    return typeof url === "string" && /^https?:\/\//i.test(url) ? url : null;
  }

  // A link to the host when the URL is a safe http(s) one, else plain text.
  function link(url, text, className) {
    var href = safeHref(url);
    var node = el(href ? "a" : "span", className, text);
    if (href) {
      node.href = href;
      node.target = "_blank";
      node.rel = "noopener noreferrer";
    }
    return node;
  }

  function firstLine(text) {
    return String(text || "").split(/\r?\n/, 1)[0];
  }

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

  function setCounts(counts) {
    var words = { commits: ["commit", "commits"], branches: ["branch", "branches"], pull_requests: ["pull request", "pull requests"] };
    Object.keys(words).forEach(function (kind) {
      var node = root.querySelector('[data-count="' + kind + '"]');
      if (node) { node.textContent = plural(Number(counts[kind]) || 0, words[kind][0], words[kind][1]); }
    });
  }

  function names(items) {
    return items.map(function (item) { return item.name; }).join(", ");
  }

  function lozenge(state) {
    var value = String(state || "").toUpperCase();
    var kind = { OPEN: "open", MERGED: "merged", DECLINED: "declined" }[value] || "other";
    return el("span", "gcj-lozenge gcj-lozenge-" + kind, value);
  }

  var SECTIONS = [
    ["pull_requests", "Pull requests"],
    ["branches", "Branches"],
    ["commits", "Commits"]
  ];

  function group(repository) {
    var id = String(repository.id);
    if (groups[id]) { return groups[id]; }
    var section = el("section", "gcj-repo");
    section.setAttribute("data-repository-id", id);
    var heading = el("h3", "gcj-repo-name");
    heading.appendChild(link(repository.url, repository.name || "repository"));
    section.appendChild(heading);
    var lists = {};
    SECTIONS.forEach(function (entry) {
      var block = el("div", "gcj-kind gcj-kind-" + entry[0]);
      block.hidden = true;
      block.appendChild(el("h4", "gcj-kind-title", entry[1]));
      var list = el("ul", "gcj-list");
      block.appendChild(list);
      section.appendChild(block);
      lists[entry[0]] = { block: block, list: list };
    });
    var tagBlock = el("p", "gcj-tags");
    tagBlock.hidden = true;
    tagBlock.appendChild(el("span", "gcj-muted", "Tags: "));
    section.appendChild(tagBlock);
    groupsEl.appendChild(section);
    groups[id] = { section: section, lists: lists, tags: tagBlock, tagNames: {} };
    return groups[id];
  }

  function add(g, kind, item) {
    g.lists[kind].block.hidden = false;
    g.lists[kind].list.appendChild(item);
  }

  function pullRequestItem(pr) {
    var li = el("li", "gcj-item gcj-pr");
    li.appendChild(lozenge(pr.state));
    li.appendChild(link(pr.url, pr.title, "gcj-title"));
    var meta = el("span", "gcj-meta");
    meta.appendChild(el("span", "gcj-ref", pr.source));
    meta.appendChild(document.createTextNode(" → "));
    meta.appendChild(el("span", "gcj-ref", pr.target));
    if (pr.author) { meta.appendChild(document.createTextNode(" · " + pr.author)); }
    meta.appendChild(document.createTextNode(" · "));
    meta.appendChild(timeEl(pr.updated));
    li.appendChild(meta);
    return li;
  }

  function branchItem(branch) {
    var li = el("li", "gcj-item gcj-branch");
    li.appendChild(link(branch.url, branch.name, "gcj-ref gcj-title"));
    if (branch.pull_request) {
      var pr = el("span", "gcj-branch-pr");
      pr.appendChild(link(branch.pull_request.url, "PR #" + branch.pull_request.id));
      pr.appendChild(document.createTextNode(" "));
      pr.appendChild(lozenge(branch.pull_request.state));
      li.appendChild(pr);
    }
    var counts = branch.ahead_behind;
    if (counts) {
      var diverged = el("span", "gcj-ahead-behind gcj-muted",
        counts.ahead + " ahead, " + counts.behind + " behind " + counts.base);
      diverged.title = "Commits on this branch and not on " + counts.base + ", and the reverse";
      li.appendChild(diverged);
    }
    var last = branch.last_commit;
    if (last) {
      var meta = el("span", "gcj-meta");
      meta.appendChild(link(last.url, last.short_sha || String(last.sha || "").slice(0, 7), "gcj-sha"));
      if (last.message) { meta.appendChild(document.createTextNode(" " + firstLine(last.message))); }
      if (last.time) {
        meta.appendChild(document.createTextNode(" · "));
        meta.appendChild(timeEl(last.time));
      }
      li.appendChild(meta);
    }
    return li;
  }

  function commitItem(commit) {
    var li = el("li", "gcj-item gcj-commit");
    li.appendChild(link(commit.url, commit.short_sha || String(commit.sha || "").slice(0, 7), "gcj-sha"));
    var message = el("span", "gcj-title gcj-message", firstLine(commit.message));
    message.title = String(commit.message || "");
    li.appendChild(message);
    (commit.tags || []).forEach(function (name) { li.appendChild(el("span", "gcj-tag", name)); });
    var meta = el("span", "gcj-meta");
    var author = commit.author || {};
    meta.appendChild(el("span", "gcj-author", author.name || author.email || ""));
    if (commit.branch) {
      meta.appendChild(document.createTextNode(" · "));
      meta.appendChild(el("span", "gcj-ref gcj-commit-branch", commit.branch));
    }
    meta.appendChild(document.createTextNode(" · "));
    meta.appendChild(timeEl(commit.time));
    li.appendChild(meta);
    return li;
  }

  function addTag(tag) {
    var g = group(tag.repository);
    if (g.tagNames[tag.name]) { return; }
    g.tagNames[tag.name] = true;
    g.tags.hidden = false;
    g.tags.appendChild(link(tag.url, tag.name, "gcj-tag"));
  }

  function newest(page) {
    // Repository ids in order of their newest item on this page (groups are newest first).
    var latest = {};
    function see(item, time) {
      var id = String(item.repository.id);
      var t = Date.parse(time || "") || 0;
      if (!(id in latest) || t > latest[id].t) { latest[id] = { t: t, repository: item.repository }; }
    }
    (page.pull_requests || []).forEach(function (pr) { see(pr, pr.updated); });
    (page.branches || []).forEach(function (b) { see(b, b.updated); });
    (page.commits || []).forEach(function (c) { see(c, c.time); });
    return Object.keys(latest).map(function (id) { return latest[id]; })
      .sort(function (a, b) { return b.t - a.t; })
      .map(function (entry) { return entry.repository; });
  }

  function renderPage(page) {
    newest(page).forEach(group);
    (page.pull_requests || []).forEach(function (pr) { add(group(pr.repository), "pull_requests", pullRequestItem(pr)); });
    (page.branches || []).forEach(function (b) { add(group(b.repository), "branches", branchItem(b)); });
    (page.commits || []).forEach(function (c) { add(group(c.repository), "commits", commitItem(c)); });
    (page.tags || []).forEach(addTag);
    nextCursor = page.next_cursor || null;
    moreButton.hidden = !nextCursor;
  }

  function renderNotices(page) {
    var counts = page.counts || {};
    setCounts(counts);
    var indexing = page.indexing || [];
    var indexingEl = document.getElementById("gcj-indexing");
    if (indexing.length) {
      var text = names(indexing);
      var more = (page.indexing_total || indexing.length) - indexing.length;
      if (more > 0) { text += " and " + plural(more, "more repository", "more repositories"); }
      indexingEl.querySelector("[data-indexing-names]").textContent = text;
      indexingEl.hidden = false;
    }
    renderTokenPrompt(page.needs_token_integrations || []);
    var total = (counts.commits || 0) + (counts.branches || 0) + (counts.pull_requests || 0);
    document.getElementById("gcj-empty").hidden = total > 0 || indexing.length > 0;
  }

  // One "Add your token for <integration>" link per integration the viewer needs a token for:
  // the user settings page inside Jira (our generalPages module, told the integration with
  // ac.integration), a plain target=_top link, so it works with or without AP.js.
  function renderTokenPrompt(needs) {
    var tokenEl = document.getElementById("gcj-needs-token");
    var list = tokenEl.querySelector("[data-needs-token-list]");
    list.textContent = "";
    needs.forEach(function (integration) {
      var li = el("li", "gcj-token-prompt");
      var a = el("a", null, "Add your token for " + (integration.name || "this integration"));
      a.href = tokensUrl + "?ac.integration=" + encodeURIComponent(String(integration.id));
      a.target = "_top";
      a.setAttribute("data-integration-id", String(integration.id));
      li.appendChild(a);
      list.appendChild(li);
    });
    tokenEl.hidden = needs.length === 0;
  }

  // ---- create branch / pull request ---------------------------------------------------------

  // The buttons show only when some repository allows the action (host and features).
  function offerActions() {
    var optionsUrl = root.getAttribute("data-create-options-url");
    if (!optionsUrl) { return; }
    function repositoriesFor(action) {
      // An empty summary: the buttons need no issue details, so the API need not ask Jira.
      return window.GitConnect.api(optionsUrl + "?action=" + action + "&summary=").then(function (options) {
        return (options && options.repositories) || [];
      });
    }
    function some(repositories, flag) {
      return repositories.some(function (r) { return r[flag]; });
    }
    repositoriesFor("branch").then(function (repositories) {
      document.getElementById("gcj-create-branch").hidden = !some(repositories, "can_create_branch");
      // That list holds the repositories allowing branches; others may still allow pull requests.
      if (some(repositories, "can_create_pull_request")) { return true; }
      return repositoriesFor("pull_request").then(function (more) { return some(more, "can_create_pull_request"); });
    }).then(function (pullRequest) {
      document.getElementById("gcj-create-pull-request").hidden = !pullRequest;
    }).catch(function () {
      // No buttons then: the panel's own data is still shown.
    }).then(function () {
      root.setAttribute("data-actions-ready", "true");
      resize();
    });
  }

  // Inside Jira the links open our dialogs modules (AP.dialog); without AP.js they stay plain
  // links to the same pages in a new tab.
  function dialogLink(id) {
    var link = document.getElementById(id);
    link.addEventListener("click", function (event) {
      var AP = window.AP;
      if (!(AP && AP.dialog && AP.dialog.create)) { return; }
      event.preventDefault();
      var dialog = AP.dialog.create({
        key: link.getAttribute("data-dialog-key"),
        size: "medium",
        chrome: false,
        customData: { issueKey: root.getAttribute("data-issue-key") }
      });
      if (dialog && dialog.on) {
        dialog.on("close", function (data) { if (data && data.created) { reload(); } });
      }
    });
  }

  // After a branch or pull request was created: the first page again, from scratch.
  function reload() {
    window.GitConnect.api(apiUrl + "?limit=" + PAGE_SIZE).then(function (page) {
      groups = {};
      groupsEl.textContent = "";
      renderNotices(page);
      renderPage(page);
      resize();
    }).catch(function () { /* the panel keeps what it shows */ });
  }

  function resize() {
    if (window.AP && window.AP.resize) { window.AP.resize(); }
  }

  function showMore() {
    if (!nextCursor) { return; }
    moreButton.disabled = true;
    moreStatus.textContent = "Loading…";
    var url = apiUrl + "?limit=" + PAGE_SIZE + "&cursor=" + encodeURIComponent(nextCursor);
    window.GitConnect.api(url).then(function (page) {
      moreStatus.textContent = "";
      setCounts(page.counts || {});
      renderPage(page);
    }).catch(function (err) {
      var code = String((err && err.code) || "");
      moreStatus.textContent = /^jwt_/.test(code) || code === "unauthorized"
        ? "Your session expired: reload the issue to see more."
        : "Could not load more: " + ((err && err.message) || "unknown error");
    }).then(function () {
      moreButton.disabled = false;
      resize();
    });
  }

  var initial = {};
  try {
    initial = JSON.parse(document.getElementById("gcj-initial").textContent || "{}");
  } catch (e) {
    initial = {};
  }
  renderNotices(initial);
  renderPage(initial);
  moreButton.addEventListener("click", showMore);
  dialogLink("gcj-create-branch");
  dialogLink("gcj-create-pull-request");
  offerActions();
  root.setAttribute("data-ready", "true");
  resize();
})();
