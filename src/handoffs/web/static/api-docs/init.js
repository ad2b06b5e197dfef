// Starts Swagger UI on /schema. A separate file, not an inline script, so the page keeps a
// strict Content-Security-Policy. Requests made with "Try it out" carry the console's CSRF
// token when the browser has a console session; with "Authorize" they carry a bearer token.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  function csrfToken() {
    var prefix = root.dataset.csrfCookie + "=";
    var match = document.cookie.split("; ").find(function (row) {
      return row.indexOf(prefix) === 0;
    });
    return match ? decodeURIComponent(match.split("=")[1]) : undefined;
  }
  window.ui = SwaggerUIBundle({
    url: root.dataset.specUrl,
    domNode: root,
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    requestInterceptor: function (request) {
      var token = csrfToken();
      if (token !== undefined) request.headers[root.dataset.csrfHeader] = token;
      return request;
    },
  });
})();
