// Package sourcehut authenticates Sourcehut OAuth2 tokens, such as the one a
// builds.sr.ht job gets from `oauth: registry.example.com/REGISTRY:RW`. It
// decodes the token (BARE payload + MAC, decoded here with the standard
// library), checks version, expiry and grants locally, asks meta.sr.ht
// whether the MAC is good (only sourcehut holds the key), and caches the
// answer in an LRU keyed by the SHA-256 of the token, never the token itself:
// a valid token until min(expiry, max TTL), a rejected one briefly, an
// upstream failure not at all. Concurrent first requests with one token share
// one upstream call.
package sourcehut
