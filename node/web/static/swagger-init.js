// Swagger UI for the node's own /openapi.json; a file rather than an inline script, for the CSP.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: false, // its anchors inside the expand buttons are nested interactive controls (axe)
    persistAuthorization: false,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
