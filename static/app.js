// Shared iframe helpers. AP (all.js) may be missing (offline, tests): everything degrades.
(function () {
  "use strict";
  var body = document.body;
  var pageToken = body.getAttribute("data-page-token") || "";

  function contextToken() {
    if (window.AP && window.AP.context && window.AP.context.getToken) {
      // AP may answer nothing (or never): fall back to the token the page was rendered with.
      return new Promise(function (resolve) {
        var settled = false;
        window.setTimeout(function () { if (!settled) { settled = true; resolve(pageToken); } }, 3000);
        window.AP.context.getToken(function (token) {
          if (!settled) { settled = true; resolve(token || pageToken); }
        });
      });
    }
    return Promise.resolve(pageToken);
  }

  window.GitConnect = {
    api: function (path, options) {
      options = options || {};
      return contextToken().then(function (token) {
        var headers = Object.assign({ "Accept": "application/json" }, options.headers || {});
        headers["Authorization"] = "JWT " + token;
        if (options.body && typeof options.body !== "string") {
          headers["Content-Type"] = "application/json";
          options.body = JSON.stringify(options.body);
        }
        return fetch(path, Object.assign({}, options, { headers: headers })).then(function (r) {
          return r.json().catch(function () { return {}; }).then(function (data) {
            if (!r.ok) {
              var err = new Error((data.error && data.error.message) || ("HTTP " + r.status));
              err.code = data.error && data.error.code;
              throw err;
            }
            return data;
          });
        });
      });
    }
  };
  if (window.AP && window.AP.resize) { window.AP.resize(); }
})();
