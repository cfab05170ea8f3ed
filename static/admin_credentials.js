// Manage repositories: one integration's credentials (templates/admin_credentials.html).
// "Replace token" (or password, key) sends the new secret once, to
// PUT /api/integrations/{id}/credentials, which checks it with the host before it replaces the
// current one; "Sign in again" runs an OAuth sign-in in a popup as the wizard does
// (POST /api/oauth/flows, poll until authorized) and hands the flow id to the same endpoint.
// No secret is ever read back: the inputs are cleared after every attempt that succeeded.
(function () {
  "use strict";
  var gcj = window.gcjAdmin;
  if (!gcj) { return; }
  var byId = gcj.byId;
  var el = gcj.el;
  var show = gcj.show;
  var $ = gcj.$;
  var $$ = gcj.$$;

  var form = byId("gcj-credentials-form");
  var panel = byId("gcj-credentials");
  var errorBox = byId("gcj-credentials-error");
  var oauthStatus = byId("gcj-cred-oauth-status");
  var oauthLink = byId("gcj-cred-oauth-link");
  var c = { integration: null, provider: null, type: null, flow: null, saving: false };

  function open(integration) {
    c.integration = integration;
    c.flow = null;
    gcj.stop("reauth");
    oauthStatus.textContent = "";
    show(oauthLink, false);
    gcj.clearErrors(form);
    describe(integration);
    Promise.all([gcj.providers(), gcj.oauthProviders()]).then(function (results) {
      var provider = results[0].filter(function (p) { return p.id === integration.provider; })[0];
      var configured = {};
      (results[1].providers || []).forEach(function (p) { configured[p.id] = p.configured; });
      c.provider = provider || { id: integration.provider, name: integration.provider_name, auth_types: [integration.auth_type] };
      renderTypes(c.provider, !!configured[integration.provider]);
      panel.setAttribute("data-loaded", String(integration.id));
    }).catch(function (err) { gcj.flag("error", err.message); });
  }

  function describe(i) {
    var how = gcj.authTypes[i.auth_type] || i.auth_type;
    byId("gcj-credentials-current").textContent = (i.account_name ? "Connected to " + i.provider_name + " as " + i.account_name : "Connected to " + i.provider_name) +
      " with " + (i.auth_type === "oauth" ? "an OAuth sign-in" : "a " + how.charAt(0).toLowerCase() + how.slice(1)) + ".";
  }

  function renderTypes(provider, oauthConfigured) {
    var current = c.integration.auth_type;
    var types = (provider.auth_types || []).filter(function (t) {
      return t === current || (t !== "none" && (t !== "oauth" || oauthConfigured));
    });
    if (types.indexOf(current) < 0) { types.unshift(current); }
    var box = gcj.clear(byId("gcj-cred-type-options"));
    types.forEach(function (type) {
      var wrap = el("div", "gcj-radio");
      var radio = el("input");
      radio.type = "radio";
      radio.name = "gcj-cred-type";
      radio.value = type;
      radio.id = "gcj-cred-type-" + type;
      radio.checked = type === current;
      radio.addEventListener("change", function () { setType(type); });
      var label = el("label", null, gcj.authTypes[type] || type);
      label.htmlFor = radio.id;
      wrap.appendChild(radio);
      wrap.appendChild(label);
      box.appendChild(wrap);
    });
    show(byId("gcj-cred-types"), types.length > 1);
    $$("[data-cred-provider]", form).forEach(function (n) { n.textContent = provider.name; });
    show($("[data-cred-when=git]", form), provider.id === "git");
    $("[data-cred-token-help]", form).textContent = "A new token for " + provider.name + " with the same access as the one it replaces.";
    setType(current);
  }

  function setType(type) {
    c.type = type;
    $$("[data-cred-for]", form).forEach(function (block) {
      var mine = block.getAttribute("data-cred-for") === type;
      show(block, mine);
      $$("[data-cred]", block).forEach(function (input) { input.value = ""; input.removeAttribute("aria-invalid"); });
    });
    show($("[data-cred-submit]", form), type !== "oauth");
    byId("gcj-cred-save").textContent = gcj.credentialsAction({ auth_type: type });
    byId("gcj-cred-oauth").textContent = c.integration.auth_type === "oauth" ? "Sign in again" : "Sign in with " + (c.provider ? c.provider.name : "the host");
    gcj.clearErrors(form);
    gcj.resize();
  }

  function typedAuth() {
    var auth = { type: c.type };
    $$("[data-cred-for=" + c.type + "] [data-cred]", form).forEach(function (input) {
      if (input.value.trim()) { auth[input.getAttribute("data-cred")] = input.value.trim(); }
    });
    var need = { pat: ["token", "Enter the new token."], password: ["password", "Enter the new password."], ssh_key: ["token", "Paste the new private key."], aws: ["secret_access_key", "Enter the new secret access key."] }[c.type];
    if (need && !auth[need[0]]) { throw gcj.fieldProblem("auth." + need[0], need[1]); }
    return auth;
  }

  function replace(payload, button) {
    var before = c.integration;
    c.saving = true;
    if (button) { button.disabled = true; }
    errorBox.hidden = true;
    return gcj.call("PUT", "/api/integrations/" + before.id + "/credentials", payload).then(function (r) {
      $$("[data-cred]", form).forEach(function (input) { input.value = ""; });
      gcj.flag("success", "New credentials of " + r.display_name + " saved" + (r.account_name ? " (" + r.account_name + ")" : "") + "." + (r.note ? " " + r.note : ""));
      if (r.account_changed) {
        var previous = r.previous_account_name || before.account_name;
        gcj.flag("warning", r.display_name + " now connects as " + (r.account_name || "another account") +
          (previous ? " instead of " + previous : "") + ": it sees that account's repositories from now on.");
      }
      return gcj.reload("credentials");
    }).catch(function (err) {
      gcj.showError(form, err, errorBox);
    }).then(function () {
      c.saving = false;
      if (button) { button.disabled = false; }
    });
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    gcj.clearErrors(form);
    var auth;
    try { auth = typedAuth(); } catch (err) { gcj.showError(form, err, errorBox); return; }
    replace({ auth: auth }, byId("gcj-cred-save"));
  });

  // -- OAuth: a popup to the host; the flow is polled, the popup's last page also posts a message
  byId("gcj-cred-oauth").addEventListener("click", function () {
    var i = c.integration;
    var start = this;
    gcj.clearErrors(form);
    var popup = window.open("", "gcj-oauth", "popup=yes,width=760,height=800");
    var data = { provider: i.provider };
    if (i.base_url) { data.base_url = i.base_url; }
    if (i.namespace) { data.namespace = i.namespace; }
    oauthStatus.textContent = "Starting the sign-in…";
    start.disabled = true;
    gcj.call("POST", "/api/oauth/flows", data).then(function (flow) {
      c.flow = flow.id;
      oauthLink.href = flow.authorize_url;
      show(oauthLink, true);
      if (popup && !popup.closed) {
        popup.location.href = flow.authorize_url;
        oauthStatus.textContent = "Sign in on " + c.provider.name + " in the window that opened, then come back here.";
      } else {
        oauthStatus.textContent = "Your browser blocked the sign-in window: use “Open the sign-in page”.";
      }
      gcj.every("reauth", 1500, poll);
    }).catch(function (err) {
      if (popup && !popup.closed) { popup.close(); }
      oauthStatus.textContent = "";
      gcj.showError(form, err, errorBox);
    }).then(function () { start.disabled = false; });
  });

  function poll() {
    var flowId = c.flow;
    if (!flowId || c.saving) { return !!flowId; }
    return gcj.call("GET", "/api/oauth/flows/" + encodeURIComponent(flowId)).then(function (flow) {
      if (flowId !== c.flow) { return false; }
      if (flow.status === "authorized") {
        c.flow = null;
        show(oauthLink, false);
        oauthStatus.textContent = "Signed in to " + c.provider.name + ". Checking the new sign-in…";
        return replace({ oauth_flow: flowId }, null).then(function () { oauthStatus.textContent = ""; return false; });
      }
      if (flow.status === "failed") {
        c.flow = null;
        show(oauthLink, false);
        oauthStatus.textContent = "";
        gcj.showError(form, gcj.fieldProblem("auth", flow.error || "The sign-in failed."), errorBox);
        return false;
      }
      return true;
    }).catch(function (err) {
      oauthStatus.textContent = err.status === 404 ? "The sign-in expired. Choose “Sign in again”." : err.message;
      return err.status !== 404;
    });
  }

  window.addEventListener("message", function (event) {
    if (event.origin !== window.location.origin || !event.data || event.data.type !== "gcj-oauth") { return; }
    if (c.flow && event.data.flow === c.flow) { poll(); }
  });

  gcj.panels.credentials = { open: open };
})();
