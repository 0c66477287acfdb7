package authntest

import (
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// HtpasswdLine is the line of an htpasswd file that lets user in with
// password, newline included. Its hash has bcrypt's lowest cost, which
// keeps the tests fast; the cost does not change the code path.
func HtpasswdLine(t testing.TB, user, password string) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return user + ":" + string(hash) + "\n"
}
