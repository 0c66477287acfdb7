// Package refresh owns refresh tokens: what one says (its JWS typ
// "refresh+jwt", its claims, its audience "<service>#refresh"), issuing one
// at a password or Sourcehut login that asked for offline access, and
// redeeming one for the identity it stands for (the OAuth2 refresh_token
// grant), which authn.Chain hands to it. A password user's token is bound to
// the user's htpasswd line by an HMAC, so it dies when the line changes; a
// Sourcehut user's token dies with the Sourcehut token it was made from; a
// token from before providers were named redeems with the provider its
// method implies. The signing, the verifying and the binding key come from
// Keys (the key ring of internal/token, which this package does not import),
// the htpasswd hashes from PasswordHashes (authn.Htpasswd).
package refresh
