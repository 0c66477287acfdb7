package identity

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Method says how an identity was established; policies may tell identities
// with the same subject apart by it.
type Method string

const (
	MethodAnonymous Method = "anonymous"
	MethodPassword  Method = "password"
	MethodSourcehut Method = "sourcehut"
	// MethodOIDC is an OIDC ID token of a trusted issuer (a CI job's, a
	// Kubernetes service account's); Provider names the authn.oidc entry.
	MethodOIDC Method = "oidc"
	// MethodRefresh is a refresh token this server issued at an earlier
	// password, Sourcehut or OIDC login; RefreshedFrom names that login's
	// method.
	MethodRefresh Method = "refresh"
)

// Identity is the authenticated client, as policy sees it. A principal is
// the pair (Provider, Subject): htpasswd:alice and sourcehut:alice are
// different people.
type Identity struct {
	Method Method
	// Provider names the account system that vouched for Subject
	// (ProviderHtpasswd, ProviderSourcehut); "" for anonymous. A refresh
	// token keeps the provider of its login.
	Provider string
	Subject  string // "" for anonymous
	// Namespace is the personal namespace the identity owns (Namespace/*),
	// "" when it owns none: the account model's answer (authn.NamespaceOf);
	// whether the site reserved the name is the policy's to say.
	Namespace string
	Groups    []string
	// Sourcehut is what the Sourcehut token said: for MethodSourcehut, and
	// for MethodRefresh when RefreshedFrom is MethodSourcehut.
	Sourcehut *Sourcehut
	// OIDC is what the ID token said: for MethodOIDC, and for
	// MethodRefresh when RefreshedFrom is MethodOIDC.
	OIDC *OIDC
	// DirectoryUser is, for a directory's identity (authn.ldap), the name
	// the user logged in with, by which its refresh tokens look it up
	// again; the subject is the configured attribute, which may differ.
	// Not part of the policy input.
	DirectoryUser string
	// RefreshedFrom is, for MethodRefresh only, the method of the login the
	// refresh token was issued at: MethodPassword, MethodSourcehut or
	// MethodOIDC.
	RefreshedFrom Method
}

// EffectiveMethod is the method that vouched for the subject: RefreshedFrom
// for a refresh token, Method otherwise. Rules about how someone logged in
// (the Sourcehut read-only cap) must look at this, not at Method.
func (id Identity) EffectiveMethod() Method {
	if id.Method == MethodRefresh {
		return id.RefreshedFrom
	}
	return id.Method
}

// Anonymous is the identity of a client that presented no credentials.
var Anonymous = Identity{Method: MethodAnonymous}

// Authenticated reports whether the identity names someone.
func (id Identity) Authenticated() bool {
	return id.Method != MethodAnonymous && id.Provider != "" && id.Subject != ""
}

// Principal is the identity's "<provider>:<subject>", the form in which the
// configuration names it; "" for anonymous.
func (id Identity) Principal() string {
	if !id.Authenticated() {
		return ""
	}
	return Principal(id.Provider, id.Subject)
}

// Sourcehut holds what a Sourcehut OAuth2 token said about its holder.
type Sourcehut struct {
	Username  string
	ClientID  string
	Expires   time.Time
	AllGrants bool // the grant string was empty: a personal access token
	Grants    []Grant
	// Access is the token's level on the requested registry: "RW" or "RO".
	Access string
}

// OIDC holds what a verified OIDC ID token said about its holder.
type OIDC struct {
	// Issuer is the token's iss, exactly as configured.
	Issuer string
	// Claims are every claim of the token as sent (strings, booleans,
	// numbers as float64 or json.Number, arrays, nested objects), for
	// claim-based rules: repository_owner, ref, project_path, …
	Claims map[string]any
}

// Grant is one "service/SCOPE:ACCESS" entry of a Sourcehut grant string.
type Grant struct {
	Service string
	Scope   string
	Access  string // "RO" or "RW"
}

// Request is what the client asked through, beside its credentials.
type Request struct {
	// DecisionID names this request's decisions in logs and in the
	// X-Decision-Id response header; it is not part of the policy input.
	DecisionID string
	Service    string
	ClientIP   string
	ClientID   string
	UserAgent  string
	Time       time.Time
}

// Secret is a credential string that never prints itself, so a secret that
// slips into a log call or an error format shows as a placeholder.
type Secret string

const redacted = "[REDACTED]"

func (Secret) String() string               { return redacted }
func (Secret) GoString() string             { return redacted }
func (Secret) LogValue() slog.Value         { return slog.StringValue(redacted) }
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Reveal returns the secret itself, for the one place that must compare it.
func (s Secret) Reveal() string { return string(s) }

// CredentialKind says what kind of credentials a request carried.
type CredentialKind int

const (
	CredentialNone    CredentialKind = iota // no Authorization header
	CredentialBasic                         // Basic user:password, or the OAuth2 password grant
	CredentialBearer                        // Bearer token
	CredentialRefresh                       // the OAuth2 refresh_token grant: a refresh token we issued
)

// Credentials are what the client presented.
type Credentials struct {
	Kind     CredentialKind
	Username string
	Secret   Secret // the password, bearer token or refresh token
	// Service is the registry the credentials are presented for: a
	// Sourcehut token is only good for the registries its grants name, a
	// refresh token only for the one it was issued for.
	Service string
	// ClientID is the request's client_id parameter ("" when absent): a
	// refresh token is bound to the client it was issued to.
	ClientID string
	// ClientIP is where they came from, for counting failed logins.
	ClientIP string
}

// ThrottledError refuses a login without checking it: too many recent
// failures from the client's address or for the user name.
type ThrottledError struct {
	RetryAfter time.Duration
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("too many failed logins; retry in %v", e.RetryAfter.Round(time.Second))
}

var (
	// ErrUnauthenticated means the credentials were checked and are not
	// good: the client gets 401, never an anonymous token.
	ErrUnauthenticated = errors.New("authentication failed")
	// ErrUnavailable means the credentials could not be checked (an
	// upstream was down or slow): the client gets a 503-class error.
	ErrUnavailable = errors.New("authentication unavailable")
	// ErrCredentialsRequired is the ErrUnauthenticated of a request that
	// presented none where anonymous access is off.
	ErrCredentialsRequired = fmt.Errorf("%w: credentials required", ErrUnauthenticated)
)
