package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

type status string

const (
	statusPass status = "PASS"
	statusFail status = "FAIL"
	statusNA   status = "N/A"
)

// outcome is what a cell found: its status and a one-line message (the
// client's error for a failure or an expected refusal, the reason for N/A).
type outcome struct {
	st  status
	msg string
}

func passed(msg string) outcome         { return outcome{statusPass, msg} }
func failed(f string, a ...any) outcome { return outcome{statusFail, flat(fmt.Sprintf(f, a...))} }

// fromErr turns a client error into FAIL, or N/A for an operation the
// client does not have.
func fromErr(step string, err error) outcome {
	var n errNA
	if errors.As(err, &n) {
		return outcome{statusNA, n.reason}
	}
	return failed("%s: %v", step, err)
}

type result struct {
	reg, client, cell string
	outcome
	dur time.Duration
}

// cellDef is one row of the matrix per client.
type cellDef struct {
	id    string
	title string
	run   func(ctx context.Context, s *session, c client) outcome
}

// denied is how a refusal by the registry or the token server looks in a
// client's error (401 insufficient_scope, 403, "denied").
// authFailed is a refusal of the credentials themselves: where a denial by
// the policy is expected, it means the cell failed for another reason.
var authFailed = regexp.MustCompile(`(?i)authentication failed|wrong user name or password|invalid username/password|issued to another client`)

// refusedByPolicy checks that err is a denial, and not of the credentials.
func refusedByPolicy(err error) outcome {
	msg := err.Error()
	if authFailed.MatchString(msg) {
		return failed("refused, but the credentials were rejected (not a policy denial): %s", msg)
	}
	if !denied.MatchString(msg) {
		return failed("refused, but not as a denial: %s", msg)
	}
	return passed(msg)
}

var denied = regexp.MustCompile(`(?i)denied|unauthori[sz]ed|forbidden|insufficient|\b40[13]\b|authentication (required|failed)|invalid username/password`)

var cellDefs = []cellDef{
	{"anon-pull", "anonymous pull of a public repository (library/base)", cellAnonPull},
	{"login", "login: password accepted, wrong password refused, Sourcehut token accepted", cellLogin},
	{"push-pull", "login + push + pull in the user's namespace (bob/…)", cellPushPull},
	{"foreign-push-refused", "push to another user's namespace (alice/…) refused", cellForeignPush},
	{"blob-mount", "cross-repository blob mount: copy between two repositories of the user", cellBlobMount},
	{"admin-delete", "an admin (alice) deletes a tag in bob/…", cellAdminDelete},
	{"catalog-admin", "catalog listed by an admin", cellCatalogAdmin},
	{"catalog-refused", "catalog refused to a non-admin", cellCatalogRefused},
	{"sourcehut-push", "push + pull with a Sourcehut token (-u sourcehut -p TOKEN, fake meta.sr.ht)", cellSourcehutPush},
	{"identity-refresh", "`docker login` stores an identity token (refresh token), then the client pulls (and pushes) with it alone", cellIdentityRefresh},
	{"oidc-push", "push + pull with an OIDC ID token (-u oidc -p ID_TOKEN) of a GitHub Actions job of " + oidcOwner + "/oidc-CLIENT, in its repository (fake issuer, claim rule)", cellOIDCPush},
	{"oidc-foreign-refused", "push with that ID token to another owner's repository (" + oidcForeignOwner + "/…) refused", cellOIDCForeignPush},
	{"ldap-push", "a directory user (slapd, authn.ldap " + ldapProvider + ") logs in with its password and pushes to " + ldapNamespace + "/… by its directory group; a member of another group only pulls", cellLDAPPush},
}

func repoOf(repoTag string) string {
	repo, _, _ := strings.Cut(repoTag, ":")
	return repo
}

func cellAnonPull(ctx context.Context, s *session, c client) outcome {
	if err := c.pull(ctx, s, "library/base:latest"); err != nil {
		return fromErr("anonymous pull", err)
	}
	return passed("")
}

