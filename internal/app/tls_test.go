package app

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// testCA is a certificate authority made at test time, and a pool trusting it.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1000),
		Subject:               pkix.Name{CommonName: "srht-registry test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue makes a server certificate for 127.0.0.1, ::1 and localhost with the
// given serial number, and returns it and its key as PEM.
func (ca *testCA) issue(t *testing.T, serial int64) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}))
}

// tlsFiles writes a certificate and key for a serve config.
type tlsFiles struct{ dir, cert, key string }

func writeTLSConfig(t *testing.T, ca *testCA, serial int64, listen string) (configPath string, files tlsFiles) {
	t.Helper()
	dir := t.TempDir()
	files = tlsFiles{dir: dir, cert: filepath.Join(dir, "tls.crt"), key: filepath.Join(dir, "tls.key")}
	certPEM, keyPEM := ca.issue(t, serial)
	writeFile(t, files.cert, certPEM)
	writeFile(t, files.key, keyPEM)
	configPath = filepath.Join(dir, "config.yaml")
	writeFile(t, configPath, fmt.Sprintf("listen: %s\nauthn:\n  sourcehut:\n    enabled: false\ntls:\n  certificate: %s\n  key: %s\nlog:\n  level: debug\n",
		listen, files.cert, files.key))
	return configPath, files
}

// servedSerial makes a fresh TLS connection (no session resumption) and
// returns the serial number of the certificate the server presents.
func servedSerial(t *testing.T, addr string, pool *x509.CertPool) int64 {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatalf("TLS handshake with %s: %v", addr, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

func httpsClient(pool *x509.CertPool) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: pool},
			ForceAttemptHTTP2: true, // a custom TLS config turns HTTP/2 off otherwise
		},
	}
}

