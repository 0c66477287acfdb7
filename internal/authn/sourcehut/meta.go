package sourcehut

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Errors of a validation: the token is bad, or we could not find out.
var (
	ErrRejected    = errors.New("meta.sr.ht rejected the token")
	ErrUnreachable = errors.New("meta.sr.ht could not be reached")
)

// versionQuery needs no grant: a build token that holds only the registry
// grant may run it, whereas `{ me { … } }` needs meta.sr.ht/PROFILE:RO.
const versionQuery = `{"query":"{ version { major minor patch } }"}`

// maxResponseBytes bounds what we read of a meta.sr.ht answer.
const maxResponseBytes = 1 << 20

// MetaClient asks a meta.sr.ht instance whether a token is valid.
type MetaClient struct {
	// URL is the instance's base URL, e.g. https://meta.sr.ht.
	URL string
	// HTTP is the client used; its Timeout, if any, also applies.
	HTTP *http.Client
	// Timeout bounds one validation.
	Timeout time.Duration
}

// Validate returns nil if meta.sr.ht accepts the token, an error wrapping
// ErrRejected if it refuses it, and one wrapping ErrUnreachable if the
// answer could not be had (connection error, timeout, 5xx, an answer we do
// not understand). Errors never contain the token.
func (c *MetaClient) Validate(ctx context.Context, token string) error {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(c.URL, "/")+"/query", strings.NewReader(versionQuery))
	if err != nil {
		return fmt.Errorf("%w: bad meta_url", ErrUnreachable)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		// A *url.Error names the URL, never the headers.
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return fmt.Errorf("%w: reading the answer: %w", ErrUnreachable, err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("%w: HTTP %d%s", ErrRejected, resp.StatusCode, graphQLMessage(body))
	case resp.StatusCode != http.StatusOK:
		// 5xx is an outage; any other status means we are not talking to
		// a meta.sr.ht /query endpoint (a wrong meta_url): neither says
		// anything about the token.
		return fmt.Errorf("%w: HTTP %d", ErrUnreachable, resp.StatusCode)
	}
	var answer struct {
		Data   json.RawMessage   `json:"data"`
		Errors []json.RawMessage `json:"errors"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&answer); err != nil {
		return fmt.Errorf("%w: answer is not JSON", ErrUnreachable)
	}
	if len(answer.Errors) > 0 {
		return fmt.Errorf("%w: GraphQL error%s", ErrRejected, graphQLMessage(body))
	}
	if len(answer.Data) == 0 || string(answer.Data) == "null" {
		return fmt.Errorf("%w: answer has no data", ErrUnreachable)
	}
	return nil
}

// graphQLMessage extracts the first error message of a GraphQL answer, for
// the log; meta.sr.ht's messages do not echo the token.
func graphQLMessage(body []byte) string {
	var answer struct {
		Errors []struct {
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &answer) != nil || len(answer.Errors) == 0 {
		return ""
	}
	msg := answer.Errors[0].Message
	if len(msg) > 200 {
		msg = msg[:200]
	}
	return fmt.Sprintf(": %q", msg)
}
