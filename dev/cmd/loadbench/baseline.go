package main

import (
	"context"
	"crypto"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// runBaseline is the hidden `loadbench baseline` subcommand: the bare
// signer every case is compared with.
func runBaseline(args []string) int {
	fs := flag.NewFlagSet("loadbench baseline", flag.ContinueOnError)
	keyPath := fs.String("key", "", "PEM private `FILE` (EC P-256 or Ed25519, PKCS#8)")
	listen := fs.String("listen", "127.0.0.1:0", "`ADDR` to listen on")
	issuer := fs.String("issuer", "srht-registry", "iss claim")
	service := fs.String("service", "registry.example.com", "aud claim")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *keyPath == "" || fs.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: loadbench baseline --key KEYFILE [--listen ADDR]")
		return 2
	}
	pemBytes, err := os.ReadFile(*keyPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		return 1
	}
	signer, err := newBaselineSigner(pemBytes, *issuer, *service)
	if err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		return 1
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "msg=listening addr=%s alg=%s\n", ln.Addr(), signer.alg)
	srv := &http.Server{
		Handler:           signer,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		fmt.Fprintln(os.Stderr, "baseline:", err)
		return 1
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	return 0
}

// baselineSigner signs the server's claim shape, granting the scopes asked
// for (the server's grant in every case of the benchmark) to the Basic
// user, whose password it does not check.
type baselineSigner struct {
	key     jwk.Key
	alg     jwa.SignatureAlgorithm
	issuer  string
	service string
}

type baselineAccess struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

type baselineResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
}

const baselineTTL = 5 * time.Minute

func newBaselineSigner(pemBytes []byte, issuer, service string) (*baselineSigner, error) {
	key, err := jwk.ParseKey(pemBytes, jwk.WithPEM(true))
	if err != nil {
		return nil, fmt.Errorf("parse key: %w", err)
	}
	var alg jwa.SignatureAlgorithm
	switch key.KeyType() {
	case jwa.EC:
		alg = jwa.ES256
	case jwa.OKP:
		alg = jwa.EdDSA
	default:
		return nil, fmt.Errorf("key type %s: the baseline signs with EC P-256 or Ed25519", key.KeyType())
	}
	// Like the server: the header carries kid (the RFC 7638 thumbprint),
	// alg and typ, so both tokens are the same size.
	public, err := jwk.PublicKeyOf(key)
	if err != nil {
		return nil, err
	}
	thumb, err := public.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	if err := key.Set(jwk.KeyIDKey, base64.RawURLEncoding.EncodeToString(thumb)); err != nil {
		return nil, err
	}
	if err := key.Set(jwk.AlgorithmKey, alg); err != nil {
		return nil, err
	}
	return &baselineSigner{key: key, alg: alg, issuer: issuer, service: service}, nil
}

// baselineScopes reads the scope parameters as access entries, granted
// as asked, so the baseline signs as many entries as the server does.
func baselineScopes(scopes []string) []baselineAccess {
	access := make([]baselineAccess, 0, len(scopes))
	for _, sc := range scopes {
		typ, rest, ok1 := strings.Cut(sc, ":")
		i := strings.LastIndexByte(rest, ':')
		if !ok1 || i < 0 {
			continue
		}
		access = append(access, baselineAccess{Type: typ, Name: rest[:i], Actions: strings.Split(rest[i+1:], ",")})
	}
	return access
}

// sign mints one token: the server's claims, a fresh jti.
func (s *baselineSigner) sign(now time.Time, sub string, access []baselineAccess) (string, error) {
	tok := jwt.New()
	tok.Options().Enable(jwt.FlattenAudience)
	claims := []struct {
		k string
		v any
	}{
		{jwt.IssuerKey, s.issuer},
		{jwt.SubjectKey, sub},
		{jwt.AudienceKey, s.service},
		{jwt.IssuedAtKey, now},
		{jwt.NotBeforeKey, now},
		{jwt.ExpirationKey, now.Add(baselineTTL)},
		{jwt.JwtIDKey, rand.Text()},
		{"access", access},
	}
	for _, c := range claims {
		if err := tok.Set(c.k, c.v); err != nil {
			return "", err
		}
	}
	headers := jws.NewHeaders()
	if err := headers.Set(jws.TypeKey, "JWT"); err != nil {
		return "", err
	}
	raw, err := jwt.Sign(tok, jwt.WithKey(s.alg, s.key, jws.WithProtectedHeaders(headers)))
	if err != nil {
		return "", err
	}
	return string(raw), nil
}

func (s *baselineSigner) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/auth" {
		http.NotFound(w, r)
		return
	}
	now := time.Now().Truncate(time.Second)
	sub, _, _ := r.BasicAuth() // not checked: the baseline only signs
	signed, err := s.sign(now, sub, baselineScopes(r.URL.Query()["scope"]))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	b, err := json.Marshal(baselineResponse{
		Token:       signed,
		AccessToken: signed,
		ExpiresIn:   int(baselineTTL / time.Second),
		IssuedAt:    now.UTC().Format(time.RFC3339),
	})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
}
