package server

import (
	"log/slog"
	"net/http"
	"strings"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/access"
	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

// This file is the token endpoint, GET and POST /auth: one straight path
// from the request to its outcome (parse, pick the service, authenticate,
// authorize each scope, maybe a refresh token, mint), which respond writes.

// tokenResponse is both the Docker token response and the OAuth2 one.
type tokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
	Scope       string `json:"scope,omitempty"`
	// RefreshToken is a new refresh token (a login that asked for offline
	// access) or the one presented (the refresh_token grant).
	RefreshToken string `json:"refresh_token,omitempty"`
}

// handleToken is what a token request comes to: a token response, or the
// error that stopped it, with what it had learned by then for the log line
// (who the client is, what was asked and granted, the decisions folded in)
// and the decision ID. Per-scope decision lines, when on, are written to
// log as the decisions come.
func (s *Server) handleToken(r *http.Request, log *slog.Logger, clientIP string) outcome {
	// Room for every attribute the line can get, at once: respond puts
	// its own in front.
	out := outcome{attrs: make([]any, requestAttrs, requestAttrs+24)}
	tr, err := s.parseRequest(r)
	if err != nil {
		return out.failed(err)
	}
	service, err := s.pickService(tr.service)
	if err != nil {
		return out.failed(err)
	}
	scopes, err := access.ParseScopes(tr.scopes, s.opts.MaxScopes)
	if err != nil {
		return out.failed(err)
	}
	tr.cred.Service = service
	tr.cred.ClientIP = clientIP
	tr.cred.ClientID = tr.clientID
	id, err := s.opts.Authenticator.Authenticate(r.Context(), tr.cred)
	if err != nil {
		return out.failed(err)
	}
	// A refreshed identity logs as method "refresh/password" or
	// "refresh/sourcehut": how it got here and how it logged in first.
	method := string(id.Method)
	if id.RefreshedFrom != "" {
		method += "/" + string(id.RefreshedFrom)
	}
	out.attrs = append(out.attrs, "auth_method", method, "provider", id.Provider, "subject", id.Subject)
	req := identity.Request{
		Service:   service,
		ClientIP:  tr.cred.ClientIP,
		ClientID:  tr.clientID,
		UserAgent: r.UserAgent(),
		Time:      s.opts.Now(),
	}
	// One decision ID per request, returned to the client and on the
	// request's log line (failed or not), ties a refused pull to its
	// decisions.
	decisionID := newRequestID()
	req.DecisionID = decisionID
	if len(scopes) > 0 {
		out.decisionID = decisionID
		out.attrs = append(out.attrs, "decision_id", decisionID)
	}
	decisions, err := s.opts.Authorizer.Authorize(r.Context(), id, req, scopes)
	if err != nil {
		return out.failed(err)
	}
	granted, attrs := s.foldDecisions(log, decisionID, method, id, decisions)
	out.attrs = append(out.attrs, attrs...)
	refresh, err := s.refreshToken(tr, id, service)
	if err != nil {
		return out.failed(err)
	}
	if refresh != "" {
		// That it was issued or presented, never the token.
		out.attrs = append(out.attrs, "refresh_token", map[bool]string{true: "presented", false: "issued"}[id.Method == identity.MethodRefresh])
	}
	// The token names the principal (htpasswd:alice), so the registry's
	// logs and notifications tell the providers' accounts apart too.
	tok, err := s.opts.Minter.Mint(id.Principal(), service, granted)
	if err != nil {
		return out.failed(err)
	}
	resp := &tokenResponse{
		Token:        tok.Signed,
		AccessToken:  tok.Signed,
		ExpiresIn:    int(tok.ExpiresIn / time.Second),
		IssuedAt:     tok.IssuedAt.UTC().Format(time.RFC3339),
		RefreshToken: refresh.Reveal(),
	}
	if tr.post {
		resp.Scope = grantedScopes(granted)
	}
	// The refresh grant hands back the token it was given: not a new one.
	s.metrics.issued(id.Method, resp.RefreshToken != "" && id.Method != identity.MethodRefresh)
	out.status, out.body = http.StatusOK, resp
	return out
}

// foldDecisions is what the policy granted, to mint, and the decisions
// folded into attributes of the request's log line: each scope requested
// and granted (a partial grant shows as fewer actions), the deny messages,
// each prefixed with its resource, the policy revision, how many answers
// came from the memo, and the time the policy took. With DecisionLines on,
// each decision also gets a line of its own, as it came.
func (s *Server) foldDecisions(log *slog.Logger, decisionID, method string, id identity.Identity, decisions []access.Decision) ([]access.Scope, []any) {
	lines := s.opts.DecisionLines != nil && s.opts.DecisionLines()
	granted := make([]access.Scope, 0, len(decisions))
	requestedLog := make([]string, 0, len(decisions))
	grantedLog := make([]string, 0, len(decisions))
	var deny []string
	memoised := 0
	var took time.Duration
	for _, d := range decisions {
		requestedLog = append(requestedLog, d.Requested.String())
		if d.Memoised {
			memoised++
		}
		took += d.Duration
		for _, reason := range d.Reasons {
			deny = append(deny, d.Requested.Resource.String()+": "+reason)
		}
		if lines {
			log.Info("decision",
				"decision_id", decisionID,
				"revision", d.Revision,
				"auth_method", method,
				"provider", id.Provider,
				"subject", id.Subject,
				"scope", d.Requested.Resource.String(),
				"requested", d.Requested.Actions,
				"granted", d.Granted,
				"deny", d.Reasons,
				"memoised", d.Memoised,
				"duration", d.Duration,
			)
		}
		if len(d.Granted) == 0 {
			continue
		}
		g := access.Scope{Resource: d.Requested.Resource, Actions: d.Granted}
		granted = append(granted, g)
		grantedLog = append(grantedLog, g.String())
	}
	attrs := []any{"requested", requestedLog, "granted", grantedLog}
	if len(deny) > 0 {
		attrs = append(attrs, "deny", deny)
	}
	if len(decisions) > 0 {
		attrs = append(attrs, "revision", revision(decisions), "memoised", memoised, "policy_duration", took)
	}
	return granted, attrs
}

// revision names the policy that decided: one revision, or each of them
// when a request's decisions came from several (a reload between them).
func revision(decisions []access.Decision) string {
	rev := decisions[0].Revision
	for _, d := range decisions[1:] {
		if d.Revision != decisions[0].Revision && !strings.Contains(" "+rev+" ", " "+d.Revision+" ") {
			rev += " " + d.Revision
		}
	}
	return rev
}

// grantedScopes is the OAuth2 response's scope: the granted scopes,
// space-separated.
func grantedScopes(granted []access.Scope) string {
	var b strings.Builder
	for i, g := range granted {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(g.String())
	}
	return b.String()
}

// refreshToken is the refresh token of the response, if any: the one
// presented, for the refresh_token grant (which returns the same token, as
// docker expects), or a new one for a password or Sourcehut login that asked
// for offline access. Anonymous gets none.
func (s *Server) refreshToken(tr tokenRequest, id identity.Identity, service string) (identity.Secret, error) {
	refresher := s.refresher()
	switch {
	case refresher == nil:
		return "", nil
	case tr.cred.Kind == identity.CredentialRefresh && id.Method == identity.MethodRefresh:
		return tr.cred.Secret, nil
	case tr.offline && (id.Method == identity.MethodPassword || id.Method == identity.MethodSourcehut || id.Method == identity.MethodOIDC):
		return refresher.Issue(id, service, tr.clientID, tr.cred.Secret)
	default:
		return "", nil
	}
}
