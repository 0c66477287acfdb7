package refresh_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	regtoken "github.com/distribution/distribution/v3/registry/auth/token"
	"github.com/go-jose/go-jose/v4"
	"github.com/lestrrat-go/jwx/v2/jwa"

	"git.sr.ht/~zozs/srht-registry/internal/identity"
	"git.sr.ht/~zozs/srht-registry/internal/token"
	"git.sr.ht/~zozs/srht-registry/internal/token/tokentest"
)

// TestRefreshTampered: any change to a refresh token, or a token we did not
// sign, is refused.
func TestRefreshTampered(t *testing.T) {
	for _, kt := range tokentest.KeyTypes {
		t.Run(string(kt.Type), func(t *testing.T) {
			c := newClock()
			s := tokentest.Signer(t, kt.Type, 0)
			key := tokentest.NewKey(t, s)
			r := newRefresher(key, hashes{"alice": aliceHash, "root": aliceHash}, c)
			tok := issue(t, r, alice).Reveal()
			parts := strings.Split(tok, ".")
			header, claims := decode(t, tok)
			reencode := func(v map[string]any) string {
				b, err := json.Marshal(v)
				if err != nil {
					t.Fatal(err)
				}
				return base64.RawURLEncoding.EncodeToString(b)
			}
			with := func(m map[string]any, k string, v any) map[string]any {
				out := maps.Clone(m)
				if v == nil {
					delete(out, k)
				} else {
					out[k] = v
				}
				return out
			}
			sig := tokentest.DecodeSegment(t, parts[2])
			sig[len(sig)/2] ^= 1
			unsigned := parts[0] + "." + parts[1] + "."
			noneHeader := reencode(map[string]any{"alg": "none", "kid": key.ID(), "typ": "refresh+jwt"})
			hmacKey := []byte(key.ID())
			hsHeader := map[string]any{"kid": key.ID(), "typ": "refresh+jwt"}
			cases := []struct {
				name, token, why string
			}{
				{"empty", "", "missing"},
				{"garbage", "not-a-token", "malformed"},
				{"two parts", parts[0] + "." + parts[1], "malformed"},
				{"four parts", tok + ".x", "malformed"},
				{"oversized", strings.Repeat("a", 9000), "malformed"},
				{"flipped signature bit", parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig), "bad signature"},
				{"no signature", unsigned, "bad signature"},
				{"another subject", parts[0] + "." + reencode(with(claims, "sub", "root")) + "." + parts[2], "bad signature"},
				{"another provider", parts[0] + "." + reencode(with(claims, "provider", "sourcehut")) + "." + parts[2], "bad signature"},
				{"no provider", parts[0] + "." + reencode(with(claims, "provider", nil)) + "." + parts[2], "bad signature"},
				{"a later expiry", parts[0] + "." + reencode(with(claims, "exp", claims["exp"].(float64)+1e6)) + "." + parts[2], "bad signature"},
				{"alg none", noneHeader + "." + parts[1] + ".", "bad signature"},
				{"alg of another family", reencode(with(header, "alg", "HS256")) + "." + parts[1] + "." + parts[2], "bad signature"},
				{"unknown kid", reencode(with(header, "kid", "nope")) + "." + parts[1] + "." + parts[2], "no longer publishes"},
				{"typ of an access token", reencode(with(header, "typ", "JWT")) + "." + parts[1] + "." + parts[2], "not a refresh token"},
				{"crit header", reencode(with(header, "crit", []string{"exp"})) + "." + parts[1] + "." + parts[2], "not a refresh token"},
				{"signed by another key under our kid", string(signAs(t, tokentest.Signer(t, kt.Type, 1), key.Algorithm(), header, claims)), "bad signature"},
				{"HMAC with the kid as secret", string(signAs(t, hmacKey, jwa.HS256, hsHeader, claims)), "bad signature"},
			}
			for _, tc := range cases {
				id, err := r.Redeem(context.Background(), refreshCred(identity.Secret(tc.token)))
				t.Run(tc.name, func(t *testing.T) { wantRefused(t, identity.Secret(tc.token), id, err, tc.why) })
			}
		})
	}
}