func cellLogin(ctx context.Context, s *session, c client) outcome {
	if !c.loginChecks() {
		return outcome{statusNA, c.name() + " auth login only writes config.json without asking the registry: push-pull, sourcehut-push and oidc-push use it"}
	}
	if err := c.login(ctx, s, "bob", s.m.passwords["bob"]); err != nil {
		return fromErr("login with the password", err)
	}
	err := c.login(ctx, s, "bob", "not-"+s.m.passwords["bob"])
	if err == nil {
		return failed("a wrong password was accepted")
	}
	refusal := err.Error()
	if !denied.MatchString(refusal) {
		return failed("a wrong password was refused, but not as a denial: %s", refusal)
	}
	if err := c.login(ctx, s, "sourcehut", s.m.shToken); err != nil {
		return fromErr("login with a Sourcehut token", err)
	}
	return passed("wrong password: " + refusal)
}

func cellPushPull(ctx context.Context, s *session, c client) outcome {
	if err := c.login(ctx, s, "bob", s.m.passwords["bob"]); err != nil {
		return fromErr("login", err)
	}
	repoTag := "bob/app-" + c.name() + ":v1"
	if err := c.push(ctx, s, repoTag); err != nil {
		return fromErr("push", err)
	}
	if err := c.pull(ctx, s, repoTag); err != nil {
		return fromErr("pull", err)
	}
	return passed("")
}

func cellForeignPush(ctx context.Context, s *session, c client) outcome {
	if err := c.login(ctx, s, "bob", s.m.passwords["bob"]); err != nil {
		return fromErr("login", err)
	}
	repoTag := "alice/app-" + c.name() + ":v1"
	err := c.push(ctx, s, repoTag)
	if err == nil {
		return failed("bob pushed to %s", repoTag)
	}
	if na := (errNA{}); errors.As(err, &na) {
		return fromErr("push", err)
	}
	if ok, herr := s.m.exists(ctx, s.reg.host, repoTag); herr != nil || ok {
		return failed("the push failed (%v) but %s exists afterwards (%v)", err, repoTag, herr)
	}
	return refusedByPolicy(err)
}

