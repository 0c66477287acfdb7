// Package fakeoidc is a test OIDC issuer: the kind of token service a CI
// (GitHub Actions, GitLab CI) or a Kubernetes cluster runs, for the tests and
// development harnesses of the OIDC login (internal/authn/oidc). It serves a
// discovery document (/.well-known/openid-configuration, shaped like GitHub
// Actions' real one) and the key set its jwks_uri names, and mints ID tokens
// whose claim sets follow the vendors' documented shapes: [Issuer.GitHubClaims],
// [Issuer.GitLabClaims] and [Issuer.KubernetesClaims].
//
// It owns what a test needs to make the issuer misbehave: key rotation
// ([Issuer.RotateKey], with or without the old key still published), an
// outage ([Issuer.SetDown], [Issuer.SetStatus], [Issuer.SetDelay]), a
// discovery document that lies ([Issuer.SetDiscoveryField]), request counts
// ([Issuer.Calls], [Issuer.JWKSCalls]), and forged tokens for negative
// tests: alg none ([Issuer.MintNone]), HS256 keyed with the issuer's public
// key ([Issuer.MintHMACWithPublicKey], the key-confusion attack), and tokens
// signed with a foreign key under the issuer's kid ([Issuer.MintWithKey]).
//
// It must never be imported by the server: it mints tokens that the server
// would trust if configured with its issuer. Keys are generated at start.
package fakeoidc