// TestTLSServe serves /healthz and /auth over HTTPS to a client trusting a
// CA made here, with TLS 1.2 as the oldest version and HTTP/2 by ALPN.
func TestTLSServe(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	cfg, _ := writeTLSConfig(t, ca, 1, "127.0.0.1:0")
	srv, logs := startServer(t, cfg)
	addr := srv.Addr()
	if !strings.Contains(logs.String(), "msg=listening addr="+addr+" scheme=https") {
		t.Errorf("the listening line does not say https:\n%s", logs)
	}
	_, port, _ := strings.Cut(addr, ":")
	client := httpsClient(ca.pool)

	resp, err := client.Get("https://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"ok"`) {
		t.Errorf("/healthz: %d %s", resp.StatusCode, body)
	}
	if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Errorf("/healthz: TLS state %+v, want TLS 1.2 or newer", resp.TLS)
	}
	if resp.Proto != "HTTP/2.0" {
		t.Errorf("/healthz: protocol %s, want HTTP/2.0 (h2 by ALPN)", resp.Proto)
	}

	// By name: the certificate's DNS name is checked too.
	resp, err = client.Get("https://localhost:" + port + "/auth?service=registry.example.com&scope=repository:library/app:pull")
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		Token string `json:"token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || err != nil || tok.Token == "" {
		t.Errorf("/auth over HTTPS: %d, token %q, %v", resp.StatusCode, tok.Token, err)
	}

	// TLS 1.2 is still served; TLS 1.1 and older are refused.
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.pool, MaxVersion: tls.VersionTLS12})
	if err != nil {
		t.Errorf("TLS 1.2 client: %v", err)
	} else {
		if v := conn.ConnectionState().Version; v != tls.VersionTLS12 {
			t.Errorf("TLS 1.2 client negotiated %s", tls.VersionName(v))
		}
		conn.Close()
	}
	conn, err = tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
	if err == nil {
		conn.Close()
		t.Errorf("a TLS 1.1 client connected (%s)", tls.VersionName(conn.ConnectionState().Version))
	} else if !strings.Contains(err.Error(), "protocol version") {
		t.Errorf("TLS 1.1 client: %v, want a protocol version alert", err)
	}

	// Plain HTTP to the HTTPS port is answered with a 400, not served.
	resp, err = http.Get("http://" + addr + "/healthz")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP to the HTTPS port: %d", resp.StatusCode)
		}
	}
}

// TestTLSCipherSuites: TLS 1.2 is served with ECDHE and AEAD suites only.
// A client offering only a CBC suite (SHA-1 or SHA-256 MAC) cannot
// connect; one offering AES-GCM or ChaCha20-Poly1305 can; TLS 1.3 works.
// Every TLS 1.2 suite Go knows is tried alone.
func TestTLSCipherSuites(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	cfg, _ := writeTLSConfig(t, ca, 1, "127.0.0.1:0")
	srv, _ := startServer(t, cfg)
	addr := srv.Addr()
	dial := func(suite uint16) (uint16, error) {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.pool, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{suite}})
		if err != nil {
			return 0, err
		}
		defer conn.Close()
		return conn.ConnectionState().CipherSuite, nil
	}
	if _, err := dial(tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA); err == nil {
		t.Error("a client offering only TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA connected")
	} else if !strings.Contains(err.Error(), "handshake failure") {
		t.Errorf("CBC-SHA1 client: %v, want a handshake failure alert", err)
	}
	for _, suite := range []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256} {
		if got, err := dial(suite); err != nil || got != suite {
			t.Errorf("a client offering only %s: %s, %v", tls.CipherSuiteName(suite), tls.CipherSuiteName(got), err)
		}
	}
	// The certificate is ECDSA: of Go's TLS 1.2 suites, exactly the
	// ECDHE_ECDSA AEAD ones connect.
	for _, cs := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		if !slices.Contains(cs.SupportedVersions, tls.VersionTLS12) {
			continue
		}
		aead := strings.Contains(cs.Name, "_GCM_") || strings.Contains(cs.Name, "_CHACHA20_POLY1305")
		want := aead && strings.HasPrefix(cs.Name, "TLS_ECDHE_ECDSA_")
		if _, err := dial(cs.ID); (err == nil) != want {
			t.Errorf("a TLS 1.2 client offering only %s: connected %v, want %v (%v)", cs.Name, err == nil, want, err)
		}
	}
	// The list itself: ECDHE and AEAD only, for ECDSA and RSA keys.
	for _, id := range tls12CipherSuites {
		name := tls.CipherSuiteName(id)
		aead := strings.Contains(name, "_GCM_") || strings.Contains(name, "_CHACHA20_POLY1305")
		if !strings.HasPrefix(name, "TLS_ECDHE_") || !aead {
			t.Errorf("tls12CipherSuites has %s", name)
		}
	}
	// TLS 1.3 (its suites are all AEAD) is untouched.
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.pool, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatalf("TLS 1.3 client: %v", err)
	}
	conn.Close()
}

// TestTLSReload replaces the certificate and key under a running server:
// the new pair is served without a restart, and a broken, mismatched or
// exposed key leaves the last good pair in force, with the reason logged.
func TestTLSReload(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	cfg, files := writeTLSConfig(t, ca, 1, "127.0.0.1:0")
	srv, logs := startServer(t, cfg)
	addr := srv.Addr()
	if got := servedSerial(t, addr, ca.pool); got != 1 {
		t.Fatalf("serves serial %d, want 1", got)
	}

	certPEM, keyPEM := ca.issue(t, 2)
	writeFile(t, files.key, keyPEM)
	writeFile(t, files.cert, certPEM)
	waitFor(t, "the renewed certificate (serial 2)", func() bool { return servedSerial(t, addr, ca.pool) == 2 })
	waitFor(t, "the reload to be logged", func() bool {
		return strings.Contains(logs.String(), `msg="TLS certificate reloaded"`)
	})

	// reloadFails makes a bad change and waits until the reload refused it
	// with a message containing every one of want.
	reloadFails := func(what string, change func(), want ...string) {
		t.Helper()
		mark := len(logs.String())
		change()
		waitFor(t, "the reload to refuse "+what, func() bool {
			for _, line := range strings.Split(logs.String()[mark:], "\n") {
				if !strings.Contains(line, "reload failed") {
					continue
				}
				ok := true
				for _, w := range want {
					ok = ok && strings.Contains(line, w)
				}
				if ok {
					return true
				}
			}
			return false
		})
		if got := servedSerial(t, addr, ca.pool); got != 2 {
			t.Errorf("after %s the server presents serial %d, want the last good 2", what, got)
		}
	}

	reloadFails("a broken key", func() { writeFile(t, files.key, "-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n") },
		"tls.key "+files.key, "still serving the TLS certificate with serial 2")
	_, otherKey := ca.issue(t, 3)
	reloadFails("a key of another certificate", func() { writeFile(t, files.key, otherKey) },
		"private key does not match public key", "still serving the TLS certificate with serial 2")
	if runtime.GOOS != "windows" {
		reloadFails("a key readable by others", func() {
			writeFile(t, files.key, keyPEM)
			if err := os.Chmod(files.key, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "chmod 600 "+files.key, "still serving the TLS certificate with serial 2")
	}

	resp, err := httpsClient(ca.pool).Get("https://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz after the failed reloads: %d", resp.StatusCode)
	}
}

// serveExits runs serve with configPath and returns its exit code and
// stderr; the server must refuse to start.
func serveExits(t *testing.T, configPath string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var stderr syncBuffer
	code := Run(ctx, []string{"serve", "--config", configPath}, strings.NewReader(""), io.Discard, &stderr)
	if ctx.Err() != nil {
		t.Fatalf("serve did not exit; log:\n%s", stderr.String())
	}
	if strings.Contains(stderr.String(), "msg=listening") {
		t.Errorf("serve listened before refusing:\n%s", stderr.String())
	}
	return code, stderr.String()
}

// TestPlainHTTPOffLoopback: without TLS, a non-loopback listen address is
// refused unless insecure_http says a proxy terminates TLS.
func TestPlainHTTPOffLoopback(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, listen := range []string{"0.0.0.0:0", ":0"} {
		cfg := filepath.Join(dir, "plain.yaml")
		writeFile(t, cfg, "listen: "+listen+"\nauthn:\n  sourcehut:\n    enabled: false\n")
		code, stderr := serveExits(t, cfg)
		if code == 0 {
			t.Errorf("listen %s without TLS: serve exited 0", listen)
		}
		for _, want := range []string{"listen " + listen + " is not a loopback address", "tls.certificate and tls.key", "insecure_http: true"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("listen %s without TLS: stderr lacks %q:\n%s", listen, want, stderr)
			}
		}
		if code, _, stderr := run(t, "", "check-config", "--config", cfg); code == 0 || !strings.Contains(stderr, "insecure_http") {
			t.Errorf("check-config of listen %s without TLS: exit %d\n%s", listen, code, stderr)
		}
	}

	cfg := filepath.Join(dir, "insecure.yaml")
	writeFile(t, cfg, "listen: 0.0.0.0:0\ninsecure_http: true\nauthn:\n  sourcehut:\n    enabled: false\n")
	srv, logs := startServer(t, cfg)
	addr := srv.Addr()
	if !strings.Contains(logs.String(), "scheme=http ") || !strings.Contains(logs.String(), "insecure_http: true") {
		t.Errorf("the log does not say plain HTTP is served off loopback:\n%s", logs)
	}
	_, port, err := net.SplitHostPort(addr) // "[::]:PORT": 0.0.0.0 listens on both stacks
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://127.0.0.1:" + port + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz over plain HTTP with insecure_http: %d", resp.StatusCode)
	}
}

// TestTLSKeyPermissions: a TLS key that group or others may read is refused
// at start, by serve and check-config alike.
func TestTLSKeyPermissions(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits")
	}
	ca := newTestCA(t)
	cfg, files := writeTLSConfig(t, ca, 1, "127.0.0.1:0")
	if err := os.Chmod(files.key, 0o640); err != nil {
		t.Fatal(err)
	}
	code, stderr := serveExits(t, cfg)
	want := "tls.key " + files.key + ": refusing a private key that group or others may access (mode 0640)"
	if code == 0 || !strings.Contains(stderr, want) || !strings.Contains(stderr, "chmod 600 "+files.key) {
		t.Errorf("serve with a group-readable TLS key: exit %d, want non-zero and %q:\n%s", code, want, stderr)
	}
	if code, _, stderr := run(t, "", "check-config", "--config", cfg); code == 0 || !strings.Contains(stderr, "chmod 600") {
		t.Errorf("check-config with a group-readable TLS key: exit %d\n%s", code, stderr)
	}
}

// TestTLSBadPair: a missing file or a key of another certificate stops serve
// at start with the file names.
func TestTLSBadPair(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	cfg, files := writeTLSConfig(t, ca, 1, "127.0.0.1:0")
	_, otherKey := ca.issue(t, 2)
	writeFile(t, files.key, otherKey)
	code, stderr := serveExits(t, cfg)
	if code == 0 || !strings.Contains(stderr, "tls.certificate "+files.cert+" and tls.key "+files.key) || !strings.Contains(stderr, "does not match") {
		t.Errorf("mismatched pair: exit %d\n%s", code, stderr)
	}
	if err := os.Remove(files.cert); err != nil {
		t.Fatal(err)
	}
	code, stderr = serveExits(t, cfg)
	if code == 0 || !strings.Contains(stderr, "tls.certificate: open "+files.cert) {
		t.Errorf("missing certificate: exit %d\n%s", code, stderr)
	}
}

func TestIsLoopbackListen(t *testing.T) {
	t.Parallel()
	for listen, want := range map[string]bool{
		"127.0.0.1:5001":       true,
		"127.1.2.3:5001":       true,
		"[::1]:5001":           true,
		"[::ffff:127.0.0.1]:1": true,
		"localhost:5001":       true,
		"LOCALHOST:5001":       true,
		":5001":                false,
		"0.0.0.0:5001":         false,
		"[::]:5001":            false,
		"192.0.2.1:5001":       false,
		"[2001:db8::1]:5001":   false,
		"example.com:5001":     false,
		"localhost.example:1":  false,
		"garbage":              false,
	} {
		if got := isLoopbackListen(listen); got != want {
			t.Errorf("isLoopbackListen(%q) = %v, want %v", listen, got, want)
		}
	}
}