func cellBlobMount(ctx context.Context, s *session, c client) outcome {
	if err := c.login(ctx, s, "bob", s.m.passwords["bob"]); err != nil {
		return fromErr("login", err)
	}
	src := "bob/mount-src-" + c.name() + ":v1"
	dst := "bob/mount-dst-" + c.name() + ":v1"
	mark := s.reg.proc.log.Len()
	if err := c.copy(ctx, s, src, dst); err != nil {
		return fromErr("copy", err)
	}
	if ok, err := s.m.exists(ctx, s.reg.host, dst); err != nil || !ok {
		return failed("the copy succeeded but %s is not there (%v)", dst, err)
	}
	// The access log line is written as the response ends: give it a moment.
	var statuses []string
	for range 20 {
		if statuses = mountRequests(s.reg.proc.log.Since(mark), repoOf(dst)); len(statuses) > 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(statuses) == 0 {
		return outcome{statusNA, "the copy succeeded by uploading: " + c.name() + " did not ask for a cross-repository mount"}
	}
	mounted := 0
	for _, st := range statuses {
		if st == "201" {
			mounted++
		}
	}
	if mounted != len(statuses) {
		return failed("%d of %d mount requests were answered %s, not 201 (not mounted: no pull on the source in the token?)", len(statuses)-mounted, len(statuses), strings.Join(statuses, ","))
	}
	return passed(fmt.Sprintf("%d blobs mounted from %s", mounted, repoOf(src)))
}

func cellAdminDelete(ctx context.Context, s *session, c client) outcome {
	if err := c.login(ctx, s, "alice", s.m.passwords["alice"]); err != nil {
		return fromErr("login", err)
	}
	repoTag := "bob/del-" + c.name() + ":v1"
	if err := c.delete(ctx, s, repoTag); err != nil {
		return fromErr("delete", err)
	}
	if ok, err := s.m.exists(ctx, s.reg.host, repoTag); err != nil || ok {
		return failed("the delete succeeded but %s is still there (%v)", repoTag, err)
	}
	return passed("")
}

func cellCatalogAdmin(ctx context.Context, s *session, c client) outcome {
	if err := c.login(ctx, s, "alice", s.m.passwords["alice"]); err != nil {
		return fromErr("login", err)
	}
	out, err := c.catalog(ctx, s)
	if err != nil {
		return fromErr("catalog", err)
	}
	if !strings.Contains(out, "library/base") {
		return failed("catalog without library/base: %s", oneLine(out))
	}
	return passed("")
}

func cellCatalogRefused(ctx context.Context, s *session, c client) outcome {
	if err := c.login(ctx, s, "bob", s.m.passwords["bob"]); err != nil {
		return fromErr("login", err)
	}
	out, err := c.catalog(ctx, s)
	if err == nil {
		return failed("a non-admin listed the catalog: %s", oneLine(out))
	}
	if na := (errNA{}); errors.As(err, &na) {
		return fromErr("catalog", err)
	}
	return refusedByPolicy(err)
}

func cellSourcehutPush(ctx context.Context, s *session, c client) outcome {
	if err := c.login(ctx, s, "sourcehut", s.m.shToken); err != nil {
		return fromErr("login with the Sourcehut token", err)
	}
	msg := ""
	if isDocker(c) {
		// As in a builds.sr.ht job: what docker keeps is a refresh token
		// made from the job's token, never the token itself.
		if a, err := readDockerAuth(s); err != nil || a.IdentityToken == "" || a.password() != "" {
			return failed("docker login with the Sourcehut token did not store an identitytoken alone (%v)", err)
		}
		msg = "docker login stored an identitytoken (a refresh token sealing the Sourcehut token), which the push and pull used"
	}
	repoTag := shUser + "/sh-" + c.name() + ":v1"
	if err := c.push(ctx, s, repoTag); err != nil {
		return fromErr("push", err)
	}
	if err := c.pull(ctx, s, repoTag); err != nil {
		return fromErr("pull", err)
	}
	return passed(msg)
}

// oidcRepo is the repository of the OIDC cells' job: the claim rule grants
// the job push on it ({repository}).
func oidcRepo(c client) string { return "oidc-" + c.name() }

// oidcLogin logs c in as a CI job does with the ID token it holds:
// `login -u oidc -p "$ID_TOKEN"`, a fresh token of oidcOwner/oidcRepo(c).
func oidcLogin(ctx context.Context, s *session, c client) error {
	return c.login(ctx, s, "oidc", s.m.idToken(oidcOwner, oidcRepo(c)))
}

func cellOIDCPush(ctx context.Context, s *session, c client) outcome {
	if err := oidcLogin(ctx, s, c); err != nil {
		return fromErr("login with the ID token", err)
	}
	msg := ""
	if isDocker(c) {
		// docker login asks for an offline token: what it stores is the
		// refresh token of the OIDC session, and docker manifest uses it.
		a, err := readDockerAuth(s)
		if err != nil {
			return failed("after docker login: %v", err)
		}
		if a.IdentityToken == "" || a.password() != "" {
			return failed("docker login with the ID token did not store an identitytoken alone (the OIDC session's refresh token)")
		}
		msg = "docker login stored the OIDC session's refresh token (identitytoken), which the push and pull used"
	}
	repoTag := oidcOwner + "/" + oidcRepo(c) + ":v1"
	if err := c.push(ctx, s, repoTag); err != nil {
		return fromErr("push", err)
	}
	if err := c.pull(ctx, s, repoTag); err != nil {
		return fromErr("pull", err)
	}
	return passed(msg)
}

func cellOIDCForeignPush(ctx context.Context, s *session, c client) outcome {
	if err := oidcLogin(ctx, s, c); err != nil {
		return fromErr("login with the ID token", err)
	}
	repoTag := oidcForeignOwner + "/" + oidcRepo(c) + ":v1"
	err := c.push(ctx, s, repoTag)
	if err == nil {
		return failed("the job of %s/%s pushed to %s", oidcOwner, oidcRepo(c), repoTag)
	}
	if na := (errNA{}); errors.As(err, &na) {
		return fromErr("push", err)
	}
	if ok, herr := s.m.exists(ctx, s.reg.host, repoTag); herr != nil || ok {
		return failed("the push failed (%v) but %s exists afterwards (%v)", err, repoTag, herr)
	}
	return refusedByPolicy(err)
}

// dockerAuth is an entry of docker's config.json "auths".
type dockerAuth struct {
	Auth          string `json:"auth"`
	IdentityToken string `json:"identitytoken"`
}

// password is the password part of auth (base64 of "user:password"):
// docker keeps "user:" beside an identity token.
func (a dockerAuth) password() string {
	b, err := base64.StdEncoding.DecodeString(a.Auth)
	if err != nil {
		return a.Auth
	}
	_, pw, _ := strings.Cut(string(b), ":")
	return pw
}

func readDockerAuth(s *session) (dockerAuth, error) {
	var cfg struct {
		Auths map[string]dockerAuth `json:"auths"`
	}
	b, err := os.ReadFile(filepath.Join(s.dir, ".docker", "config.json"))
	if err != nil {
		return dockerAuth{}, err
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return dockerAuth{}, fmt.Errorf("config.json: %w", err)
	}
	a, ok := cfg.Auths[s.reg.host]
	if !ok {
		return dockerAuth{}, fmt.Errorf("config.json has no entry for %s", s.reg.host)
	}
	return a, nil
}

// dockerLoginIdentity runs `docker login` (d: one of the docker clients)
// with bob's password and checks that docker stored an identity token
// instead of the password.
func dockerLoginIdentity(ctx context.Context, s *session, d client) (outcome, bool) {
	if err := d.login(ctx, s, "bob", s.m.passwords["bob"]); err != nil {
		return fromErr("docker login", err), false
	}
	a, err := readDockerAuth(s)
	if err != nil {
		return failed("after docker login: %v", err), false
	}
	if a.IdentityToken == "" {
		return failed("docker login stored the password and no identitytoken: the token server returned no refresh_token"), false
	}
	if a.password() != "" {
		return failed("docker login stored an identitytoken but kept the password too"), false
	}
	return outcome{}, true
}

func cellIdentityRefresh(ctx context.Context, s *session, c client) outcome {
	switch c.(type) {
	case dockerClient:
		return cellDaemonRefresh(ctx, s, c)
	case dockerManifest:
		if o, ok := dockerLoginIdentity(ctx, s, c); !ok {
			return o
		}
		// `docker login` never re-authenticates with a stored identity
		// token (it wants a password). The docker CLI's own registry client
		// (`docker manifest`, client_id registry-client) does, and so does
		// the daemon (the docker (daemon) row). bob's repository is
		// private, so anonymous access cannot pass for it.
		repo := "bob/mount-src-" + c.name()
		if err := c.pull(ctx, s, repo+":v1"); err != nil {
			return failed("docker manifest inspect %s with the stored identity token: %v", repo, err)
		}
		if a, err := readDockerAuth(s); err != nil || a.IdentityToken == "" || a.password() != "" {
			return failed("after the refresh, config.json no longer holds the identity token alone (%v)", err)
		}
		return passed("with only the stored identitytoken: docker manifest inspect (client_id registry-client) pulled a private manifest")
	default:
		if o, ok := dockerLoginIdentity(ctx, s, dockerManifest{}); !ok {
			return o
		}
		// Every other client reads docker's config.json ($DOCKER_CONFIG)
		// when it holds no login of its own, and POSTs
		// grant_type=refresh_token with the identity token (skopeo with
		// repeated scope fields) under its own client_id.
		repoTag := "bob/refresh-" + c.name() + ":v1"
		if err := c.push(ctx, s, repoTag); err != nil {
			return failed("%s push with docker's identity token: %v", c.name(), err)
		}
		if err := c.pull(ctx, s, repoTag); err != nil {
			return failed("%s pull with docker's identity token: %v", c.name(), err)
		}
		return passed(c.name() + " pushed and pulled with only the identitytoken docker login stored")
	}
}
