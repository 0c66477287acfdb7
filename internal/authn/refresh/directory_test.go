package refresh_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"git.sr.ht/~zozs/srht-registry/internal/authn/refresh"
	"git.sr.ht/~zozs/srht-registry/internal/identity"
	"git.sr.ht/~zozs/srht-registry/internal/token"
	"git.sr.ht/~zozs/srht-registry/internal/token/tokentest"
)

// directory answers lookups from a table; down makes it unavailable.
type directory struct {
	users map[string]identity.Identity // login name -> identity now
	down  bool
	calls int
}

func (d *directory) Lookup(_ context.Context, user string) (identity.Identity, error) {
	d.calls++
	if d.down {
		return identity.Identity{}, fmt.Errorf("%w: directory down", identity.ErrUnavailable)
	}
	id, ok := d.users[user]
	if !ok {
		return identity.Identity{}, fmt.Errorf("%w: no such user", identity.ErrUnauthenticated)
	}
	return id, nil
}

func TestRefreshDirectory(t *testing.T) {
	c := newClock()
	key := tokentest.Key(t, token.KeyEC, 0)
	dir := &directory{users: map[string]identity.Identity{
		"alice": {Provider: "corp", Subject: "alice@example.org", Groups: []string{"corp:devs"}},
	}}
	r := newRefresher(key, nil, c)
	r.Directories = map[string]refresh.Directory{"corp": dir}
	login := identity.Identity{Method: identity.MethodPassword, Provider: "corp", Subject: "alice@example.org",
		DirectoryUser: "alice", Groups: []string{"corp:devs", "corp:ops"}}
	tok := issue(t, r, login)
	_, claims := decode(t, tok.Reveal())
	if claims["provider"] != "corp" || claims["method"] != "password" || claims["htpasswd_binding"] != nil {
		t.Errorf("claims %v", claims)
	}
	if d, _ := claims["directory"].(map[string]any); d["user"] != "alice" {
		t.Errorf("directory claim %v", claims["directory"])
	}
	// No group and no password in it: groups are the directory's at
	// redemption.
	if _, ok := claims["groups"]; ok || strings.Contains(tok.Reveal(), "devs") {
		t.Error("the refresh token carries groups")
	}

	id, err := r.Redeem(context.Background(), refreshCred(tok))
	want := identity.Identity{Method: identity.MethodRefresh, RefreshedFrom: identity.MethodPassword, Provider: "corp",
		Subject: "alice@example.org", DirectoryUser: "alice", Groups: []string{"corp:devs"}}
	if err != nil || !reflect.DeepEqual(id, want) {
		t.Fatalf("Redeem = %+v, %v; want %+v (the groups of now)", id, err, want)
	}

	tests := []struct {
		name   string
		change func()
		want   error
	}{
		{"directory down", func() { dir.down = true }, identity.ErrUnavailable},
		{"user removed", func() { delete(dir.users, "alice") }, identity.ErrUnauthenticated},
		{"entry's subject changed", func() { dir.users["alice"] = identity.Identity{Provider: "corp", Subject: "alice2@example.org"} }, identity.ErrUnauthenticated},
		{"directory no longer configured", func() { delete(r.Directories, "corp") }, identity.ErrUnauthenticated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			saved := dir.users["alice"]
			tc.change()
			_, err := r.Redeem(context.Background(), refreshCred(tok))
			if !errors.Is(err, tc.want) {
				t.Errorf("Redeem: %v, want %v", err, tc.want)
			}
			if errors.Is(tc.want, identity.ErrUnavailable) && errors.Is(err, identity.ErrUnauthenticated) {
				t.Error("a directory that is down refused the token for good")
			}
			dir.down = false
			dir.users["alice"] = saved
			r.Directories = map[string]refresh.Directory{"corp": dir}
		})
	}

	// A directory login is never issued without its directory, nor
	// without its login name.
	for _, id := range []identity.Identity{
		{Method: identity.MethodPassword, Provider: "other", Subject: "x", DirectoryUser: "x"},
		{Method: identity.MethodPassword, Provider: "corp", Subject: "x"},
	} {
		if _, err := r.Issue(id, tokentest.Audience, "docker", ""); err == nil {
			t.Errorf("Issue(%+v) made a token", id)
		}
	}
}
