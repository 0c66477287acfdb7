// Package fakemeta is a fake meta.sr.ht for tests and benchmarks. It is faithful to the
// real Sourcehut OAuth 2.0 bearer token format (core-go's auth.BearerToken:
// base64 RawStd of a BARE payload followed by an HMAC-SHA256 over it, keyed
// with a key derived from an Ed25519 seed) and to the responses of the real
// GraphQL endpoint, POST /query: the authentication middleware's status
// codes and error bodies (401, 400, 403), gqlgen's transport and validation
// answers (400, 422), and grant checks reported as GraphQL errors with HTTP
// 200. It also injects faults (delay, dropped connections, 5xx, non-JSON
// bodies) and counts calls.
//
// It must never be imported by the server: it mints tokens, and answers
// only the small part of meta.sr.ht's schema that a token check needs
// ({ version { … } } and { me { … } }); see [Server.Handler] for the exact
// behaviour. Its users are the tests and the development harnesses of the
// dev module (dev/cmd/loadbench, dev/cmd/matrix, dev/cmd/scaleout), which
// stand it in for meta.sr.ht on loopback.
package fakemeta
