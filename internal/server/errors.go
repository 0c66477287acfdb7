package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/access"
	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

// requestError is a client mistake the handler found itself.
type requestError struct {
	status int
	code   string
	// oauth is the RFC 6749 error code for OAuth2 clients, if any.
	oauth string
	msg   string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &requestError{status: http.StatusBadRequest, code: "INVALID_REQUEST", oauth: "invalid_request", msg: fmt.Sprintf(format, args...)}
}

// errorBody is both the Docker registry error shape, which docker and
// distribution clients print, and the OAuth2 one, which POST clients read.
type errorBody struct {
	Errors           []errorItem `json:"errors"`
	OAuthError       string      `json:"error,omitempty"`
	ErrorDescription string      `json:"error_description,omitempty"`
}

type errorItem struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// classify is the one place an error becomes a status, a code and a message
// for the client. Messages never carry credentials: causes stay in the log.
func classify(err error) (status int, code, oauth, msg string) {
	var re *requestError
	var tooBig *http.MaxBytesError
	var throttled *identity.ThrottledError
	switch {
	case errors.As(err, &throttled):
		return http.StatusTooManyRequests, "TOOMANYREQUESTS", "slow_down", throttled.Error()
	case errors.As(err, &re):
		return re.status, re.code, re.oauth, re.msg
	case errors.As(err, &tooBig):
		return http.StatusRequestEntityTooLarge, "REQUEST_TOO_LARGE", "invalid_request",
			fmt.Sprintf("request body larger than %d bytes", tooBig.Limit)
	case errors.Is(err, identity.ErrUnauthenticated):
		// Authenticators put only fixed, secret-free text in their errors.
		return http.StatusUnauthorized, "UNAUTHORIZED", "invalid_grant", err.Error()
	case errors.Is(err, identity.ErrUnavailable):
		return http.StatusServiceUnavailable, "UNAVAILABLE", "temporarily_unavailable",
			"credentials could not be checked: the service that vouches for them (meta.sr.ht, an OIDC issuer's key set, or a directory) could not be reached; try again later"
	case errors.Is(err, access.ErrInvalidScope), errors.Is(err, access.ErrTooManyScopes):
		return http.StatusBadRequest, "INVALID_REQUEST", "invalid_scope", err.Error()
	case errors.Is(err, access.ErrDecisionFailed):
		return http.StatusServiceUnavailable, "UNAVAILABLE", "temporarily_unavailable",
			"the access policy could not be evaluated; nothing was granted"
	default:
		return http.StatusInternalServerError, "INTERNAL", "server_error", "internal error"
	}
}

func writeError(w http.ResponseWriter, realm string, err error) int {
	status, code, oauth, msg := classify(err)
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf("Basic realm=%q", realm))
	}
	var throttled *identity.ThrottledError
	if errors.As(err, &throttled) {
		// Whole seconds, rounded up: a client that waits exactly this long
		// is let through.
		w.Header().Set("Retry-After", strconv.Itoa(int((throttled.RetryAfter+time.Second-1)/time.Second)))
	}
	body := errorBody{Errors: []errorItem{{Code: code, Message: msg}}, OAuthError: oauth, ErrorDescription: msg}
	writeJSON(w, status, body)
	return status
}

// The headers of a JSON answer, shared by every response: net/http only
// reads them, and a handler that set another value would replace the
// slice, not change it.
var (
	jsonContentType = []string{"application/json"}
	noStore         = []string{"no-store"}
)

// tokenBuffers hold token responses being written: one is a few hundred
// bytes, written once per token.
var tokenBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Cache-Control"] = noStore
	w.WriteHeader(status)
	if t, ok := v.(*tokenResponse); ok {
		bp := tokenBuffers.Get().(*[]byte)
		*bp = t.appendJSON((*bp)[:0])
		_, _ = w.Write(*bp)
		tokenBuffers.Put(bp)
		return
	}
	_ = json.NewEncoder(w).Encode(v)
}
