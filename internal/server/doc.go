// Package server owns the HTTP side: the Docker token endpoint (/auth, GET
// and the OAuth2 POST form), the public key set, health endpoints, request
// IDs and the access log, and the one place where errors become HTTP status
// codes and JSON error bodies. It declares the small interfaces it calls and
// imports only the leaf packages access and identity.
package server
