package server

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

// This file reads a token request: the GET query and Authorization header,
// or the POST form (OAuth2), into a tokenRequest, refusing what is
// malformed or ambiguous.

// tokenRequest is what a GET query or a POST form asked for.
type tokenRequest struct {
	service  string
	scopes   []string
	account  string
	clientID string
	cred     identity.Credentials
	post     bool
	// offline: the client asked for a refresh token (offline_token=true,
	// access_type=offline).
	offline bool
}

// parseRequest reads what the client asked for and the credentials it
// presented.
func (s *Server) parseRequest(r *http.Request) (tokenRequest, error) {
	var tr tokenRequest
	var params url.Values
	var err error
	switch r.Method {
	case http.MethodGet, http.MethodHead: // the mux routes HEAD to GET handlers
		params, err = url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			return tr, badRequest("malformed query string")
		}
		tr.cred, err = parseAuthorization(r.Header.Values("Authorization"))
		if err != nil {
			return tr, err
		}
		tr.account = params.Get("account")
		tr.offline = isTrue(params.Get("offline_token"))
		if tr.account != "" && tr.cred.Kind == identity.CredentialBasic && tr.account != tr.cred.Username {
			return tr, badRequest("account %q does not match the user name of the credentials", tr.account)
		}
	case http.MethodPost:
		tr.post = true
		// ServeHTTP has read the form (readForm), before taking a slot.
		params = r.PostForm
		if params == nil {
			if params, err = s.parseForm(nil, r); err != nil {
				return tr, err
			}
		}
		tr.offline = params.Get("access_type") == "offline"
		switch gt := params.Get("grant_type"); gt {
		case "password":
			tr.cred = identity.Credentials{
				Kind:     identity.CredentialBasic,
				Username: params.Get("username"),
				Secret:   identity.Secret(params.Get("password")),
			}
		case "refresh_token":
			if s.refresher() == nil {
				return tr, &requestError{status: http.StatusBadRequest, code: "UNSUPPORTED", oauth: "unsupported_grant_type",
					msg: "refresh tokens are turned off on this token server; log in with a password (grant_type=password)"}
			}
			switch len(params["refresh_token"]) {
			case 0:
				return tr, badRequest("missing refresh_token")
			case 1:
			default:
				return tr, badRequest("parameter refresh_token given more than once")
			}
			tr.cred = identity.Credentials{Kind: identity.CredentialRefresh, Secret: identity.Secret(params.Get("refresh_token"))}
		case "":
			return tr, badRequest("missing grant_type")
		default:
			return tr, &requestError{status: http.StatusBadRequest, code: "UNSUPPORTED", oauth: "unsupported_grant_type",
				msg: "unsupported grant_type; use password"}
		}
	}
	for _, key := range []string{"service", "account", "client_id"} {
		if len(params[key]) > 1 {
			return tr, badRequest("parameter %s given more than once", key)
		}
	}
	tr.service = params.Get("service")
	tr.clientID = params.Get("client_id")
	tr.scopes = params["scope"]
	return tr, nil
}

// parseForm reads a POST body of at most MaxBodyBytes as a form. w, if not
// nil, is told when the body is too large (the connection is then closed
// after the answer). A body that stops coming in on its read deadline
// (readForm sets it) is a 408.
func (s *Server) parseForm(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/x-www-form-urlencoded" {
			return nil, &requestError{status: http.StatusUnsupportedMediaType, code: "UNSUPPORTED", oauth: "invalid_request",
				msg: "POST body must be application/x-www-form-urlencoded"}
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	if err != nil {
		if tooBig := (*http.MaxBytesError)(nil); errors.As(err, &tooBig) {
			return nil, err
		}
		if isTimeout(err) {
			return nil, &requestError{status: http.StatusRequestTimeout, code: "REQUEST_TIMEOUT", oauth: "invalid_request",
				msg: fmt.Sprintf("the request body did not arrive within %v", s.bodyTimeout())}
		}
		// The client went away or sent a broken body: its fault, not ours.
		return nil, badRequest("could not read the request body")
	}
	params, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, badRequest("malformed form body")
	}
	return params, nil
}

// isTrue reads a boolean query parameter as docker sends it ("true").
func isTrue(v string) bool { return strings.EqualFold(v, "true") || v == "1" }

// parseAuthorization reads the credentials of a GET request. Several
// Authorization headers are refused rather than guessing which one counts.
func parseAuthorization(values []string) (identity.Credentials, error) {
	switch len(values) {
	case 0:
		return identity.Credentials{Kind: identity.CredentialNone}, nil
	case 1:
	default:
		return identity.Credentials{}, badRequest("more than one Authorization header")
	}
	scheme, rest, _ := strings.Cut(values[0], " ")
	rest = strings.TrimSpace(rest)
	switch strings.ToLower(scheme) {
	case "basic":
		raw, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return identity.Credentials{}, badRequest("malformed Basic Authorization header: not base64")
		}
		user, pass, ok := strings.Cut(string(raw), ":")
		if !ok {
			return identity.Credentials{}, badRequest("malformed Basic Authorization header: no ':' between user name and password")
		}
		return identity.Credentials{Kind: identity.CredentialBasic, Username: user, Secret: identity.Secret(pass)}, nil
	case "bearer":
		if rest == "" {
			return identity.Credentials{}, badRequest("malformed Bearer Authorization header: empty token")
		}
		return identity.Credentials{Kind: identity.CredentialBearer, Secret: identity.Secret(rest)}, nil
	default:
		return identity.Credentials{}, badRequest("unsupported Authorization scheme; use Basic or Bearer")
	}
}

// pickService is the service the token is for: the one asked for, which
// must be one we serve, or the only one.
func (s *Server) pickService(service string) (string, error) {
	if service == "" {
		if len(s.opts.Services) == 1 {
			return s.opts.Services[0], nil
		}
		return "", badRequest("missing service; this token server serves %s", strings.Join(s.opts.Services, ", "))
	}
	if !slices.Contains(s.opts.Services, service) {
		return "", badRequest("unknown service %q; this token server serves %s", service, strings.Join(s.opts.Services, ", "))
	}
	return service, nil
}
