package app

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"git.sr.ht/~zozs/srht-registry/internal/token"
)

// certValidity is long because the registry only uses the certificate to
// pin the key; rotating the key replaces it.
const certValidity = 10 * 365 * 24 * time.Hour

func runKeys(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("keys", stderr)
	out := fs.String("out", "", "`DIR` to write key.pem, cert.pem and jwks.json to (created if missing)")
	keyType := fs.String("type", "ec", "key `TYPE`: ec (ES256), rsa (RS256) or ed25519 (EdDSA)")
	configPath := fs.String("config", "", "config `FILE` whose service, issuer and listen address go into the printed registry config")
	realm := fs.String("realm", "", "token endpoint `URL` the registry sends clients to (default http://localhost:PORT/auth from listen)")
	force := fs.Bool("force", false, "overwrite existing files")
	if err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	if *out == "" {
		return usageError{errors.New("keys: --out DIR is required")}
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	signer, err := token.Generate(token.KeyType(*keyType))
	if err != nil {
		return usageError{err}
	}
	cert, err := token.SelfSign(signer, cfg.Issuer, certValidity, time.Now())
	if err != nil {
		return err
	}
	key, err := token.NewKey(signer, nil)
	if err != nil {
		return err
	}
	keyPEM, err := token.EncodePrivateKey(signer)
	if err != nil {
		return err
	}
	jwks, err := token.JWKS(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{"key.pem", keyPEM, 0o600},
		{"cert.pem", token.EncodeCertificate(cert), 0o644},
		{"jwks.json", append(jwks, '\n'), 0o644},
	}
	for _, f := range files {
		path := filepath.Join(*out, f.name)
		flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
		if !*force {
			flags |= os.O_EXCL
		}
		fh, err := os.OpenFile(path, flags, f.mode)
		if err != nil {
			if errors.Is(err, os.ErrExist) {
				return fmt.Errorf("%s exists; use --force to overwrite", path)
			}
			return err
		}
		_, werr := fh.Write(f.data)
		if cerr := fh.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return werr
		}
	}
	abs, err := filepath.Abs(*out)
	if err != nil {
		return err
	}
	if *realm == "" {
		_, port, _ := strings.Cut(cfg.Listen, ":")
		*realm = fmt.Sprintf("http://localhost:%s/auth", port)
	}
	fmt.Fprintf(stdout, `# Wrote %[1]s/key.pem (private, mode 0600), %[1]s/cert.pem and %[1]s/jwks.json.
# Key ID (kid): %[2]s, algorithm %[3]s.
#
# srht-registry config:
token:
  key: %[1]s/key.pem
  # certificate: %[1]s/cert.pem   # uncomment to send x5c (then rootcertbundle is what the registry checks)
#
# distribution v3 registry config (config.yml):
auth:
  token:
    realm: %[4]s
    service: %[5]s
    issuer: %[6]s
    jwks: %[1]s/jwks.json
    rootcertbundle: %[1]s/cert.pem
`, abs, key.ID(), key.Algorithm(), *realm, cfg.DefaultService(), cfg.Issuer)
	return nil
}

func runHashPassword(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("hash-password", stderr)
	cost := fs.Int("cost", bcrypt.DefaultCost, "bcrypt `COST` (10 is what htpasswd -B uses)")
	if err := parseFlags(fs, args, 1); err != nil {
		return err
	}
	user := fs.Arg(0)
	if user == "" || strings.ContainsAny(user, ":\n") {
		return usageError{errors.New("hash-password: give a user name (without ':') as the argument; the password is read from stdin")}
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read password: %w", err)
	}
	password := strings.TrimRight(line, "\r\n")
	if password == "" {
		return usageError{errors.New("hash-password: empty password on stdin")}
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), *cost)
	if err != nil {
		// bcrypt's errors name lengths and costs, never the password.
		return usageError{fmt.Errorf("hash-password: %w", err)}
	}
	fmt.Fprintf(stdout, "%s:%s\n", user, hash)
	return nil
}
