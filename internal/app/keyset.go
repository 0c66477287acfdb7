package app

import (
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"

	"git.sr.ht/~zozs/srht-registry/internal/config"
	"git.sr.ht/~zozs/srht-registry/internal/token"
)

// maxKeyFileBytes bounds what is read of a key or certificate file: a PEM
// key or a certificate chain is a few kilobytes.
const maxKeyFileBytes = 1 << 20

// signingKeys is the key set a running server signs with and publishes: a
// ring that a reload swaps whole, and the generated key used when the
// config names none, kept across reloads so that its tokens stay valid.
type signingKeys struct {
	ring      *token.KeyRing
	ephemeral *token.Key
	log       *slog.Logger
}

// loadKey loads the key set the config names: the signing key (and its
// certificate) and the published keys.
func loadKey(c config.Token, log *slog.Logger) (*signingKeys, error) {
	k := &signingKeys{log: log}
	set, err := k.load(c)
	if err != nil {
		return nil, err
	}
	k.ring = token.NewKeyRing(set)
	if k.ephemeral != nil {
		log.Warn("no token.key configured: signing with an ephemeral P-256 key; tokens and the JWKS will not survive a restart (create a key with `srht-registry keys`)", "kid", k.ephemeral.ID())
	}
	logKeySet(log, "signing key loaded", set)
	return k, nil
}

// load reads every key file anew and builds the set, without making it
// current: a reload swaps it in only once everything else loaded too.
func (k *signingKeys) load(c config.Token) (*token.KeySet, error) {
	signing, err := k.signingKey(c)
	if err != nil {
		return nil, err
	}
	var published []*token.PublicKey
	for i, path := range c.PublishedKeys {
		field := fmt.Sprintf("token.published_keys[%d]", i)
		data, err := readKeyFile(field, path, false)
		if err != nil {
			return nil, err
		}
		p, err := token.ParsePublicKey(data, kidFormat(c))
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", field, path, err)
		}
		published = append(published, p)
	}
	return token.NewKeySet(signing, published...)
}

func (k *signingKeys) signingKey(c config.Token) (*token.Key, error) {
	if c.Key == "" {
		if k.ephemeral == nil {
			signer, err := token.Generate(token.KeyEC)
			if err != nil {
				return nil, err
			}
			if k.ephemeral, err = token.NewKey(signer, nil, kidFormat(c)); err != nil {
				return nil, err
			}
		}
		return k.ephemeral, nil
	}
	keyPEM, err := readKeyFile("token.key", c.Key, true)
	if err != nil {
		return nil, err
	}
	var certPEM []byte
	if c.Certificate != "" {
		if certPEM, err = readKeyFile("token.certificate", c.Certificate, false); err != nil {
			return nil, err
		}
	}
	key, err := token.ParseKey(keyPEM, certPEM, kidFormat(c))
	if err != nil {
		return nil, fmt.Errorf("token.key %s: %w", c.Key, err)
	}
	return key, nil
}

// kidFormat is the configured kid format as a key option.
func kidFormat(c config.Token) token.KeyOption {
	return token.WithKeyIDFormat(token.KeyIDFormat(c.KidFormat))
}

// swap makes set current; a request minting at this moment finishes with
// the key it took, which stays valid at the registry while it is published.
func (k *signingKeys) swap(set *token.KeySet) {
	prev := k.ring.Swap(set)
	if !sameKeySet(prev, set) {
		logKeySet(k.log, "keys reloaded", set, "previous_kid", prev.Signing().ID())
	}
}

// keyFiles are the files key loading reads, for the file watch.
func keyFiles(c config.Token) []string {
	var files []string
	for _, f := range []string{c.Key, c.Certificate} {
		if f != "" {
			files = append(files, f)
		}
	}
	return append(files, c.PublishedKeys...)
}

func sameKeySet(a, b *token.KeySet) bool {
	return slices.Equal(a.KeyIDs(), b.KeyIDs()) && a.Signing().HasCertificate() == b.Signing().HasCertificate()
}

func logKeySet(log *slog.Logger, msg string, set *token.KeySet, attrs ...any) {
	s := set.Signing()
	published := set.KeyIDs()[1:]
	log.Info(msg, append([]any{"kid", s.ID(), "alg", s.Algorithm().String(), "x5c", s.HasCertificate(), "published_kids", published}, attrs...)...)
}

// readKeyFile reads a key or certificate file named by the config field
// field. A file that holds a private key (private: it must) is refused
// when its group or others may read or write it: anyone who reads it can
// sign tokens for every repository.
func readKeyFile(field, path string, private bool) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	defer f.Close()
	// The mode of the file read, not of the path looked up before: a
	// rename in between cannot slip a readable key past the check.
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%s %s: is a directory, not a PEM file", field, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	if len(data) > maxKeyFileBytes {
		return nil, fmt.Errorf("%s %s: larger than %d bytes, not a PEM key or certificate", field, path, maxKeyFileBytes)
	}
	if (private || token.ContainsPrivateKey(data)) && looseMode(st.Mode()) {
		return nil, fmt.Errorf("%s %s: refusing a private key that group or others may access (mode %04o); make it readable by its owner only: chmod 600 %s",
			field, path, uint32(st.Mode().Perm()), shellQuote(path))
	}
	return data, nil
}

// looseMode reports whether group or others have any access. Windows has
// no such bits: its ACLs are the operator's to set.
func looseMode(m fs.FileMode) bool {
	return runtime.GOOS != "windows" && m.Perm()&0o077 != 0
}

// shellQuote quotes a path for a command line to copy, when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+,:@%=") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
