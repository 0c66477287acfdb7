package app

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/config"
)

// serveTLS is the HTTPS side of serve: the certificate and key files named
// by the config and the pair currently served. Handshakes read the pair
// through an atomic pointer, so a reload swaps it without a restart and
// without disturbing connections already open.
//
// A nil *serveTLS means plain HTTP; its methods are safe to call on nil.
type serveTLS struct {
	certFile, keyFile string
	log               *slog.Logger
	cert              atomic.Pointer[tls.Certificate]

	mu               sync.Mutex // serialises reloads
	certPEM, keyPEM  []byte     // the contents behind cert, to skip no-op reloads
	serial, notAfter string     // of cert's leaf, for messages
}

// prepareTLS decides how serve speaks on cfg.Listen. With tls.certificate
// and tls.key it loads the pair (refusing a private key readable by group or
// others) and returns the HTTPS side. Without them it returns nil (plain
// HTTP), but only on a loopback listen address or with insecure_http: true.
func prepareTLS(cfg config.Config, log *slog.Logger) (*serveTLS, error) {
	if cfg.TLS.Certificate == "" || cfg.TLS.Key == "" {
		if isLoopbackListen(cfg.Listen) {
			return nil, nil
		}
		if !cfg.InsecureHTTP {
			return nil, usageError{fmt.Errorf("listen %s is not a loopback address and no TLS is configured: "+
				"refusing to serve passwords and tokens over plain HTTP on the network; either set tls.certificate "+
				"and tls.key to serve HTTPS, or set insecure_http: true if a TLS-terminating proxy in front is "+
				"the only way clients reach this address", cfg.Listen)}
		}
		log.Warn("serving plain HTTP on a non-loopback address (insecure_http: true): passwords and tokens "+
			"cross the network in clear unless a TLS-terminating proxy is the only client", "addr", cfg.Listen)
		return nil, nil
	}
	s := &serveTLS{certFile: cfg.TLS.Certificate, keyFile: cfg.TLS.Key, log: log}
	if err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

// isLoopbackListen reports whether a host:port listen address only accepts
// connections from this machine: its host is "localhost" or a loopback IP
// (127.0.0.0/8, ::1). An empty host (":5001"), 0.0.0.0, :: and any other
// name or address are not.
func isLoopbackListen(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// tls12CipherSuites are the TLS 1.2 suites served: forward secret (ECDHE)
// and authenticated encryption (AES-GCM, ChaCha20-Poly1305) only, for ECDSA
// and RSA certificates. Go's defaults would add CBC suites with SHA-1 and
// SHA-256 MACs. TLS 1.3 suites are not configurable, and all AEAD.
var tls12CipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// config is the server's TLS configuration: TLS 1.2 (ECDHE with AEAD
// suites only, tls12CipherSuites) and 1.3, Go's default key exchanges,
// HTTP/2 and HTTP/1.1 by ALPN, and the current certificate at every
// handshake.
func (s *serveTLS) config() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: tls12CipherSuites,
		NextProtos:   []string{"h2", "http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.cert.Load(), nil
		},
	}
}

// listener wraps ln to speak TLS, or returns it unchanged for plain HTTP.
func (s *serveTLS) listener(ln net.Listener) net.Listener {
	if s == nil {
		return ln
	}
	return tls.NewListener(ln, s.config())
}

// scheme is "https" or "http", for the log.
func (s *serveTLS) scheme() string {
	if s == nil {
		return "http"
	}
	return "https"
}

// watch lists the files whose changes must reload the pair.
func (s *serveTLS) watch() []string {
	if s == nil {
		return nil
	}
	return []string{s.certFile, s.keyFile}
}

// load reads and checks the pair and, when it differs from the one served,
// swaps it in (served from the next handshake on) and logs it. On a reload
// error the pair served so far stays, and the error says which it is.
func (s *serveTLS) load() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	certPEM, keyPEM, cert, err := readKeyPair(s.certFile, s.keyFile)
	first := s.cert.Load() == nil
	if err != nil {
		if first {
			return err
		}
		return fmt.Errorf("%w (still serving the TLS certificate with serial %s, valid until %s)", err, s.serial, s.notAfter)
	}
	if !first && bytes.Equal(certPEM, s.certPEM) && bytes.Equal(keyPEM, s.keyPEM) {
		return nil
	}
	s.cert.Store(cert)
	s.certPEM, s.keyPEM = certPEM, keyPEM
	leaf := cert.Leaf
	s.serial, s.notAfter = fmt.Sprintf("%X", leaf.SerialNumber), leaf.NotAfter.UTC().Format(time.RFC3339)
	msg := "TLS certificate loaded"
	if !first {
		msg = "TLS certificate reloaded"
	}
	s.log.Info(msg, "file", s.certFile, "subject", leaf.Subject.String(), "dns_names", leaf.DNSNames,
		"ip_addresses", leaf.IPAddresses, "serial", s.serial, "not_after", s.notAfter)
	switch now := time.Now(); {
	case now.After(leaf.NotAfter):
		s.log.Warn("the TLS certificate has expired: clients will refuse it", "file", s.certFile, "not_after", s.notAfter)
	case now.Before(leaf.NotBefore):
		s.log.Warn("the TLS certificate is not valid yet: clients will refuse it", "file", s.certFile,
			"not_before", leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return nil
}

// readKeyPair reads a PEM certificate chain and its private key, refusing a
// key file that group or others may access and a key that does not match
// the certificate.
func readKeyPair(certFile, keyFile string) (certPEM, keyPEM []byte, cert *tls.Certificate, err error) {
	// The same reader and permission check as the signing key's.
	if keyPEM, err = readKeyFile("tls.key", keyFile, true); err != nil {
		return nil, nil, nil, err
	}
	if certPEM, err = os.ReadFile(certFile); err != nil {
		return nil, nil, nil, fmt.Errorf("tls.certificate: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("tls.certificate %s and tls.key %s: %w", certFile, keyFile, err)
	}
	if pair.Leaf == nil { // only with GODEBUG=x509keypairleaf=0
		if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, nil, nil, fmt.Errorf("tls.certificate %s: %w", certFile, err)
		}
	}
	return certPEM, keyPEM, &pair, nil
}