// TestRefreshClaimChecks: tokens with our signature but claims we never
// issue (forged with the key, as a bug elsewhere might make them) are
// refused claim by claim.
func TestRefreshClaimChecks(t *testing.T) {
	c := newClock()
	s := tokentest.Signer(t, token.KeyEC, 0)
	key := tokentest.NewKey(t, s)
	r := newRefresher(key, hashes{"alice": aliceHash}, c)
	header, claims := decode(t, issue(t, r, alice).Reveal())
	_, shClaims := decode(t, issue(t, r, sourcehutID("RW", c.Now().Add(time.Hour))).Reveal())
	with := func(base map[string]any, kv ...any) map[string]any {
		out := maps.Clone(base)
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(out, kv[i].(string))
			} else {
				out[kv[i].(string)] = kv[i+1]
			}
		}
		return out
	}
	// Re-signed unchanged, the claims pass: the cases below fail for their
	// change alone.
	if _, err := r.Redeem(context.Background(), refreshCred(signAs(t, s, key.Algorithm(), header, claims))); err != nil {
		t.Fatalf("re-signed token refused: %v", err)
	}
	cases := []struct {
		name   string
		claims map[string]any
		why    string
	}{
		{"audience of the registry", with(claims, "aud", tokentest.Audience), "not a refresh token"},
		{"audience as a list", with(claims, "aud", []string{tokentest.Audience + "#refresh"}), "malformed"},
		{"no token_use", with(claims, "token_use", nil), "not a refresh token"},
		{"token_use access", with(claims, "token_use", "access"), "not a refresh token"},
		{"service differs from audience", with(claims, "service", "registry.example.org"), "not a refresh token"},
		{"method refresh", with(claims, "method", "refresh"), "malformed"},
		{"method anonymous", with(claims, "method", "anonymous", "sub", ""), "malformed"},
		{"no subject", with(claims, "sub", ""), "malformed"},
		{"no jti", with(claims, "jti", nil), "malformed"},
		{"password without binding", with(claims, "htpasswd_binding", nil), "malformed"},
		{"password with a Sourcehut part", with(claims, "sourcehut", shClaims["sourcehut"]), "malformed"},
		{"Sourcehut without its part", with(shClaims, "sourcehut", nil), "malformed"},
		{"Sourcehut for another user", with(shClaims, "sub", "alice"), "malformed"},
		{"Sourcehut with a binding", with(shClaims, "htpasswd_binding", claims["htpasswd_binding"]), "malformed"},
		// The provider must be the one the method implies.
		{"password of sourcehut", with(claims, "provider", "sourcehut"), "malformed"},
		{"password of another provider", with(claims, "provider", "ldap"), "malformed"},
		{"password of HTPASSWD", with(claims, "provider", "HTPASSWD"), "malformed"},
		{"password with a non-string provider", with(claims, "provider", 1), "malformed"},
		{"Sourcehut of htpasswd", with(shClaims, "provider", "htpasswd"), "malformed"},
		{"Sourcehut of another provider", with(shClaims, "provider", "ldap"), "malformed"},
		{"method refresh, provider htpasswd", with(claims, "method", "refresh", "provider", "htpasswd"), "malformed"},
		{"Sourcehut token expired, refresh not", with(shClaims, "sourcehut", with(shClaims["sourcehut"].(map[string]any), "expires", float64(c.Now().Unix()))),
			"expired with its Sourcehut token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := signAs(t, s, key.Algorithm(), header, tc.claims)
			id, err := r.Redeem(context.Background(), refreshCred(tok))
			wantRefused(t, tok, id, err, tc.why)
		})
	}
}

