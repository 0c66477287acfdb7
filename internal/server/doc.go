// Package server owns the HTTP side: the Docker token endpoint (/auth, GET
// and the OAuth2 POST form), the public key set, health endpoints, request
// IDs and the access log, the one place where errors become HTTP status
// codes and JSON error bodies, the request and token metrics, and the
// handler of the separate metrics listener. Each endpoint computes an
// outcome without touching the ResponseWriter; respond writes it (status,
// headers, body) and the request's one log line. It declares the small
// interfaces it calls and imports only the leaf packages access and
// identity (and Prometheus's client). Every component defines its own
// metrics and hands them out with Collectors(); internal/app registers them.
package server
