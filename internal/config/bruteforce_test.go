package config

import (
	"errors"
	"strings"
	"testing"
)

// TestBruteForceStore: brute_force.store takes a redis:// or rediss://
// URL, and no message about it repeats the URL, which may hold a password.
func TestBruteForceStore(t *testing.T) {
	for _, ok := range []string{"", "redis://localhost:6379", "redis://:pw@10.0.0.5:6379/0", "rediss://user:pw@valkey.internal:6380/3", "redis://[::1]:6379/"} {
		c := Default()
		c.BruteForce.Store = ok
		if err := c.Validate(); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for store, want := range map[string]string{
		"http://:hunter2@localhost:6379":   "brute_force.store: must be a redis:// or rediss:// URL, not http://",
		"redis://:hunter2@:6379/0":         "brute_force.store: must name a host, like redis://host:6379/0",
		"redis://:hunter2@host:6379/zero":  "brute_force.store: the path must be a database number, like /0",
		"redis://:hunter2@host:6379/0?x=1": "brute_force.store: must have no query or fragment: timeouts are set by the server",
		"redis://:hunter2@host:bad\x7f/0":  "brute_force.store: must be a URL like redis://host:6379/0",
		"localhost:6379":                   "brute_force.store: must be a redis:// or rediss:// URL, not localhost://",
		"redis://:hunter2@host:6379/-1":    "brute_force.store: the path must be a database number, like /0",
	} {
		c := Default()
		c.BruteForce.Store = store
		err := c.Validate()
		var ve *ValidationError
		if !errors.As(err, &ve) || strings.Join(ve.Problems, "\n") != want {
			t.Errorf("%q: %v, want %s", store, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%q: the password is in the message: %v", store, err)
		}
	}
}
