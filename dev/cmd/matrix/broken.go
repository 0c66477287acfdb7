package main

import (
	"context"
	"path/filepath"
	"regexp"
	"time"
)

// brokenSetup is a deliberately wrong registry config. One crane push
// through it must fail with the documented error: that is its pass.
type brokenSetup struct {
	id    string
	trust string // which registry versions: "jwks" (v3), "x5c" (2.8) or "" for both
	// break changes the good config.
	breakConfig func(m *matrix, c *regConfig)
	// expect must match the client's error or the registry's log line.
	expect *regexp.Regexp
	what   string // the mistake, for the table
	cause  string
	fix    string
}

var brokenSetups = []brokenSetup{
	{
		id:          "wrong-issuer",
		breakConfig: func(m *matrix, c *regConfig) { c.issuer = "not-" + issuer },
		expect:      regexp.MustCompile(`token from untrusted issuer: "` + issuer + `"`),
		what:        "registry `auth.token.issuer` differs from the server's `issuer`",
		cause:       "the registry accepts only tokens whose `iss` is its `auth.token.issuer`",
		fix:         "set the registry's `auth.token.issuer` to srht-registry's `issuer` (default `srht-registry`)",
	},
	{
		id:          "wrong-service",
		breakConfig: func(m *matrix, c *regConfig) { c.service = "wrong.example.com" },
		expect:      regexp.MustCompile(`unknown service .?"?wrong\.example\.com`),
		what:        "registry `auth.token.service` is not one of the server's `service`",
		cause:       "clients ask the token server for the registry's `service`; srht-registry serves only its configured ones (and tokens' `aud` is the service)",
		fix:         "use the same name in the registry's `auth.token.service` and srht-registry's `service` (a list when one server serves several registries)",
	},
	{
		id:          "stale-jwks",
		trust:       "jwks",
		breakConfig: func(m *matrix, c *regConfig) { c.jwks = filepath.Join(m.oldKeys, "jwks.json") },
		expect:      regexp.MustCompile(`token signed by untrusted key with ID`),
		what:        "registry `auth.token.jwks` holds an old key set (the signing key changed)",
		cause:       "the token's `kid` is not in the registry's jwks file",
		fix:         "give the registry the current `jwks.json` (`srht-registry keys` writes it; `curl …/.well-known/jwks.json`) and restart it; rotate with `keys --previous` so both keys are trusted meanwhile",
	},
	{
		id:          "stale-rootcertbundle",
		trust:       "x5c",
		breakConfig: func(m *matrix, c *regConfig) { c.rootCertBundle = filepath.Join(m.oldKeys, "cert.pem") },
		expect:      regexp.MustCompile(`x509: certificate signed by unknown authority|unable to verify|untrusted`),
		what:        "registry `auth.token.rootcertbundle` holds an old certificate (the signing key changed)",
		cause:       "the certificate in the token's `x5c` does not chain to the registry's bundle (there is no fallback to `kid`)",
		fix:         "give the registry the current `cert.pem` (or the `bundle.pem` that `keys --previous` writes, during a rotation) and restart it",
	},
}

// registryTokenLog picks the registry's own account of a refused token.
var registryTokenLog = regexp.MustCompile(`failed to verify token|untrusted issuer|intended for another audience|token not to be used|x509|invalid token|malformed token`)

type brokenResult struct {
	setup    *brokenSetup
	reg      *registrySpec
	clientEr string
	regLog   string
	outcome
}

// runBroken starts spec's registry with setup's config and pushes once
// with crane as bob.
func (m *matrix) runBroken(ctx context.Context, spec *registrySpec, setup *brokenSetup) brokenResult {
	r := brokenResult{setup: setup, reg: spec}
	good, tok := m.goodConfig(spec)
	c := good
	setup.breakConfig(m, &c)
	ctx, cancel := context.WithTimeout(ctx, m.opts.cellTimeout)
	defer cancel()
	reg, err := m.startRegistry(ctx, spec, c, tok, setup.id)
	if err != nil {
		r.outcome = failed("registry did not start: %v", err)
		return r
	}
	defer reg.proc.Stop(stopGrace)
	s, err := m.newSession(reg, "crane", "broken-"+setup.id)
	if err != nil {
		r.outcome = failed("%v", err)
		return r
	}
	cr := crane{}
	if err := cr.login(ctx, s, "bob", m.passwords["bob"]); err != nil {
		r.outcome = failed("crane auth login: %v", err)
		return r
	}
	mark := reg.proc.log.Len()
	err = cr.push(ctx, s, "bob/broken:v1")
	time.Sleep(100 * time.Millisecond)
	r.regLog = registryLogLine(reg.proc.log.Since(mark), registryTokenLog)
	if err == nil {
		r.outcome = failed("the push succeeded")
		return r
	}
	r.clientEr = err.Error()
	if !setup.expect.MatchString(r.clientEr) && !setup.expect.MatchString(r.regLog) {
		r.outcome = failed("not the documented error (%s): client: %s; registry: %s", setup.expect, r.clientEr, r.regLog)
		return r
	}
	r.outcome = passed("")
	return r
}
