package main

// The matrix's directory (issue 18): a real slapd with
// internal/slapdtest's directory, trusted by both token servers as the
// authn.ldap entry ldapProvider, and the ldap-push cell, in which each
// client logs in with a directory user's password and pushes where the
// user's directory group may.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"git.sr.ht/~zozs/srht-registry/internal/slapdtest"
)

const (
	ldapProvider = "corp"
	// ldapUser is in the directory's group ops, which may push to
	// ldapNamespace/*; ldapReader is only in devs, which may pull there.
	ldapUser      = "lena"
	ldapReader    = "mika"
	ldapNamespace = "corp-team"
)

// ldapDir is the running directory.
type ldapDir struct {
	srv    *slapdtest.Server
	url    string // ldap://127.0.0.1:PORT (plain ldap: allowed on loopback)
	pwFile string // the service account's password, mode 0600
}

// startLDAP starts slapd with the test directory under m.tmp.
func (m *matrix) startLDAP() error {
	dir := filepath.Join(m.tmp, "slapd")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	srv, err := slapdtest.Launch(dir)
	if err != nil {
		return fmt.Errorf("slapd: %w", err)
	}
	pwFile := filepath.Join(m.tmp, "ldap-password")
	if err := os.WriteFile(pwFile, []byte(slapdtest.ReaderPW+"\n"), 0o600); err != nil {
		srv.Stop()
		return err
	}
	m.ldap = ldapDir{srv: srv, url: srv.URL, pwFile: pwFile}
	return nil
}

func (m *matrix) stopLDAP() {
	if m.ldap.srv != nil {
		m.ldap.srv.Stop()
	}
}

// ldapAuthn is the authn.ldap section of the token servers' config, two
// spaces in (under authn:); nothing when no directory was started (a
// config made for another purpose).
func (m *matrix) ldapAuthn() string {
	if m.ldap.url == "" {
		return ""
	}
	return fmt.Sprintf(`  ldap:
    - name: %s
      urls: [%q]   # plain ldap:// is allowed on loopback only
      bind_dn: %q
      bind_password_file: %q
      user_base: %q
      user_filter: (&(uid={user})(!(employeeType=disabled)))
      group_base: %q
      group_filter: (member={dn})
`, ldapProvider, m.ldap.url, slapdtest.ReaderDN, m.ldap.pwFile, slapdtest.People, slapdtest.Groups)
}

// ldapData is the namespace the directory's groups get, four spaces in
// (under policy.data:); nothing without a directory.
func (m *matrix) ldapData() string {
	if m.ldap.url == "" {
		return ""
	}
	return fmt.Sprintf(`    namespaces:   # by directory group: corp's devs pull, ops push
      %s: {pull: ["group:%s:devs"], push: ["group:%s:ops"]}
`, ldapNamespace, ldapProvider, ldapProvider)
}

func cellLDAPPush(ctx context.Context, s *session, c client) outcome {
	if err := c.login(ctx, s, ldapUser, slapdtest.Password(ldapUser)); err != nil {
		return fromErr("login with the directory password", err)
	}
	repoTag := ldapNamespace + "/app-" + c.name() + ":v1"
	if err := c.push(ctx, s, repoTag); err != nil {
		return fromErr("push as "+ldapProvider+":"+ldapUser+" (group "+ldapProvider+":ops)", err)
	}
	if err := c.pull(ctx, s, repoTag); err != nil {
		return fromErr("pull", err)
	}
	// A member of devs only may pull there, not push.
	if err := c.login(ctx, s, ldapReader, slapdtest.Password(ldapReader)); err != nil {
		return fromErr("login as "+ldapReader, err)
	}
	if err := c.pull(ctx, s, repoTag); err != nil {
		return fromErr("pull as "+ldapProvider+":"+ldapReader+" (group "+ldapProvider+":devs)", err)
	}
	err := c.push(ctx, s, ldapNamespace+"/app-"+c.name()+":devs")
	if err == nil {
		return failed("%s:%s (devs only) pushed to %s/", ldapProvider, ldapReader, ldapNamespace)
	}
	if o := refusedByPolicy(err); o.st != statusPass {
		return o
	}
	return passed("pushed as " + ldapProvider + ":" + ldapUser + " (ops); " + ldapReader + "'s push (devs) refused")
}
