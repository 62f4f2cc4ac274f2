// Swagger UI over the served document. "Authorize" takes a bearer token from
// POST /api/v1/auth/token; "Try it out" then calls this server with it. The token lives in this
// page only (no persistence), and no outside validator is asked about the document.
window.ui = SwaggerUIBundle({
  url: "/api/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: false,
  validatorUrl: null,
  displayRequestDuration: true,
});
