package token

import (
	"testing"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/access"
)

// BenchmarkMint is one signed token, the floor of every request's cost.
func BenchmarkMint(b *testing.B) {
	granted := []access.Scope{{Resource: access.Resource{Type: "repository", Name: "alice/app"}, Actions: []string{"pull", "push"}}}
	for _, kt := range []KeyType{KeyEC, KeyEd25519, KeyRSA} {
		b.Run(string(kt), func(b *testing.B) {
			signer, err := Generate(kt)
			if err != nil {
				b.Fatal(err)
			}
			key, err := NewKey(signer, nil)
			if err != nil {
				b.Fatal(err)
			}
			m := &Minter{Issuer: "srht-registry", TTL: 5 * time.Minute, Key: key, Now: time.Now}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Mint("alice", "registry.example.com", granted); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