// TestAccessTokenIsNotARefreshToken: neither kind of token passes for the
// other, at our server or at a registry.
func TestAccessTokenIsNotARefreshToken(t *testing.T) {
	for _, kt := range tokentest.KeyTypes {
		t.Run(string(kt.Type), func(t *testing.T) {
			c := newClock()
			key := tokentest.Key(t, kt.Type, 0)
			r := newRefresher(key, hashes{"alice": aliceHash}, c)
			m := &token.Minter{Issuer: tokentest.Issuer, TTL: tokentest.TTL, Key: key, Now: c.Now}
			minted, err := m.Mint("alice", tokentest.Audience, tokentest.Grant)
			if err != nil {
				t.Fatal(err)
			}
			access := minted.Signed
			id, err := r.Redeem(context.Background(), refreshCred(identity.Secret(access)))
			wantRefused(t, identity.Secret(access), id, err, "not a refresh token")

			// The registry refuses a refresh token as an access token: its
			// audience is not the service, and it grants nothing anyway.
			refresh := issue(t, r, alice).Reveal()
			tok, err := regtoken.NewToken(refresh, []jose.SignatureAlgorithm{kt.JOSE})
			if err != nil {
				return // not even parsed: refused
			}
			claims, err := tok.Verify(regtoken.VerifyOptions{
				TrustedIssuers:    []string{tokentest.Issuer},
				AcceptedAudiences: []string{tokentest.Audience},
				TrustedKeys:       tokentest.TrustedKeys(t, key),
			})
			if err == nil {
				t.Errorf("the registry accepts a refresh token as an access token: %+v", claims)
			}
		})
	}
}

// FuzzRefreshRedeem feeds Redeem arbitrary strings: it never panics, and
// whatever it accepts stands for the identity a real token was issued for
// (an ECDSA signature has two valid forms, so an accepted string need not
// be the issued one, but its claims are).
func FuzzRefreshRedeem(f *testing.F) {
	c := newClock()
	priv := tokentest.Signer(f, token.KeyEC, 0)
	key := tokentest.NewKey(f, priv)
	r := newRefresher(key, hashes{"alice": aliceHash}, c)
	pw, err := r.Issue(alice, tokentest.Audience, "docker", "")
	if err != nil {
		f.Fatal(err)
	}
	sh, err := r.Issue(sourcehutID("RO", c.Now().Add(time.Hour)), tokentest.Audience, "docker", "")
	if err != nil {
		f.Fatal(err)
	}
	// What a token may stand for: subject, method and provider together.
	want := map[string]bool{"alice/password/htpasswd": true, "bob/sourcehut/sourcehut": true}
	seeds := []string{pw.Reveal(), sh.Reveal(), "", ".", "..", "a.b.c", pw.Reveal()[:40], strings.ReplaceAll(sh.Reveal(), "A", "B")}
	// Tokens from before providers were named, and ones whose provider
	// contradicts their method, with our signature.
	for _, tok := range []identity.Secret{pw, sh} {
		header, claims := decode(f, tok.Reveal())
		for _, p := range []any{nil, "htpasswd", "sourcehut", "ldap"} {
			cl := maps.Clone(claims)
			if p == nil {
				delete(cl, "provider")
			} else {
				cl["provider"] = p
			}
			seeds = append(seeds, signAs(f, priv, key.Algorithm(), header, cl).Reveal())
		}
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := r.Redeem(context.Background(), refreshCred(identity.Secret(s)))
		if err != nil {
			if !errors.Is(err, identity.ErrUnauthenticated) {
				t.Fatalf("error %v is not ErrUnauthenticated", err)
			}
			return
		}
		if id.Method != identity.MethodRefresh || !want[id.Subject+"/"+string(id.RefreshedFrom)+"/"+id.Provider] || id.Namespace != "" || id.Groups != nil {
			t.Fatalf("accepted %q as %+v", s, id)
		}
	})
}
