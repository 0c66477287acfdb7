package app

import (
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"git.sr.ht/~zozs/srht-registry/internal/fakemeta"
)

// TestEndToEndOneIdentityPerProvider is the attack that the identity model
// of input version 2 closes, against a real registry: with the config the
// README shows (an htpasswd admin root, a public library/*, a shared team
// namespace), Sourcehut accounts named root, team and library get none of
// those rights; the htpasswd admin keeps them; a Sourcehut account that is
// not in authn.sourcehut.users is refused before meta.sr.ht is asked; and
// an allowed one pushes to its own namespace.
func TestEndToEndOneIdentityPerProvider(t *testing.T) {
	t.Parallel()
	meta := fakemeta.Start(t)
	d := deploy(t, deployOptions{
		keyType: "ec",
		authn:   sourcehutAuthn(meta, "0", "root", "team", "library", "carol"),
		data:    `    namespaces: {team: {pull: ["htpasswd:bob", "htpasswd:alice"], push: ["htpasswd:alice"]}}`,
	})
	hour := time.Now().Add(time.Hour)
	sourcehut := func(user string) string {
		return meta.Mint(fakemeta.TokenOptions{Username: user, Grants: "registry.example.com/REGISTRY:RW", Expires: hour, ClientID: "builds.sr.ht"})
	}
	srhtRoot, srhtTeam, srhtLibrary, srhtCarol := sourcehut("root"), sourcehut("team"), sourcehut("library"), sourcehut("carol")
	registry, err := name.NewRegistry(d.registry, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	catalog := func(auth authn.Authenticator) ([]string, error) {
		return remote.CatalogPage(registry, "", 100, remote.WithAuth(auth), remote.WithContext(t.Context()))
	}

	t.Run("the htpasswd admin and the team's members work as configured", func(t *testing.T) {
		for _, repo := range []string{"library/base:v1", "team/app:v1", "root/app:v1"} {
			if err := pushImage(t, d.registry, repo, basic("root")); err != nil {
				t.Fatalf("htpasswd:root pushes %s: %v", repo, err)
			}
		}
		if err := pushImage(t, d.registry, "team/app:v2", basic("alice")); err != nil {
			t.Fatalf("htpasswd:alice pushes to team/*: %v", err)
		}
		if err := pullImage(t, d.registry, "team/app:v1", basic("bob")); err != nil {
			t.Fatalf("htpasswd:bob pulls team/*: %v", err)
		}
		repos, err := catalog(basic("root"))
		if err != nil || !slices.Contains(repos, "team/app") {
			t.Fatalf("htpasswd:root lists the catalog: %v, %v", repos, err)
		}
	})

	t.Run("Sourcehut root is not the admin", func(t *testing.T) {
		res := requestToken(t, d.addr, "sourcehut", srhtRoot, "registry:catalog:* repository:team/app:pull,push,delete repository:root/app:pull,push,delete")
		if res.status != http.StatusOK || len(res.access) != 0 {
			t.Fatalf("got %d %+v, want a token granting nothing", res.status, res.access)
		}
		_, err := catalog(sourcehutLogin(srhtRoot))
		wantDenied(t, err)
		wantDenied(t, pushImage(t, d.registry, "team/app:evil", sourcehutLogin(srhtRoot)))
		// root is a local account: its namespace is htpasswd:root's.
		wantDenied(t, pushImage(t, d.registry, "root/app:evil", sourcehutLogin(srhtRoot)))
		wantDenied(t, pullImage(t, d.registry, "root/app:v1", sourcehutLogin(srhtRoot)))
	})
	t.Run("Sourcehut team does not own the shared namespace team", func(t *testing.T) {
		res := requestToken(t, d.addr, "sourcehut", srhtTeam, "repository:team/app:pull,push,delete")
		if res.status != http.StatusOK || len(res.access) != 0 {
			t.Fatalf("got %d %+v, want nothing on team/app", res.status, res.access)
		}
		wantDenied(t, pushImage(t, d.registry, "team/app:evil", sourcehutLogin(srhtTeam)))
		wantDenied(t, pullImage(t, d.registry, "team/app:v1", sourcehutLogin(srhtTeam)))
	})
	t.Run("Sourcehut library only pulls the public library", func(t *testing.T) {
		res := requestToken(t, d.addr, "sourcehut", srhtLibrary, "repository:library/base:pull,push,delete")
		if res.status != http.StatusOK || len(res.access) != 1 || !slices.Equal(res.access[0].Actions, []string{"pull"}) {
			t.Fatalf("got %d %+v, want pull only", res.status, res.access)
		}
		wantDenied(t, pushImage(t, d.registry, "library/base:evil", sourcehutLogin(srhtLibrary)))
		if err := pullImage(t, d.registry, "library/base:v1", sourcehutLogin(srhtLibrary)); err != nil {
			t.Fatalf("pull of the public library: %v", err)
		}
	})
	t.Run("a Sourcehut account not let in is refused without asking meta.sr.ht", func(t *testing.T) {
		before := meta.Calls()
		for _, tok := range []string{
			sourcehut("mallory"),
			// A forged token under a name not let in costs no call either.
			fakemeta.MintWithKey(make([]byte, 32), fakemeta.TokenOptions{Username: "mallory", Grants: "registry.example.com/REGISTRY:RW", Expires: hour}),
		} {
			res := requestToken(t, d.addr, "sourcehut", tok, "repository:mallory/app:pull,push")
			if res.status != http.StatusUnauthorized || !strings.Contains(res.message, `the Sourcehut account "mallory" may not log in to this registry`) {
				t.Fatalf("got %d %q, want 401 saying mallory may not log in", res.status, res.message)
			}
			wantDenied(t, pushImage(t, d.registry, "mallory/app:v1", sourcehutLogin(tok)))
		}
		if calls := meta.Calls() - before; calls != 0 {
			t.Fatalf("%d calls to meta.sr.ht for an account that may not log in, want 0", calls)
		}
	})
	t.Run("an allowed Sourcehut account pushes to its own namespace", func(t *testing.T) {
		if err := pushImage(t, d.registry, "carol/app:v1", sourcehutLogin(srhtCarol)); err != nil {
			t.Fatalf("sourcehut:carol pushes carol/app: %v", err)
		}
		if err := pullImage(t, d.registry, "carol/app:v1", sourcehutLogin(srhtCarol)); err != nil {
			t.Fatalf("sourcehut:carol pulls carol/app: %v", err)
		}
		wantDenied(t, pushImage(t, d.registry, "alice/app:v1", sourcehutLogin(srhtCarol)))
	})
	t.Run("the htpasswd admin keeps every right", func(t *testing.T) {
		if err := pullImage(t, d.registry, "carol/app:v1", basic("root")); err != nil {
			t.Fatalf("htpasswd:root pulls carol/app: %v", err)
		}
		repos, err := catalog(basic("root"))
		if err != nil || !slices.Contains(repos, "carol/app") {
			t.Fatalf("htpasswd:root lists the catalog: %v, %v", repos, err)
		}
	})
	t.Run("tokens and logs name the principal", func(t *testing.T) {
		for _, tc := range []struct{ user, password, want string }{
			{"sourcehut", srhtRoot, "sourcehut:root"},
			{"root", passwords["root"], "htpasswd:root"},
		} {
			if res := requestToken(t, d.addr, tc.user, tc.password, "repository:library/base:pull"); res.subject != tc.want {
				t.Errorf("sub = %q (%d %s), want %q", res.subject, res.status, res.message, tc.want)
			}
		}
		logs := d.logs.String()
		for _, want := range []string{"provider=sourcehut subject=root", "provider=htpasswd subject=root"} {
			if !strings.Contains(logs, want) {
				t.Errorf("the log has no %q", want)
			}
		}
	})
	t.Run("taking a user off authn.sourcehut.users applies at the reload", func(t *testing.T) {
		cfg, err := os.ReadFile(d.config)
		if err != nil {
			t.Fatal(err)
		}
		const users = "users: [root, team, library, carol]"
		if !strings.Contains(string(cfg), users) {
			t.Fatalf("the config has no %q:\n%s", users, cfg)
		}
		writeFile(t, d.config, strings.Replace(string(cfg), users, "users: [root, team, library]", 1))
		waitFor(t, "carol's token to be refused after the reload", func() bool {
			return requestToken(t, d.addr, "sourcehut", srhtCarol, "repository:carol/app:pull").status == http.StatusUnauthorized
		})
		wantDenied(t, pullImage(t, d.registry, "carol/app:v1", sourcehutLogin(srhtCarol)))
		// Turning Sourcehut login off at a reload lets nobody in.
		if res := requestToken(t, d.addr, "sourcehut", srhtLibrary, "repository:library/base:pull"); res.status != http.StatusOK {
			t.Fatalf("library before Sourcehut login is turned off: %d %q", res.status, res.message)
		}
		cfg, err = os.ReadFile(d.config)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, d.config, strings.Replace(string(cfg), "  sourcehut:\n", "  sourcehut:\n    enabled: false\n", 1))
		waitFor(t, "Sourcehut logins to be refused after turning them off", func() bool {
			return requestToken(t, d.addr, "sourcehut", srhtLibrary, "repository:library/base:pull").status == http.StatusUnauthorized
		})
	})
}
