package access

import "testing"

func BenchmarkParseScopes(b *testing.B) {
	cases := map[string][]string{
		"one":   {"repository:library/base:pull"},
		"three": {"repository:alice/app:pull,push", "repository:alice/b:pull", "repository:registry.example.com:5000/library/base:pull"},
	}
	for name, values := range cases {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParseScopes(values, 64); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
