package app

import (
	"net/http"
	"testing"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/fakemeta"
)

// TestThrottleHitsTheAttackerNotTheNeighbours: an attacker behind the same
// address as everyone else (here, loopback: a builds.sr.ht runner, NAT)
// forges Sourcehut tokens and guesses passwords until it is blocked; while
// it keeps at it, the neighbours' anonymous pulls, a verified Sourcehut
// token and a refresh token (what `docker login` keeps) all still work
// against a real registry. (Passwords from that address stay blocked: the
// attacker is there. A user's own lockout by failures from elsewhere is
// TestThrottleRecentLoginKeepsUserIn's.)
func TestThrottleHitsTheAttackerNotTheNeighbours(t *testing.T) {
	t.Parallel()
	meta := fakemeta.Start(t)
	d := deploy(t, deployOptions{keyType: "ec", threshold: 5, authn: sourcehutAuthn(meta, "0", "carol")})
	carol := meta.Mint(fakemeta.TokenOptions{Username: "carol", Grants: "registry.example.com/REGISTRY:RW", Expires: time.Now().Add(time.Hour)})

	// Before the attack: carol's token is verified once, alice logs in
	// and keeps a refresh token, as `docker login` does.
	if err := pushImage(t, d.registry, "carol/app:v1", sourcehutLogin(carol)); err != nil {
		t.Fatalf("carol's first push: %v", err)
	}
	if err := pushImage(t, d.registry, "library/base:v1", basic("root")); err != nil {
		t.Fatal(err)
	}
	rt := offlineLogin(t, d.addr, "alice", passwords["alice"], "docker")

	// The attack: forged tokens naming carol, and password guesses for
	// alice, bob and root, until every kind is blocked for the address.
	// (A token meta.sr.ht refuses: another than carol's own, revoked.)
	forged := meta.Mint(fakemeta.TokenOptions{Username: "carol", Grants: "registry.example.com/REGISTRY:RW", Expires: time.Now().Add(2 * time.Hour)})
	meta.Revoke(forged)
	var forgedBlocked, guessesBlocked bool
	for range 20 {
		if requestToken(t, d.addr, "sourcehut", forged, "repository:carol/app:push").status == http.StatusTooManyRequests {
			forgedBlocked = true
		}
		for _, user := range []string{"alice", "bob", "root"} {
			if requestToken(t, d.addr, user, "guess", "repository:library/base:pull").status == http.StatusTooManyRequests {
				guessesBlocked = true
			}
		}
	}
	if !forgedBlocked || !guessesBlocked {
		t.Fatalf("the attacker was not blocked: forged tokens %t, guesses %t", forgedBlocked, guessesBlocked)
	}

	// The neighbours, from the same address, while the blocks last.
	if err := pullImage(t, d.registry, "library/base:v1", nil); err != nil {
		t.Errorf("anonymous pull of a public repository: %v", err)
	}
	if err := pushImage(t, d.registry, "carol/app:v2", sourcehutLogin(carol)); err != nil {
		t.Errorf("carol's verified token: %v", err)
	}
	if res := refreshGrant(t, d.addr, rt, "docker", "repository:alice/app:pull"); res.status != http.StatusOK {
		t.Errorf("alice's refresh grant: %d %q", res.status, res.message)
	}
	if err := pushImage(t, d.registry, "alice/app:v1", identityToken(rt)); err != nil {
		t.Errorf("alice's push with the identity token docker login stored: %v", err)
	}
	// The attacker stays blocked.
	if res := requestToken(t, d.addr, "bob", "guess", "repository:bob/app:pull"); res.status != http.StatusTooManyRequests {
		t.Errorf("the attacker's next guess: %d, want 429", res.status)
	}
}
