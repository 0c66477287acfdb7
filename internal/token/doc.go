// Package token owns signing keys and what is signed with them: loading and
// generating keys (EC P-256, RSA, Ed25519), their key IDs and optional
// certificate chain (x5c), the public JWK set, and the claim set of a
// registry bearer token (Minter). A KeySet is one signing key plus the
// public keys published beside it (a previous key whose tokens are still
// valid, or the next one); a KeyRing holds the current set so that a reload
// rotates the signing key without a restart. For tokens this server issues
// to itself, such as refresh tokens (whose format internal/authn/refresh
// owns), it signs and verifies a JWS of a given typ and derives each key's
// binding key. All JOSE work is done by jwx.
package token
