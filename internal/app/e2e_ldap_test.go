package app

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"git.sr.ht/~zozs/srht-registry/internal/slapdtest"
)

// ldapLogin is `docker login -u <user> -p <directory password>`.
func ldapLogin(user string) authn.Authenticator {
	return &authn.Basic{Username: user, Password: slapdtest.Password(user)}
}

// ldapAuthn is the authn.ldap section (under authn:, two spaces in) of a
// directory served by s, behind a first URL nobody listens on (failover),
// with the bind password in a 0600 file.
func ldapAuthn(t *testing.T, s *slapdtest.Server, cacheTTL string) string {
	t.Helper()
	pwFile := filepath.Join(t.TempDir(), "ldap-password")
	if err := os.WriteFile(pwFile, []byte(slapdtest.ReaderPW+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return `  ldap:
    - name: corp
      urls: ["ldap://` + slapdtest.FreeAddr(t) + `", "` + s.URL + `"]
      bind_dn: ` + slapdtest.ReaderDN + `
      bind_password_file: ` + pwFile + `
      user_base: ` + slapdtest.People + `
      user_filter: (&(uid={user})(!(employeeType=disabled)))
      group_base: ` + slapdtest.Groups + `
      group_filter: (member={dn})
      timeout: 5s
      cache_ttl: ` + cacheTTL + `
`
}

// teamByGroup: corp's devs pull team/*, corp's ops push there.
const teamByGroup = `    namespaces:
      team: {pull: ["group:corp:devs"], push: ["group:corp:ops"]}`

// TestEndToEndLDAP logs directory users in against a real slapd and pushes
// by directory group through a real registry.
func TestEndToEndLDAP(t *testing.T) {
	t.Parallel()
	dir := slapdtest.Start(t)
	const ttl = 2 * time.Second
	d := deploy(t, deployOptions{keyType: "ec", authn: ldapAuthn(t, dir, ttl.String()), data: teamByGroup})

	t.Run("push and pull by directory group, through the second URL", func(t *testing.T) {
		if err := pushImage(t, d.registry, "team/app:v1", ldapLogin("lena")); err != nil {
			t.Fatalf("lena (corp:ops) pushes to team/*: %v", err)
		}
		if err := pullImage(t, d.registry, "team/app:v1", ldapLogin("mika")); err != nil {
			t.Fatalf("mika (corp:devs) pulls team/*: %v", err)
		}
		if err := pushImage(t, d.registry, "team/app:mika", ldapLogin("mika")); err == nil {
			t.Error("mika (corp:devs only) pushed to team/*")
		} else {
			wantDenied(t, err)
		}
		res := requestToken(t, d.addr, "lena", slapdtest.Password("lena"), "repository:team/app:pull,push")
		if res.status != http.StatusOK || res.subject != "corp:lena" || len(res.access) != 1 || len(res.access[0].Actions) != 2 {
			t.Errorf("lena's token: %d, sub %q, %v", res.status, res.subject, res.access)
		}
		// A directory user owns no personal namespace.
		if res := requestToken(t, d.addr, "lena", slapdtest.Password("lena"), "repository:lena/app:push"); res.status != http.StatusOK || len(res.access) != 0 {
			t.Errorf("lena on lena/app: %d %v, want nothing", res.status, res.access)
		}
		if !strings.Contains(d.logs.String(), "trying the next URL") {
			t.Error("the failover from the closed first URL was not logged")
		}
	})

	t.Run("the htpasswd line answers for a name both have", func(t *testing.T) {
		if res := requestToken(t, d.addr, "alice", slapdtest.Password("alice"), "repository:team/app:pull"); res.status != http.StatusUnauthorized {
			t.Errorf("alice with her directory password: %d, want 401 (htpasswd answers for alice)", res.status)
		}
		if res := requestToken(t, d.addr, "alice", passwords["alice"], "repository:alice/app:push"); res.status != http.StatusOK || res.subject != "htpasswd:alice" {
			t.Errorf("alice with her htpasswd password: %d, sub %q", res.status, res.subject)
		}
	})

	t.Run("refused logins", func(t *testing.T) {
		for _, tc := range []struct{ name, user, pw string }{
			{"wrong password", "lena", "not-lenas-password"},
			{"another user's password", "lena", slapdtest.Password("mika")},
			{"empty password", "lena", ""},
			{"disabled account", "dave", slapdtest.Password("dave")},
			{"account without a password", "erin", "anything"},
			{"unknown user", "nobody", "x"},
		} {
			res := requestToken(t, d.addr, tc.user, tc.pw, "repository:team/app:pull")
			if res.status != http.StatusUnauthorized {
				t.Errorf("%s: %d %q, want 401", tc.name, res.status, res.message)
			}
		}
	})

	t.Run("filter injection in the user name", func(t *testing.T) {
		pw := slapdtest.Password("lena")
		for _, user := range []string{"*", "len*", "*ena", "*)(uid=*", "lena)(uid=*", "admin)(|(uid=*", "lena)(|(uid=*)",
			"lena\x00", "lena\x00)(uid=*", `len\61`, `\2a`, "(lena)", "lena))(|(objectClass=*", "*)(|(objectClass=*"} {
			res := requestToken(t, d.addr, user, pw, "repository:team/app:pull,push")
			if res.status != http.StatusUnauthorized {
				t.Errorf("%q with lena's password: %d %q sub %q, want 401", user, res.status, res.message, res.subject)
			}
		}
	})

	t.Run("a member removed from a group loses push within cache_ttl", func(t *testing.T) {
		rt := offlineLogin(t, d.addr, "lena", slapdtest.Password("lena"), ggcrClientID)
		if res := refreshGrant(t, d.addr, rt, ggcrClientID, "repository:team/app:pull,push"); !slices.Equal(res.actionsOn("team/app"), []string{"pull", "push"}) {
			t.Fatalf("lena's refresh grant before: %d %q %v", res.status, res.message, res.access)
		}
		if err := pushImage(t, d.registry, "team/app:v2", identityToken(rt)); err != nil {
			t.Fatalf("push with lena's refresh token: %v", err)
		}
		dir.RemoveMember(t, "ops", "lena")
		// Every remembered login and lookup of lena was made before the
		// change: after cache_ttl, none is left.
		time.Sleep(ttl)
		if res := requestToken(t, d.addr, "lena", slapdtest.Password("lena"), "repository:team/app:pull,push"); res.status != http.StatusOK ||
			len(res.access) != 1 || !slices.Equal(res.access[0].Actions, []string{"pull"}) {
			t.Errorf("lena's login after her removal from ops: %d %v, want pull only", res.status, res.access)
		}
		if res := refreshGrant(t, d.addr, rt, ggcrClientID, "repository:team/app:pull,push"); res.status != http.StatusOK ||
			!slices.Equal(res.actionsOn("team/app"), []string{"pull"}) {
			t.Errorf("lena's refresh grant after her removal from ops: %d %q %v, want pull only", res.status, res.message, res.access)
		}
		if err := pushImage(t, d.registry, "team/app:v3", ldapLogin("lena")); err == nil {
			t.Error("lena pushed after her removal from ops")
		} else {
			wantDenied(t, err)
		}
		// A disabled account's refresh token ends.
		mt := offlineLogin(t, d.addr, "mika", slapdtest.Password("mika"), ggcrClientID)
		dir.Disable(t, "mika")
		time.Sleep(ttl)
		if res := refreshGrant(t, d.addr, mt, ggcrClientID, "repository:team/app:pull"); res.status != http.StatusUnauthorized {
			t.Errorf("a disabled user's refresh token: %d %q, want 401", res.status, res.message)
		}
	})

	t.Run("check-config asks the directory about the htpasswd names", func(t *testing.T) {
		var stdout, stderr strings.Builder
		if code := Run(t.Context(), []string{"check-config", "--config", d.config}, nil, &stdout, &stderr); code != 0 {
			t.Fatalf("check-config exited %d:\n%s", code, stderr.String())
		}
		want := `warning: "alice" is an htpasswd user and a user of directory corp`
		if !strings.Contains(stderr.String(), want) || strings.Contains(stderr.String(), `"bob" is an htpasswd user`) {
			t.Errorf("check-config's warnings:\n%s\nwant %q, and nothing about bob (not in the directory)", stderr.String(), want)
		}
		if !strings.Contains(stdout.String(), "LDAP corp:") {
			t.Errorf("check-config's summary has no line for corp:\n%s", stdout.String())
		}
	})

	noSecretsLogged(t, d)
}

// TestEndToEndLDAPDown stops the directory mid-run: logins it remembers
// keep working (until cache_ttl, shown with a clock in
// internal/authn/ldap's TestCache), every other is a 503, never a grant and
// never anonymous; failures while it is down are not counted as guesses.
func TestEndToEndLDAPDown(t *testing.T) {
	t.Parallel()
	dir := slapdtest.Start(t)
	d := deploy(t, deployOptions{keyType: "ec", authn: ldapAuthn(t, dir, "1h"), data: teamByGroup, threshold: 3})
	scope := "repository:team/app:pull,push"
	if res := requestToken(t, d.addr, "lena", slapdtest.Password("lena"), scope); res.status != http.StatusOK || len(res.access) != 1 {
		t.Fatalf("lena before: %d %v", res.status, res.access)
	}
	rt := offlineLogin(t, d.addr, "mika", slapdtest.Password("mika"), ggcrClientID)
	dir.Stop()

	if err := pushImage(t, d.registry, "team/app:down", ldapLogin("lena")); err != nil {
		t.Errorf("lena's remembered login, directory down: %v", err)
	}
	// mika's login (the offline login's password) is remembered too.
	if res := requestToken(t, d.addr, "mika", slapdtest.Password("mika"), scope); res.status != http.StatusOK {
		t.Errorf("mika's remembered login, directory down: %d %q", res.status, res.message)
	}
	for i := range 5 { // more than brute_force.threshold
		for _, tc := range []struct{ user, pw string }{
			{"carol", slapdtest.Password("carol")}, // never logged in
			{"lena", "wrong"},                      // only successes are remembered
		} {
			if res := requestToken(t, d.addr, tc.user, tc.pw, scope); res.status != http.StatusServiceUnavailable {
				t.Errorf("attempt %d, %s, directory down: %d %q, want 503", i, tc.user, res.status, res.message)
			}
		}
	}
	// mika's refresh token looks mika up again: that lookup was never
	// made, so the directory is asked.
	if res := refreshGrant(t, d.addr, rt, ggcrClientID, scope); res.status != http.StatusServiceUnavailable {
		t.Errorf("a refresh grant, directory down: %d %q, want 503", res.status, res.message)
	}

	dir.Restart(t)
	// Up again: the failures while it was down were not guesses.
	if res := requestToken(t, d.addr, "carol", slapdtest.Password("carol"), scope); res.status != http.StatusOK {
		t.Errorf("carol once the directory is back: %d %q", res.status, res.message)
	}
	if res := refreshGrant(t, d.addr, rt, ggcrClientID, scope); res.status != http.StatusOK || !slices.Equal(res.actionsOn("team/app"), []string{"pull"}) {
		t.Errorf("mika's refresh grant once the directory is back: %d %q %v", res.status, res.message, res.access)
	}
	// Wrong directory passwords count towards brute_force.threshold (3).
	for range 3 {
		if res := requestToken(t, d.addr, "carol", "guess", scope); res.status != http.StatusUnauthorized {
			t.Fatalf("a wrong password: %d", res.status)
		}
	}
	if res := requestToken(t, d.addr, "carol", slapdtest.Password("carol"), scope); res.status != http.StatusTooManyRequests {
		t.Errorf("the right password after 3 wrong ones: %d, want 429", res.status)
	}
	noSecretsLogged(t, d)
}

// noSecretsLogged: no directory password, nor the bind password, in the
// server's log.
func noSecretsLogged(t *testing.T, d deployment) {
	t.Helper()
	logs := d.logs.String()
	for _, u := range slapdtest.Users {
		if u.Password != "" && strings.Contains(logs, u.Password) {
			t.Errorf("the directory password of %s is in the server log", u.UID)
		}
	}
	if strings.Contains(logs, slapdtest.ReaderPW) {
		t.Error("the bind password is in the server log")
	}
	if !strings.Contains(logs, "directory logins accepted") {
		t.Error("the log does not say directory logins are on (is debug logging seen at all?)")
	}
}
