// "My git tokens": each integration that uses personal tokens, with the user's token status and a
// form to add / replace, test and remove it (JSON API under /api/me). The list embedded in the page
// (#gcj-initial) is rendered first; everything goes into the DOM through textContent. A token typed
// here is sent once and never shown back: the server only returns its last four characters.
(function () {
  "use strict";

  var root = document.getElementById("gcj-tokens");
  if (!root) { return; }
  var listEl = document.getElementById("gcj-token-list");
  var emptyEl = document.getElementById("gcj-tokens-empty");
  var flagsEl = document.getElementById("gcj-flags");
  var refreshBox = document.getElementById("gcj-refresh-box");
  var refreshButton = document.getElementById("gcj-refresh");
  var focusMissing = document.getElementById("gcj-focus-missing");
  var focusId = parseInt(root.getAttribute("data-focus") || "", 10);

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function api(path, options) {
    return window.GitConnect.api(path, options);
  }

  function flag(kind, text) {
    var node = el("div", "gcj-flag gcj-flag-" + kind);
    node.appendChild(el("span", "gcj-flag-text", text));
    var close = el("button", "gcj-button gcj-button-subtle", "Dismiss");
    close.type = "button";
    close.addEventListener("click", function () { node.remove(); });
    node.appendChild(close);
    flagsEl.appendChild(node);
  }

  function when(iso) {
    if (!iso) { return ""; }
    var date = new Date(iso);
    return isNaN(date.getTime()) ? iso : date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }

  // What the user types, by what the host accepts (see GET /api/me/tokens auth_types).
  function labels(authTypes, providerName) {
    var has = function (t) { return authTypes.indexOf(t) >= 0; };
    if (has("aws")) {
      return { user: "AWS access key id", userRequired: true, token: "AWS secret access key",
               userHelp: "The access key of your own IAM user." };
    }
    if (has("password") && has("pat")) {
      return { user: "User name (optional)", userRequired: false, token: "Personal access token or app password",
               userHelp: "Only with an app password or HTTP password; leave empty for a personal access token." };
    }
    if (has("password")) {
      return { user: "User name", userRequired: true, token: "Password or HTTP password",
               userHelp: "Your " + providerName + " user name." };
    }
    return { user: null, token: "Personal access token" };
  }

  function statusNode(entry) {
    var token = entry.token;
    var node = el("p", "gcj-token-status");
    node.setAttribute("data-status", "");
    if (!token) {
      node.textContent = "No token added yet.";
      return node;
    }
    if (token.invalid_reason) {
      node.classList.add("gcj-error-text");
      node.textContent = "Your token no longer works and is not used: " + token.invalid_reason;
      return node;
    }
    var parts = ["Token"];
    if (token.last4) { parts.push("ending in …" + token.last4); }
    if (token.host_account_name) { parts.push("for " + token.host_account_name); }
    var text = parts.join(" ");
    if (token.validated_at) { text += " · checked " + when(token.validated_at); }
    node.textContent = text;
    return node;
  }

  function field(id, label, input, help) {
    var wrap = el("div", "gcj-field");
    var labelEl = el("label", null, label);
    labelEl.htmlFor = id;
    input.id = id;
    wrap.appendChild(labelEl);
    wrap.appendChild(input);
    if (help) {
      var helpEl = el("p", "gcj-help", help);
      helpEl.id = id + "-help";
      input.setAttribute("aria-describedby", helpEl.id);
      wrap.appendChild(helpEl);
    }
    return wrap;
  }

  function button(text, className, type) {
    var b = el("button", "gcj-button" + (className ? " " + className : ""), text);
    b.type = type || "button";
    return b;
  }

  function card(entry) {
    var integration = entry.integration;
    var id = integration.id;
    var words = labels(integration.auth_types || [], integration.provider_name || integration.provider);
    var section = el("section", "gcj-token-card gcj-fieldset");
    section.id = "gcj-token-" + id;
    section.setAttribute("data-integration-id", String(id));
    section.setAttribute("aria-labelledby", "gcj-token-" + id + "-title");

    var title = el("h2", "gcj-step-title");
    title.id = "gcj-token-" + id + "-title";
    title.appendChild(el("span", "gcj-token-name", integration.display_name));
    title.appendChild(el("span", "gcj-muted", " · " + (integration.provider_name || integration.provider)));
    section.appendChild(title);
    if (entry.required) {
      var required = el("p", null);
      required.appendChild(el("span", "gcj-lozenge gcj-lozenge-warning", "Required by your administrator"));
      required.setAttribute("data-required", "");
      section.appendChild(required);
    }
    section.appendChild(statusNode(entry));

    var form = el("form", "gcj-token-form");
    form.noValidate = true;
    form.setAttribute("aria-label", "Token for " + integration.display_name);
    var userInput = null;
    if (words.user) {
      userInput = el("input");
      userInput.type = "text";
      userInput.autocomplete = "off";
      userInput.spellcheck = false;
      userInput.name = "username";
      form.appendChild(field("gcj-username-" + id, words.user, userInput, words.userHelp));
    }
    var tokenInput = el("input", "gcj-mono");
    tokenInput.type = "password";
    tokenInput.autocomplete = "new-password";
    tokenInput.spellcheck = false;
    tokenInput.name = "token";
    tokenInput.setAttribute("data-token-input", "");
    var tokenLabel = entry.token ? words.token + " (replaces the saved one)" : words.token;
    form.appendChild(field("gcj-token-input-" + id, tokenLabel, tokenInput,
      "It is checked with " + (integration.provider_name || "the host") + " before it is saved, and never shown again."));

    var actions = el("div", "gcj-step-actions");
    var save = button(entry.token ? "Replace token" : "Save token", "gcj-button-primary", "submit");
    actions.appendChild(save);
    var test = null;
    var remove = null;
    if (entry.token) {
      test = button("Test", null);
      test.setAttribute("aria-label", "Test the token for " + integration.display_name);
      remove = button("Remove", "gcj-danger-text");
      remove.setAttribute("aria-label", "Remove the token for " + integration.display_name);
      actions.appendChild(test);
      actions.appendChild(remove);
    }
    form.appendChild(actions);
    var errorEl = el("p", "gcj-field-error");
    errorEl.setAttribute("role", "alert");
    errorEl.setAttribute("data-error", "");
    errorEl.hidden = true;
    form.appendChild(errorEl);
    var resultEl = el("p", "gcj-check-result");
    resultEl.setAttribute("role", "status");
    resultEl.setAttribute("data-result", "");
    form.appendChild(resultEl);
    section.appendChild(form);

    var buttons = [save, test, remove].filter(Boolean);
    function busy(on, text) {
      buttons.forEach(function (b) { b.disabled = on; });
      resultEl.classList.remove("gcj-ok");
      resultEl.textContent = text || "";
    }
    function fail(err) {
      busy(false);
      errorEl.textContent = err.message;
      errorEl.hidden = false;
    }
    function clearError() {
      errorEl.hidden = true;
      errorEl.textContent = "";
      tokenInput.removeAttribute("aria-invalid");
      if (userInput) { userInput.removeAttribute("aria-invalid"); }
    }
    function replaceWith(newEntry, message, ok) {
      var fresh = card(newEntry);
      section.replaceWith(fresh);
      var result = fresh.querySelector("[data-result]");
      result.textContent = message;
      if (ok) { result.classList.add("gcj-ok"); }
      return fresh;
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      clearError();
      var token = tokenInput.value.trim();
      if (!token) {
        tokenInput.setAttribute("aria-invalid", "true");
        fail(new Error("Paste the token first."));
        tokenInput.focus();
        return;
      }
      var body = { token: token };
      if (userInput && userInput.value.trim()) { body.username = userInput.value.trim(); }
      if (words.userRequired && !body.username) {
        userInput.setAttribute("aria-invalid", "true");
        fail(new Error(words.user + " is needed too."));
        userInput.focus();
        return;
      }
      busy(true, "Checking the token with " + (integration.provider_name || "the host") + "…");
      api("/api/me/tokens/" + id, { method: "PUT", body: body }).then(function (saved) {
        tokenInput.value = "";
        var who = saved.token && saved.token.host_account_name ? " It belongs to " + saved.token.host_account_name + "." : "";
        var fresh = replaceWith(saved, "Saved." + who, true);
        fresh.querySelector("[data-token-input]").blur();
      }, function (err) {
        tokenInput.setAttribute("aria-invalid", "true");
        fail(err);
        tokenInput.focus();
      });
    });

    if (test) {
      test.addEventListener("click", function () {
        clearError();
        busy(true, "Checking the token with " + (integration.provider_name || "the host") + "…");
        api("/api/me/tokens/" + id + "/test", { method: "POST" }).then(function (answer) {
          var fresh = replaceWith(answer, answer.message, answer.ok);
          if (!answer.ok) {
            var freshError = fresh.querySelector("[data-error]");
            freshError.textContent = answer.message;
            freshError.hidden = false;
            fresh.querySelector("[data-result]").textContent = "";
          }
        }, fail);
      });
    }
    if (remove) {
      remove.addEventListener("click", function () {
        clearError();
        busy(true, "Removing…");
        api("/api/me/tokens/" + id, { method: "DELETE" }).then(function () {
          var cleared = Object.assign({}, entry, { token: null });
          replaceWith(cleared, "Removed. Your token for " + integration.display_name + " is deleted.", true);
        }, fail);
      });
    }
    return section;
  }

  function render(entries) {
    listEl.textContent = "";
    var focused = null;
    if (!isNaN(focusId)) {
      entries = entries.slice().sort(function (a, b) {
        return (b.integration.id === focusId) - (a.integration.id === focusId);
      });
    }
    entries.forEach(function (entry) {
      var node = card(entry);
      if (entry.integration.id === focusId) {
        node.classList.add("gcj-token-focus");
        focused = node;
      }
      listEl.appendChild(node);
    });
    emptyEl.hidden = entries.length > 0;
    refreshBox.hidden = entries.length === 0;
    focusMissing.hidden = isNaN(focusId) || focused !== null;
    if (focused) {
      var input = focused.querySelector("[data-token-input]");
      if (input) { input.focus(); }
    }
  }

  refreshButton.addEventListener("click", function () {
    refreshButton.disabled = true;
    api("/api/me/permissions/refresh", { method: "POST" }).then(function () {
      refreshButton.disabled = false;
      flag("success", "Done: your repository access is checked again the next time you open an issue.");
    }, function (err) {
      refreshButton.disabled = false;
      flag("error", err.message);
    });
  });

  var initial = { tokens: [] };
  try {
    initial = JSON.parse(document.getElementById("gcj-initial").textContent || "{}");
  } catch (e) {
    initial = { tokens: [] };
  }
  render(initial.tokens || []);
  root.setAttribute("data-ready", "true");
})();
