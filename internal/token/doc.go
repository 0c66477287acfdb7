// Package token owns signing keys and the tokens minted with them: loading
// and generating keys (EC P-256, RSA, Ed25519), their key IDs and optional
// certificate chain (x5c), the public JWK set, and the claim set of a registry
// bearer token. All JOSE work is done by jwx.
package token
