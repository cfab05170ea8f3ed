// The create-branch and create-pull-request dialogs (templates/action_dialog.html).
//
// Loads /api/issues/<key>/create-options, offers the repositories that allow the action, checks
// branch names the way git does before sending, POSTs the request (202 {job_id}) and polls
// /api/jobs/<id> with backoff until the job is done or failed. A 409 user_token_required opens
// the "add your token" step (PUT /api/me/tokens/<integration>), then the request is sent again.
// Everything that comes from a git host (repository, branch names, titles, errors) reaches the
// DOM through textContent, form values or a checked http(s) href — never as markup.
// Works inside an AP dialog (AP.dialog.close, flags) and in a plain tab when all.js is missing.
(function () {
  "use strict";

  var root = document.getElementById("gcj-action");
  if (!root) { return; }

  var action = root.getAttribute("data-action") === "pull_request" ? "pull_request" : "branch";
  var issueKey = root.getAttribute("data-issue-key") || "";
  var issueUrl = root.getAttribute("data-issue-url") || "";
  var apiRoot = root.getAttribute("data-api-root") || "/api";
  var pageToken = document.body.getAttribute("data-page-token") || "";
  var summary = root.getAttribute("data-issue-summary") || "";
  var issueType = root.getAttribute("data-issue-type") || "";

  var WORDS = {
    branch: {
      capability: "can_create_branch",
      submitPath: "/branches",
      sending: "Sending the request…",
      queued: "Waiting for a worker to create the branch…",
      running: "Creating the branch on the git host…",
      done: "Branch created",
      failed: "The branch was not created",
      none: "No repository linked to this project allows creating branches. A Jira administrator can switch " +
        "on \u201cCreate branches\u201d for an integration in Manage repositories."
    },
    pull_request: {
      capability: "can_create_pull_request",
      submitPath: "/pull-requests",
      sending: "Sending the request…",
      queued: "Waiting for a worker to create the pull request…",
      running: "Creating the pull request on the git host…",
      done: "Pull request created",
      failed: "The pull request was not created",
      none: "No repository linked to this project allows creating pull requests. A Jira administrator can " +
        "switch on \u201cCreate pull requests\u201d for an integration in Manage repositories."
    }
  }[action];

  // Hosts whose tokens may need a user name next to them (app passwords, HTTP passwords, AWS keys):
  // [user name label, its help, token label].
  var PASSWORD_HELP = "Needed with an app password or HTTP password; leave it empty for a personal access token.";
  var USERNAME_PROVIDERS = {
    "bitbucket-cloud": ["Username on Bitbucket", PASSWORD_HELP, "Access token or app password"],
    "bitbucket-datacenter": ["Username on Bitbucket", PASSWORD_HELP, "HTTP access token or password"],
    "gerrit": ["Username on Gerrit", "Your Gerrit account's user name.", "HTTP password"],
    "git": ["Username on the git server", PASSWORD_HELP, "Access token or password"],
    "aws-codecommit": ["AWS access key id", "The access key id of your IAM user.", "AWS secret access key"]
  };
  var POLL_FIRST_MS = 400;
  var POLL_MAX_MS = 4000;
  var SLOW_AFTER_MS = 20000;
  var TRANSIENT_RETRIES = 5;

  var form = document.getElementById("gcj-form");
  var tokenForm = document.getElementById("gcj-token-form");
  var repositorySelect = document.getElementById("gcj-repository");
  var sourceInput = document.getElementById("gcj-source");
  var nameInput = document.getElementById("gcj-name");
  var targetInput = document.getElementById("gcj-target");
  var titleInput = document.getElementById("gcj-title");
  var bodyInput = document.getElementById("gcj-body");
  var formError = document.getElementById("gcj-form-error");

  var options = null; // the create-options answer
  var repositories = {}; // id -> repository (only those allowing the action)
  var nameEdited = false;
  var pending = null; // the last request sent: {repository, body}
  var pollTimer = null;
  var branchesRequest = 0;

  // ---- small helpers -------------------------------------------------------------------------

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function safeHref(url) {
    return typeof url === "string" && /^https?:\/\//i.test(url) ? url : null;
  }

  function query(params) {
    var parts = [];
    Object.keys(params).forEach(function (k) {
      var v = params[k];
      if (v !== "" && v !== null && v !== undefined) {
        parts.push(encodeURIComponent(k) + "=" + encodeURIComponent(v));
      }
    });
    return parts.length ? "?" + parts.join("&") : "";
  }

  function resize() {
    if (window.AP && window.AP.resize) {
      try { window.AP.resize(); } catch (e) { /* optional */ }
    }
  }

  function inDialog() {
    return !!(window.AP && window.AP.dialog && window.AP.dialog.close);
  }

  // Exactly one of the page's states is visible; data-state lets tests and styles follow along.
  var STATES = { loading: "gcj-loading", unavailable: "gcj-unavailable", form: "gcj-form", token: "gcj-token-form",
    progress: "gcj-progress", done: "gcj-result", failed: "gcj-failure" };

  function show(state) {
    Object.keys(STATES).forEach(function (name) {
      document.getElementById(STATES[name]).hidden = name !== state;
    });
    root.setAttribute("data-state", state);
    resize();
  }

  // ---- the API ---------------------------------------------------------------------------------

  function contextToken() {
    var AP = window.AP;
    if (AP && AP.context && AP.context.getToken) {
      return new Promise(function (resolve) {
        var settled = false;
        window.setTimeout(function () { if (!settled) { settled = true; resolve(pageToken); } }, 3000);
        AP.context.getToken(function (token) { if (!settled) { settled = true; resolve(token || pageToken); } });
      });
    }
    return Promise.resolve(pageToken);
  }

  // Rejects with an Error carrying .status (0: not reached), .code, .field and .retryAt.
  function api(method, path, payload) {
    return contextToken().then(function (token) {
      var init = { method: method, headers: { "Accept": "application/json", "Authorization": "JWT " + token } };
      if (payload !== undefined) {
        init.headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(payload);
      }
      return fetch(apiRoot + path, init).catch(function () {
        var offline = new Error("Git Connect could not be reached. Check your connection and try again.");
        offline.status = 0;
        throw offline;
      });
    }).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (data) {
        if (response.ok && data !== null) { return data; }
        var problem = (data && data.error) || {};
        var text = problem.message;
        if (response.status === 401) {
          text = "Your Jira session for this dialog has expired. Close it and open it again from the issue.";
        } else if (!text) {
          text = "Git Connect answered with an error (HTTP " + response.status + "). Try again in a moment.";
        }
        var err = new Error(text);
        err.status = response.status;
        err.code = problem.code || "";
        err.field = problem.field || "";
        err.retryAt = problem.retry_at || null;
        throw err;
      });
    });
  }

  // ---- git's rules for branch names (mirrors connect_app/services/branch_names.py) ------------

  var NAME_MAX_LENGTH = 250;
  var SHA = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

  // Why a branch name is refused, as a sentence starting with `what`, or null when it is fine.
  function refNameProblem(name, what) {
    what = what || "The branch name";
    function says(reason) { return what + " " + reason + "."; }
    if (!name) { return says("is empty"); }
    if (name.length > NAME_MAX_LENGTH) { return says("is longer than " + NAME_MAX_LENGTH + " characters"); }
    if (name.charAt(0) === "-") { return says("must not start with \u201c-\u201d"); }
    if (name === "@" || name === "HEAD") { return says("must not be \u201c" + name + "\u201d"); }
    if (name.indexOf(" ") !== -1) { return says("must not contain spaces"); }
    if (/[\x00-\x1f\x7f]/.test(name)) { return says("must not contain control characters (tabs, line breaks…)"); }
    var bad = [];
    "~^:?*[\\".split("").forEach(function (c) { if (name.indexOf(c) !== -1) { bad.push("\u201c" + c + "\u201d"); } });
    if (bad.length) { return says("must not contain " + bad.join(" ")); }
    var sequences = ["..", "@{", "//"];
    for (var i = 0; i < sequences.length; i++) {
      if (name.indexOf(sequences[i]) !== -1) { return says("must not contain \u201c" + sequences[i] + "\u201d"); }
    }
    if (name.charAt(0) === "/") { return says("must not start with \u201c/\u201d"); }
    if (name.charAt(0) === ".") { return says("must not start with \u201c.\u201d"); }
    if (name.charAt(name.length - 1) === "/") { return says("must not end with \u201c/\u201d"); }
    if (name.charAt(name.length - 1) === ".") { return says("must not end with \u201c.\u201d"); }
    var parts = name.split("/");
    for (var j = 0; j < parts.length; j++) {
      if (parts[j].charAt(0) === ".") { return says("has a part starting with \u201c.\u201d (" + parts[j] + ")"); }
      if (/\.lock$/.test(parts[j])) { return says("has a part ending in \u201c.lock\u201d (" + parts[j] + ")"); }
    }
    return null;
  }

  // A starting point may also be a full commit sha.
  function sourceProblem(ref, what) {
    return SHA.test(ref) ? null : refNameProblem(ref, what);
  }

  // ---- field errors ----------------------------------------------------------------------------

  function fieldError(input, message) {
    if (!input) { return; }
    var node = document.getElementById(input.id + "-error");
    input.setAttribute("aria-invalid", message ? "true" : "false");
    if (node) {
      node.textContent = message || "";
      node.hidden = !message;
    }
  }

  function clearErrors() {
    [sourceInput, nameInput, targetInput, titleInput, bodyInput].forEach(function (input) { fieldError(input, null); });
    formError.hidden = true;
    formError.textContent = "";
  }

  function validate() {
    var problems = [];
    function check(input, message) {
      if (input && message) {
        fieldError(input, message);
        problems.push(input);
      }
    }
    var source = sourceInput.value.trim();
    if (action === "branch") {
      check(sourceInput, source ? sourceProblem(source, "The source branch") : "Choose the branch to start from.");
      check(nameInput, nameInput.value.trim() ? refNameProblem(nameInput.value.trim()) : "Enter a name for the new branch.");
    } else {
      var target = targetInput.value.trim();
      check(sourceInput, source ? refNameProblem(source, "The source branch") : "Choose the branch with your changes.");
      check(targetInput, target ? refNameProblem(target, "The target branch") : "Choose the branch to merge into.");
      if (source && target && source === target) {
        check(targetInput, "The target branch must differ from the source branch.");
      }
      check(titleInput, titleInput.value.trim() ? null : "Enter a title for the pull request.");
    }
    return problems;
  }

  // ---- repositories and branches -------------------------------------------------------------

  function selectedRepository() {
    return repositories[repositorySelect.value] || null;
  }

  function integrationOf(repository) {
    return (repository && repository.integration) || {};
  }

  function fillRepositories(list, lastId) {
    repositorySelect.textContent = "";
    var groups = {};
    list.forEach(function (repository) {
      var integration = integrationOf(repository);
      var groupKey = String(integration.id);
      if (!groups[groupKey]) {
        groups[groupKey] = el("optgroup");
        groups[groupKey].label = integration.display_name || "Repositories";
        repositorySelect.appendChild(groups[groupKey]);
      }
      var option = el("option", null, repository.name);
      option.value = String(repository.id);
      groups[groupKey].appendChild(option);
    });
    var preferred = lastId !== null && lastId !== undefined && repositories[String(lastId)] ? String(lastId) : String(list[0].id);
    repositorySelect.value = preferred;
  }

  function setOptions(datalistId, names) {
    var list = document.getElementById(datalistId);
    if (!list) { return; }
    list.textContent = "";
    names.slice(0, 200).forEach(function (name) {
      var option = document.createElement("option");
      option.value = name;
      list.appendChild(option);
    });
  }

  // GET /api/repositories/<id>/branches answers names; accept a bare list or {branches: [...]},
  // items as strings or {name}.
  function branchNames(data) {
    var items = Array.isArray(data) ? data : (data && (data.branches || data.items)) || [];
    return items.map(function (item) { return typeof item === "string" ? item : item && item.name; })
      .filter(function (name) { return typeof name === "string" && name; });
  }

  function loadBranches(repository, q) {
    var ticket = ++branchesRequest;
    return api("GET", "/repositories/" + encodeURIComponent(String(repository.id)) + "/branches" + query({ q: q }))
      .then(function (data) {
        if (ticket !== branchesRequest) { return null; }
        return branchNames(data);
      }).catch(function () { return null; }); // the inputs still take any name
  }

  function refreshBranchOptions(q) {
    var repository = selectedRepository();
    if (!repository) { return Promise.resolve(null); }
    return loadBranches(repository, q).then(function (names) {
      if (names) {
        setOptions("gcj-source-options", names);
        setOptions("gcj-target-options", names);
      }
      return names;
    });
  }

  function describeRepository(repository) {
    var help = form.querySelector("[data-repository-help]");
    var integration = integrationOf(repository);
    var text = "On " + (integration.display_name || "the git host");
    if (repository.default_branch) { text += " · default branch " + repository.default_branch; }
    if (repository.needs_user_token) {
      text += ". This integration uses your own token on the host: you will be asked for it once.";
    }
    help.textContent = text;
  }

  function onRepositoryChange() {
    var repository = selectedRepository();
    if (!repository) { return; }
    describeRepository(repository);
    var defaultBranch = repository.default_branch || "";
    if (action === "branch") {
      sourceInput.value = defaultBranch;
      if (!nameEdited) {
        nameInput.value = repository.branch_name || options.branch_name || "";
      }
      refreshBranchOptions("");
    } else {
      targetInput.value = defaultBranch;
      sourceInput.value = "";
      // A branch that mentions the issue is most likely the one to merge.
      refreshBranchOptions(issueKey).then(function (names) {
        var mine = (names || []).filter(function (n) { return n.toUpperCase().indexOf(issueKey.toUpperCase()) !== -1 && n !== defaultBranch; });
        if (mine.length && !sourceInput.value) { sourceInput.value = mine[0]; }
        return refreshBranchOptions("");
      });
    }
    clearErrors();
  }

  var typeTimer = null;
  function onBranchTyping(event) {
    window.clearTimeout(typeTimer);
    var value = event.target.value.trim();
    typeTimer = window.setTimeout(function () { refreshBranchOptions(value); }, 250);
  }

  // ---- loading ---------------------------------------------------------------------------------

  function fallbackTitle() {
    return summary ? issueKey + " " + summary : issueKey;
  }

  function fallbackBody() {
    var lines = [];
    if (summary) { lines.push(summary, ""); }
    lines.push("Jira issue: " + (issueUrl || issueKey));
    return lines.join("\n");
  }

  function unavailable(message) {
    document.querySelector("[data-unavailable-message]").textContent = message;
    show("unavailable");
  }

  function load() {
    // Without a summary (the panel's dialogs) the API asks Jira for the issue itself.
    var path = "/issues/" + encodeURIComponent(issueKey) + "/create-options" +
      query({ action: action, summary: summary, issuetype: summary ? issueType : "" });
    api("GET", path).then(function (data) {
      options = data || {};
      var issue = options.issue || {};
      if (!summary && issue.summary) {
        summary = String(issue.summary);
        root.querySelector("[data-issue-summary-text]").textContent = summary;
      }
      var allowed = (options.repositories || []).filter(function (r) { return r && r[WORDS.capability]; });
      repositories = {};
      allowed.forEach(function (r) { repositories[String(r.id)] = r; });
      if (!allowed.length) {
        unavailable(WORDS.none);
        return;
      }
      fillRepositories(allowed, options.last_repository_id);
      if (action === "pull_request") {
        var pr = options.pull_request || {};
        titleInput.value = pr.title || fallbackTitle();
        bodyInput.value = pr.body || fallbackBody();
      }
      onRepositoryChange();
      show("form");
      repositorySelect.focus();
    }).catch(function (err) {
      unavailable(err.message);
    });
  }

  // ---- submitting and following the job ------------------------------------------------------

  function collect() {
    var repository = selectedRepository();
    var body = { repository_id: repository.id, source: sourceInput.value.trim() };
    if (action === "branch") {
      body.name = nameInput.value.trim();
    } else {
      body.target = targetInput.value.trim();
      body.title = titleInput.value.trim();
      body.body = bodyInput.value;
    }
    return { repository: repository, body: body };
  }

  var FIELD_INPUTS = { source: "gcj-source", name: "gcj-name", target: "gcj-target", title: "gcj-title", body: "gcj-body" };

  function backToForm(err) {
    show("form");
    var input = err && err.field ? document.getElementById(FIELD_INPUTS[err.field.replace(/^.*\./, "")] || "") : null;
    if (input) {
      fieldError(input, err.message);
      input.focus();
    } else {
      if (err) {
        formError.textContent = err.message;
        formError.hidden = false;
      }
      repositorySelect.focus();
    }
    resize();
  }

  function send() {
    setProgress(WORDS.sending);
    show("progress");
    document.getElementById("gcj-progress").focus(); // the form and its buttons are gone: keep focus in the dialog
    var path = "/issues/" + encodeURIComponent(issueKey) + WORDS.submitPath;
    api("POST", path, pending.body).then(function (data) {
      if (!data || !data.job_id) { throw new Error("Git Connect did not start the job. Try again."); }
      follow(String(data.job_id));
    }).catch(function (err) {
      if (err.code === "user_token_required") {
        askForToken(pending.repository);
      } else if (err.status === 400 || err.status === 404 || err.status === 409 || err.status === 422 || err.status === 0) {
        backToForm(err);
      } else {
        failed({ code: err.code, message: err.message, retry_at: err.retryAt });
      }
    });
  }

  function submit(event) {
    event.preventDefault();
    clearErrors();
    var problems = validate();
    if (problems.length) {
      problems[0].focus();
      resize();
      return;
    }
    pending = collect();
    send();
  }

  var slowTimer = null;
  function setProgress(text) {
    document.querySelector("[data-progress-text]").textContent = text;
  }

  function follow(jobId) {
    var delay = POLL_FIRST_MS;
    var transient = 0;
    var slow = document.querySelector("[data-progress-slow]");
    slow.hidden = true;
    window.clearTimeout(slowTimer);
    slowTimer = window.setTimeout(function () {
      slow.textContent = "This is taking longer than usual: the git host is slow to answer. You can close this " +
        "dialog; the job goes on and its result shows on the issue.";
      slow.hidden = false;
      resize();
    }, SLOW_AFTER_MS);
    root.setAttribute("data-job-id", jobId);

    function again() {
      delay = Math.min(Math.round(delay * 1.5), POLL_MAX_MS);
      pollTimer = window.setTimeout(tick, delay);
    }

    function tick() {
      api("GET", "/jobs/" + encodeURIComponent(jobId)).then(function (job) {
        transient = 0;
        var status = job && job.status;
        if (status === "done") {
          window.clearTimeout(slowTimer);
          succeeded(job.result || {});
        } else if (status === "failed") {
          window.clearTimeout(slowTimer);
          failed(job.error || {});
        } else {
          setProgress(status === "running" ? WORDS.running : WORDS.queued);
          again();
        }
      }).catch(function (err) {
        if ((err.status === 0 || err.status >= 500) && transient < TRANSIENT_RETRIES) {
          transient += 1;
          again();
          return;
        }
        window.clearTimeout(slowTimer);
        failed({ code: err.code, message: err.message });
      });
    }
    setProgress(WORDS.queued);
    tick();
  }

  function succeeded(result) {
    document.querySelector("[data-result-title]").textContent = WORDS.done;
    var line = document.querySelector("[data-result-line]");
    line.textContent = "";
    var repository = pending.repository;
    var label = result.name || (action === "branch" ? pending.body.name : pending.body.title);
    var href = safeHref(result.url);
    var name = el(href ? "a" : "span", action === "branch" ? "gcj-ref" : "gcj-result-title", label);
    if (href) {
      name.href = href;
      name.target = "_blank";
      name.rel = "noopener noreferrer";
    }
    name.setAttribute("data-result-link", "");
    line.appendChild(document.createTextNode(action === "branch" ? "Branch " : "Pull request "));
    line.appendChild(name);
    line.appendChild(document.createTextNode(" in "));
    line.appendChild(el("span", "gcj-strong", repository.name));
    line.appendChild(document.createTextNode(href ? ". Open it on the git host with the link." : "."));
    show("done");
    root.setAttribute("data-created", "true");
    flag(WORDS.done, "success");
    var close = document.getElementById("gcj-result").querySelector("[data-close]");
    if (close) { close.focus(); }
  }

  function retryWords(iso) {
    var when = new Date(iso);
    if (isNaN(when.getTime())) { return ""; }
    var minutes = Math.max(1, Math.ceil((when.getTime() - Date.now()) / 60000));
    var clock = when.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
    return "The git host's rate limit is used up. Try again after " + clock + " (in about " + minutes +
      (minutes === 1 ? " minute)." : " minutes).");
  }

  function failed(error) {
    document.querySelector("[data-failure-title]").textContent = WORDS.failed;
    document.querySelector("[data-failure-message]").textContent =
      error.message || "The git host refused the request without saying why. Try again in a moment.";
    var retry = document.querySelector("[data-failure-retry]");
    var words = error.retry_at ? retryWords(error.retry_at) : "";
    retry.textContent = words;
    retry.hidden = !words;
    root.setAttribute("data-error-code", error.code || "");
    show("failed");
    var back = document.querySelector("#gcj-failure [data-back]");
    if (back) { back.focus(); }
  }

  function flag(title, type) {
    var AP = window.AP;
    if (!(AP && AP.flag && AP.flag.create)) { return; }
    try {
      AP.flag.create({ title: title, type: type, close: "auto" }); // fixed words only: flags render HTML
    } catch (e) { /* optional */ }
  }

  // ---- the "add your token" step -------------------------------------------------------------

  var tokenInput = document.getElementById("gcj-token-value");
  var usernameInput = document.getElementById("gcj-token-username");

  function askForToken(repository) {
    var integration = integrationOf(repository);
    tokenForm.querySelector("[data-integration-name]").textContent = integration.display_name || "this integration";
    var labels = USERNAME_PROVIDERS[integration.provider] || null;
    tokenForm.querySelector("[data-username-field]").hidden = !labels;
    tokenForm.querySelector("[data-username-label]").textContent = labels ? labels[0] : "Username on the git host";
    tokenForm.querySelector("[data-username-help]").textContent = labels ? labels[1] : PASSWORD_HELP;
    tokenForm.querySelector("[data-token-label]").textContent = labels ? labels[2] : "Personal access token";
    fieldError(tokenInput, null);
    fieldError(usernameInput, null);
    show("token");
    tokenInput.focus();
  }

  function saveToken(event) {
    event.preventDefault();
    var value = tokenInput.value.trim();
    if (!value) {
      fieldError(tokenInput, "Paste your personal access token.");
      tokenInput.focus();
      return;
    }
    var integration = integrationOf(pending.repository);
    var payload = { token: value };
    var username = usernameInput.value.trim();
    if (username && !tokenForm.querySelector("[data-username-field]").hidden) { payload.username = username; }
    var button = document.getElementById("gcj-token-submit");
    button.disabled = true;
    fieldError(tokenInput, null);
    fieldError(usernameInput, null);
    api("PUT", "/me/tokens/" + encodeURIComponent(String(integration.id)), payload).then(function () {
      tokenInput.value = ""; // the token lives on the server only, encrypted
      button.disabled = false;
      pending.repository.needs_user_token = false;
      send();
    }).catch(function (err) {
      button.disabled = false;
      var onUsername = /username/.test(err.code || "") && !tokenForm.querySelector("[data-username-field]").hidden;
      var input = onUsername ? usernameInput : tokenInput;
      fieldError(input, err.message);
      input.focus();
      resize();
    });
  }

  // ---- closing ---------------------------------------------------------------------------------

  function close() {
    var created = root.getAttribute("data-created") === "true";
    window.clearTimeout(pollTimer);
    if (inDialog()) {
      window.AP.dialog.close({ created: created });
      return;
    }
    window.close();
    // Still open (a tab the browser does not let scripts close): say so.
    document.getElementById("gcj-close-note").hidden = false;
  }

  // ---- wiring ----------------------------------------------------------------------------------

  form.addEventListener("submit", submit);
  tokenForm.addEventListener("submit", saveToken);
  repositorySelect.addEventListener("change", function () {
    onRepositoryChange();
  });
  [sourceInput, targetInput].forEach(function (input) {
    if (input) { input.addEventListener("input", onBranchTyping); }
  });
  if (nameInput) {
    nameInput.addEventListener("input", function () {
      nameEdited = true;
      var value = nameInput.value.trim();
      // Say what is wrong while typing, once there is something to judge.
      fieldError(nameInput, value ? refNameProblem(value) : null);
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll("[data-close]"), function (button) {
    button.addEventListener("click", close);
  });
  document.querySelector("[data-token-back]").addEventListener("click", function () { backToForm(null); });
  document.querySelector("#gcj-failure [data-back]").addEventListener("click", function () {
    var code = root.getAttribute("data-error-code") || "";
    show("form");
    var focus = /exist|taken|name/.test(code) && nameInput ? nameInput : repositorySelect;
    focus.focus();
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && inDialog()) { close(); }
  });

  root.setAttribute("data-ready", "true");
  load();
})();
