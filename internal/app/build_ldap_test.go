package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadSecretFile(t *testing.T) {
	t.Parallel()
	const secret = "the-bind-password"
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		want    string // "" = an error
		errHas  string
	}{
		{"owner only, trailing newline", secret + "\n", 0o600, secret, ""},
		{"owner read-only, CRLF", secret + "\r\n", 0o400, secret, ""},
		{"readable by the group", secret, 0o640, "", "refusing a password file that group or others may access (mode 0640)"},
		{"readable by everyone", secret, 0o644, "", "chmod 600"},
		{"empty", "\n", 0o600, "", "is empty"},
		{"too large", strings.Repeat("x", maxSecretFileBytes+1), 0o600, "", "larger than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "pw")
			if err := os.WriteFile(path, []byte(tc.content), tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil { // past the umask
				t.Fatal(err)
			}
			got, err := readSecretFile("authn.ldap[0].bind_password_file", path)
			if tc.want != "" {
				if err != nil || got.Reveal() != tc.want {
					t.Fatalf("readSecretFile = %q, %v; want the password", got.Reveal(), err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("readSecretFile: %v, want an error with %q", err, tc.errHas)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
	if _, err := readSecretFile("f", filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing file was read")
	}
}
