package suggest

import "testing"

func TestClosest(t *testing.T) {
	t.Parallel()
	known := []string{"htpasswd", "anonymous", "sourcehut", "max_scopes", "max_body_bytes", "check-config", "serve"}
	tests := []struct {
		name, want string
		ok         bool
	}{
		{"htpaswd", "htpasswd", true},     // one deletion
		{"anonymus", "anonymous", true},   // one deletion
		{"sourcehtu", "sourcehut", true},  // one transposition
		{"HTPASSWD", "htpasswd", true},    // case ignored
		{"maxscopes", "max_scopes", true}, // "_" ignored
		{"checkconfig", "check-config", true},
		{"serv", "serve", true},
		{"max", "", false}, // the start of two names
		{"frobnicate", "", false},
		{"ab", "", false}, // too short to be two edits from anything meaningful
	}
	for _, tt := range tests {
		got, ok := Closest(tt.name, known)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Closest(%q) = %q, %t; want %q, %t", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}
