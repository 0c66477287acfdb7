package main

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// daemonTokenTTL is the token.ttl of the token server of the daemon's
// refresh cell: the shortest the server allows.
const (
	daemonTokenTTL    = time.Minute
	daemonTokenTTLCfg = "1m"
)

// cellDaemonRefresh: `docker login` through the daemon stores an identity
// token (the refresh token); the daemon pushes with it, and pushes and
// pulls again once every access token of the first push has expired. The
// cell has a token server of its own with token.ttl 1m and a registry of
// the same version pointed at it, so the wait is one minute, not five.
// That the daemon refreshed is read from the token server's log: its
// requests for the repository, authenticated with the refresh token
// (auth_method refresh/password). The registry would accept an expired
// token for its 60 s of leeway; the daemon does not keep access tokens
// between operations anyway, and asks anew with the identity token.
func cellDaemonRefresh(ctx context.Context, s *session, c client) outcome {
	spec := s.reg.spec
	tok, err := s.m.startTokenServer(ctx, "srht-registry-ttl-"+spec.id, spec.trust == "x5c", daemonTokenTTLCfg)
	if err != nil {
		return failed("a token server with token.ttl %s: %v", daemonTokenTTLCfg, err)
	}
	defer tok.proc.Stop(stopGrace)
	cfg, _ := s.m.goodConfig(spec)
	cfg.realm = tok.realm
	reg, err := s.m.startRegistry(ctx, spec, cfg, tok, "refresh")
	if err != nil {
		return failed("a registry for the token server with token.ttl %s: %v", daemonTokenTTLCfg, err)
	}
	defer reg.proc.Stop(stopGrace)
	s, err = s.m.newSession(reg, c.name(), "identity-refresh-ttl")
	if err != nil {
		return failed("%v", err)
	}
	if err := c.setup(ctx, s); err != nil {
		return fromErr("setup", err)
	}
	if o, ok := dockerLoginIdentity(ctx, s, c); !ok {
		return o
	}
	repo := "bob/refresh-" + c.name()
	mark := tok.proc.log.Len()
	if err := c.push(ctx, s, repo+":v1"); err != nil {
		return failed("the first push, with the identity token: %v", err)
	}
	firstDone := time.Now()
	if _, push := refreshGrants(tok.proc.log.Since(mark), repo); !push {
		return failed("the first push succeeded, but the token server's log shows no push granted to a request authenticated by the refresh token")
	}
	// Every access token of the first push was issued before firstDone.
	select {
	case <-ctx.Done():
		return failed("waiting for the access tokens to expire: %v", ctx.Err())
	case <-time.After(time.Until(firstDone.Add(daemonTokenTTL + time.Second))):
	}
	waited := time.Since(firstDone).Round(time.Second)
	mark = tok.proc.log.Len()
	if err := c.push(ctx, s, repo+":v2"); err != nil {
		return failed("a push %v after the first, its access tokens expired: %v", waited, err)
	}
	if err := c.pull(ctx, s, repo+":v2"); err != nil {
		return failed("docker rmi + pull after the access tokens expired: %v", err)
	}
	n, push := refreshGrants(tok.proc.log.Since(mark), repo)
	if !push {
		return failed("the second push succeeded, but the token server's log shows no push granted to a request authenticated by the refresh token since the first")
	}
	if a, err := readDockerAuth(s); err != nil || a.IdentityToken == "" || a.password() != "" {
		return failed("after the refresh, config.json no longer holds the identity token alone (%v)", err)
	}
	return passed(fmt.Sprintf("token.ttl %s: %v after the first push, the daemon pushed, and pulled after docker rmi, with only the stored identitytoken: %d token requests for %s authenticated by the refresh token (auth_method refresh/password), push granted",
		daemonTokenTTLCfg, waited, n, repo))
}

// refreshGrant is srht-registry's line (log.format text) for a token
// request answered 200, authenticated with a refresh token a password
// login issued, and what it granted.
var refreshGrant = regexp.MustCompile(`\bmsg=request .*\bstatus=200 .*\bauth_method=refresh/password .*\bgranted=\[([^\]]*)\]`)

// refreshGrants counts the requests of log that refreshGrant matches and
// that were granted something on repo, and says whether one was granted
// push.
func refreshGrants(log, repo string) (n int, push bool) {
	for line := range strings.Lines(log) {
		m := refreshGrant.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		for _, g := range strings.Fields(m[1]) {
			if actions, ok := strings.CutPrefix(g, "repository:"+repo+":"); ok {
				n++
				push = push || slices.Contains(strings.Split(actions, ","), "push")
				break
			}
		}
	}
	return n, push
}
