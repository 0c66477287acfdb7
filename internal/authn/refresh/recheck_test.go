package refresh_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/identity"
	"git.sr.ht/~zozs/srht-registry/internal/token"
	"git.sr.ht/~zozs/srht-registry/internal/token/tokentest"
)

// fakeSourcehut stands for the Sourcehut authenticator's cache and
// meta.sr.ht: it knows which tokens are good, and counts the checks.
type fakeSourcehut struct {
	good    map[string]string // token -> user
	down    bool
	checked []string
}

func (f *fakeSourcehut) recheck(_ context.Context, service string, tok identity.Secret) (string, error) {
	f.checked = append(f.checked, tok.Reveal())
	switch user, ok := f.good[tok.Reveal()]; {
	case f.down:
		return "", fmt.Errorf("%w: meta.sr.ht could not be reached", identity.ErrUnavailable)
	case !ok || service != tokentest.Audience:
		return "", fmt.Errorf("%w: meta.sr.ht rejected the token", identity.ErrUnauthenticated)
	default:
		return user, nil
	}
}

// TestRefreshSourcehutRechecked: the refresh token of a Sourcehut login
// carries the token sealed; each redemption has it checked again, so a
// revocation on meta.sr.ht ends the refresh token too.
func TestRefreshSourcehutRechecked(t *testing.T) {
	t.Parallel()
	const login = "sourcehut-token-of-bob-0123456789"
	key := tokentest.Key(t, token.KeyEC, 0)
	c := newClock()
	meta := &fakeSourcehut{good: map[string]string{login: "bob"}}
	r := newRefresher(key, nil, c)
	r.Recheck = meta.recheck
	id := sourcehutID("RW", c.Now().Add(time.Hour))

	if _, err := r.Issue(id, tokentest.Audience, "docker", ""); err == nil {
		t.Error("issued without the login's token, which redemptions must check again")
	}
	tok, err := r.Issue(id, tokentest.Audience, "docker", identity.Secret(login))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(tok.Reveal(), login) {
		t.Fatal("the Sourcehut token is readable in the refresh token")
	}
	_, claims := decode(t, tok.Reveal())
	if sh, _ := claims["sourcehut"].(map[string]any); sh == nil || sh["sealed"] == "" || strings.Contains(fmt.Sprint(sh), login) {
		t.Errorf("sourcehut claims %v: want the token sealed", claims["sourcehut"])
	}

	if _, err := r.Redeem(context.Background(), refreshCred(tok)); err != nil {
		t.Fatalf("Redeem: %v", err)
	}
	if len(meta.checked) != 1 || meta.checked[0] != login {
		t.Errorf("checked %d tokens, want the login's once", len(meta.checked))
	}

	meta.down = true
	if _, err := r.Redeem(context.Background(), refreshCred(tok)); !errors.Is(err, identity.ErrUnavailable) {
		t.Errorf("meta.sr.ht down: %v, want unavailable (503), never a grant", err)
	}
	meta.down = false
	delete(meta.good, login) // revoked on meta.sr.ht
	_, err = r.Redeem(context.Background(), refreshCred(tok))
	wantRefused(t, tok, identity.Identity{}, err, "the Sourcehut token it was made from was refused")

	// A refresh token from before tokens were sealed cannot be revoked:
	// refused once rechecks are on.
	old := newRefresher(key, nil, c)
	legacy := issue(t, old, id)
	_, err = r.Redeem(context.Background(), refreshCred(legacy))
	wantRefused(t, legacy, identity.Identity{}, err, "log in again")
}
