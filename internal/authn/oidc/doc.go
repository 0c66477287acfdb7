// Package oidc authenticates OIDC ID tokens of trusted issuers: the
// workload identity tokens of CI jobs (GitHub Actions, GitLab CI, Forgejo,
// Buildkite, CircleCI) and Kubernetes projected service account tokens. One
// Authenticator per configured issuer (authn.oidc entry); a Set picks the
// one whose issuer a token names.
//
// It owns:
//
//   - Recognition without network: a token is an ID token of an issuer when
//     it has the shape of a compact JWS (three base64url segments, at most
//     MaxTokenSize bytes), its header is a JSON object with an alg, and its
//     payload a JSON object whose iss equals the configured issuer exactly.
//     A token of an issuer not configured is not recognised, and costs no
//     network call.
//   - The issuer's keys: discovery (/.well-known/openid-configuration, whose
//     issuer must equal the configured issuer exactly, and whose jwks_uri
//     must be https unless on loopback), or a configured JWKS URL; the key
//     set is fetched and refreshed in the background by jwx's jwk.Cache,
//     lazily: an issuer unreachable at start does not stop the server. A
//     token whose kid is not among the keys held triggers a refetch, at most
//     one per RefetchInterval; tokens whose keys are held keep verifying
//     while the issuer is down; a token whose keys cannot be fetched gets an
//     error wrapping identity.ErrUnavailable (503), never a grant.
//   - Verification: only asymmetric algorithms from Options.Algorithms (alg
//     none and HMAC are always refused, whatever the configuration), the
//     key chosen by kid must be of the token's algorithm (type, curve, and
//     its alg when the JWK names one: no key confusion), exact iss, one of
//     the audiences in aud, exp required, nbf and iat with Leeway, and the
//     optional MaxTokenAge.
//   - The identity: method oidc, provider Name, subject the SubjectClaim
//     (a non-empty string), and identity.OIDC{Issuer, Claims} with every
//     claim as sent: strings, booleans, arrays, nested objects as
//     map[string]any, and numbers as json.Number (the exact digits sent, so
//     an ID beyond 2^53 or a timestamp is not rounded; OPA and encoding/json
//     take json.Number as a number).
//
// Errors wrap identity.ErrUnauthenticated with fixed text saying what was
// wrong ("ID token expired"), or identity.ErrUnavailable; neither a token
// nor a claim's value ever goes into an error or a log. Verified tokens are
// not cached: with the keys held, a verification costs about 0.1 ms (one
// RS256 or ES256 signature check and the JSON decoding; see
// BenchmarkAuthenticate) and no network.
package oidc
