package main

import (
	"strings"
	"testing"
)

func TestOneLine(t *testing.T) {
	for _, tc := range []struct{ name, out, want string }{
		{"crane", "Error: GET http://localhost:1/v2/: UNAUTHORIZED: authentication required\n", "Error: GET http://localhost:1/v2/: UNAUTHORIZED: authentication required"},
		{"skopeo logrus fatal", `time="2026-11-30T13:43:32Z" level=fatal msg="logging into \"localhost:3\": invalid username/password"` + "\n",
			`logging into "localhost:3": invalid username/password`},
		{"docker: info retries, then the error", `time="x" level=info msg="Error logging in to endpoint, trying next endpoint" error="Get \"https://l/v2/\": http: server gave HTTP response to HTTPS client"` + "\n" +
			"Get \"http://l/v2/\": unauthorized: authentication failed: wrong user name or password\n",
			`Get "http://l/v2/": unauthorized: authentication failed: wrong user name or password`},
		{"regctl slog warn then the error", `time=2026 level=WARN msg="Failed to push blob" err="failed to send blob post: unauthorized"` + "\nfailed to send blob post, ref r: unauthorized\n",
			"failed to send blob post, ref r: unauthorized"},
		{"only a warn line", `time=2026 level=WARN msg="Failed to ping registry" err="unauthorized"` + "\n", "Failed to ping registry: unauthorized"},
		{"docker noise dropped", "WARNING! Your credentials are stored unencrypted in '/x'.\nLogin Succeeded\n", "Login Succeeded"},
		{"no error: last line", "a\nb\n\n", "b"},
		{"ansi", "\x1b[31mError: boom\x1b[0m\n", "Error: boom"},
	} {
		if got := oneLine(tc.out); got != tc.want {
			t.Errorf("%s: oneLine = %q, want %q", tc.name, got, tc.want)
		}
	}
	if got := oneLine(strings.Repeat("error ", 200)); len(got) > maxLine+len("…") {
		t.Errorf("oneLine not bounded: %d bytes", len(got))
	}
}

func TestMountRequests(t *testing.T) {
	log := `127.0.0.1 - - [30/Nov/2026:13:00:00 +0000] "POST /v2/bob/dst/blobs/uploads/?from=bob%2Fsrc&mount=sha256%3Aaa HTTP/1.1" 201 0 "" "crane"
127.0.0.1 - - [30/Nov/2026:13:00:00 +0000] "POST /v2/bob/dst/blobs/uploads/?mount=sha256%3Abb&from=bob%2Fsrc HTTP/1.1" 202 0 "" "crane"
127.0.0.1 - - [30/Nov/2026:13:00:00 +0000] "POST /v2/bob/dst/blobs/uploads/ HTTP/1.1" 202 0 "" "crane"
127.0.0.1 - - [30/Nov/2026:13:00:00 +0000] "POST /v2/bob/dst2/blobs/uploads/?from=bob%2Fsrc&mount=sha256%3Acc HTTP/1.1" 201 0 "" "crane"
`
	if got := strings.Join(mountRequests(log, "bob/dst"), ","); got != "201,202" {
		t.Errorf("mountRequests = %q, want 201,202", got)
	}
}

func TestRegistryLogLine(t *testing.T) {
	log := "time=\"2026-11-30T13:00:00Z\" level=info msg=\"response completed\"\n" +
		"time=\"2026-11-30T13:00:00Z\" level=info msg=\"failed to verify token: token signed by untrusted key with ID: \\\"abc\\\"\" go.version=go1.26\n"
	got := registryLogLine(log, registryTokenLog)
	if want := `info: failed to verify token: token signed by untrusted key with ID: "abc"`; got != want {
		t.Errorf("registryLogLine = %q, want %q", got, want)
	}
}

func TestNormalize(t *testing.T) {
	in := `HEAD http://localhost:46561/v2/a/manifests/sha256:` + strings.Repeat("ab", 32) + ` with ID: "Ac3dz"`
	want := `HEAD http://localhost:PORT/v2/a/manifests/sha256:… with ID: "KID"`
	if got := normalize(in); got != want {
		t.Errorf("normalize = %q, want %q", got, want)
	}
}

// The documented errors of the broken setups match what the registries
// and srht-registry print (as seen in the matrix).
func TestBrokenExpectations(t *testing.T) {
	seen := map[string]string{
		"wrong-issuer":         `info: token from untrusted issuer: "srht-registry"`,
		"wrong-service":        `Error: GET http://localhost:1/auth?service=wrong.example.com: INVALID_REQUEST: unknown service "wrong.example.com"; this token server serves registry.example.com`,
		"stale-jwks":           `info: failed to verify token: token signed by untrusted key with ID: "x"`,
		"stale-rootcertbundle": `info: unable to verify certificate chain: x509: certificate signed by unknown authority`,
	}
	for _, b := range brokenSetups {
		if !b.expect.MatchString(seen[b.id]) {
			t.Errorf("%s: %s does not match %q", b.id, b.expect, seen[b.id])
		}
	}
}

func TestRefusedByPolicy(t *testing.T) {
	for msg, want := range map[string]status{
		"UNAUTHORIZED: authentication required":                            statusPass,
		"denied: requested access to the resource is denied":               statusPass,
		"unauthorized: authentication failed: wrong user name or password": statusFail,
		"dial tcp 127.0.0.1:1: connect: connection refused":                statusFail,
	} {
		if got := refusedByPolicy(errString(msg)).st; got != want {
			t.Errorf("refusedByPolicy(%q) = %s, want %s", msg, got, want)
		}
	}
}

type errString string

func (e errString) Error() string { return string(e) }
