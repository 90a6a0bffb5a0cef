// Package api is the JSON API of nkudo-server: the Gin engine, its
// cross-cutting middleware (request ids, access log, metrics, panic
// recovery, body limits, rate limits, authentication, idempotency, audit)
// and the handlers of the operator-facing /v1 routes.
//
// The server package owns listeners, TLS and shutdown; it builds an API
// with New and serves Handler. Later features add their routes through
// Engine, and the OpenAPI completeness check (OpenAPIRouteDiff) covers
// them automatically.
//
// The agent-facing routes need no API key: POST /v1/enroll trades an
// enrollment token and a CSR for a client certificate signed by
// Options.Authority (the CSR and host name are checked before the token
// is consumed, so a bad request never burns it), and GET /v1/agent/connect
// hands the request to Options.Hub, which authenticates the agent by its
// certificate. POST /v1/sites/{site}/plans stores a raw plan and gives it
// to the hub right after the commit; GET /v1/executions/{id}/logs lists an
// execution's log by seq or, with ?follow=true, streams it as Server-Sent
// Events fed by the hub. Revoking an agent closes its live session.
//
// The VM lifecycle routes (vm.go) turn each request into a one-action plan
// through the same path as raw plans: POST /v1/vms places the VM (the host
// asked for, or the least loaded online host of the site), records it and
// dispatches MicroVMCreate; start, stop, reboot and DELETE record the
// desired state and answer 202 with their plan. GET /v1/vms/{vm}/console
// (console.go) reads the VM's serial console through its agent over the
// channel, once or followed as Server-Sent Events.
//
// Authentication: the admin key (NKUDO_ADMIN_KEY) or a tenant API key is
// sent as "Authorization: Bearer <key>". Tenant-scoped routes (/v1/sites,
// /v1/hosts, …) act on the caller's tenant; the admin key has no tenant of
// its own, so on those routes it must name one with the X-Nkudo-Tenant
// header or the ?tenant= query parameter, otherwise the request is refused
// with 400 invalid_argument. The admin key acts as a tenant admin there.
package api
