// Package api is the JSON API of nkudo-server: the Gin engine, its
// cross-cutting middleware (request ids, access log, metrics, panic
// recovery, body limits, rate limits, authentication, idempotency, audit)
// and the handlers of the operator-facing /v1 routes.
//
// The server package owns listeners, TLS and shutdown; it builds an API
// with New and serves Handler. Later features (enrollment, the agent
// channel) add their routes through Engine, and the OpenAPI completeness
// check (OpenAPIRouteDiff) covers them automatically.
//
// Authentication: the admin key (NKUDO_ADMIN_KEY) or a tenant API key is
// sent as "Authorization: Bearer <key>". Tenant-scoped routes (/v1/sites,
// /v1/hosts, …) act on the caller's tenant; the admin key has no tenant of
// its own, so on those routes it must name one with the X-Nkudo-Tenant
// header or the ?tenant= query parameter, otherwise the request is refused
// with 400 invalid_argument. The admin key acts as a tenant admin there.
package api
