package app

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/authn"
	"git.sr.ht/~zozs/srht-registry/internal/authn/ldap"
	"git.sr.ht/~zozs/srht-registry/internal/config"
	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

// maxSecretFileBytes bounds a password file.
const maxSecretFileBytes = 4096

// buildLDAP makes the authenticator of each directory of authn.ldap. None
// is asked anything here: a directory that is down does not keep the
// server from starting (its users get 503 until it answers).
func buildLDAP(cfg config.Config, log *slog.Logger) ([]*ldap.Authenticator, error) {
	var dirs []*ldap.Authenticator
	for i, l := range cfg.Authn.LDAP {
		key := fmt.Sprintf("authn.ldap[%d]", i)
		o := ldap.Options{
			Name: l.Name, URLs: l.URLs, StartTLS: l.StartTLS, BindDN: l.BindDN,
			UserBase: l.UserBase, UserFilter: l.UserFilter, SubjectAttribute: l.SubjectAttribute,
			GroupBase: l.GroupBase, GroupFilter: l.GroupFilter, GroupAttribute: l.GroupAttribute,
			Timeout: l.Timeout.D(), PoolSize: l.PoolSize, CacheTTL: l.CacheDuration(), CacheSize: l.CacheSize,
			Now: time.Now, Logger: log.With("provider", l.Name),
		}
		if l.BindPasswordFile != "" {
			pw, err := readSecretFile(key+".bind_password_file", l.BindPasswordFile)
			if err != nil {
				return nil, invalid(err)
			}
			o.BindPassword = pw
		}
		if l.CAFile != "" {
			pem, err := os.ReadFile(l.CAFile)
			if err != nil {
				return nil, invalid(fmt.Errorf("%s.ca_file: %w", key, err))
			}
			roots := x509.NewCertPool()
			if !roots.AppendCertsFromPEM(pem) {
				return nil, invalid(fmt.Errorf("%s.ca_file %s: no PEM certificate in it", key, l.CAFile))
			}
			o.TLS = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
		}
		a, err := ldap.New(o)
		if err != nil {
			return nil, invalid(fmt.Errorf("%s: %w", key, err))
		}
		dirs = append(dirs, a)
		log.Info("directory logins accepted", "provider", l.Name, "urls", l.URLs, "start_tls", l.StartTLS,
			"user_base", l.UserBase, "user_filter", l.UserFilter, "subject_attribute", l.SubjectAttribute,
			"groups", groupSource(l), "cache_ttl", l.CacheDuration())
	}
	return dirs, nil
}

func groupSource(l config.LDAP) string {
	if l.GroupFilter == "" {
		return "memberOf (" + l.GroupAttribute + " of each group DN)"
	}
	return l.GroupFilter + " under " + l.GroupBase
}

// readSecretFile reads a password from a file that its group and others
// may not access, without its trailing newline. Its content is never in an
// error or a log line.
func readSecretFile(field, path string) (identity.Secret, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", field, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("%s: %w", field, err)
	}
	if st.IsDir() {
		return "", fmt.Errorf("%s %s: is a directory", field, path)
	}
	if looseMode(st.Mode()) {
		return "", fmt.Errorf("%s %s: refusing a password file that group or others may access (mode %04o); make it readable by its owner only: chmod 600 %s",
			field, path, uint32(st.Mode().Perm()), shellQuote(path))
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFileBytes+1))
	if err != nil {
		return "", fmt.Errorf("%s: %w", field, err)
	}
	if len(data) > maxSecretFileBytes {
		return "", fmt.Errorf("%s %s: larger than %d bytes, not a password", field, path, maxSecretFileBytes)
	}
	data = bytes.TrimRight(data, "\r\n")
	if len(data) == 0 {
		return "", fmt.Errorf("%s %s: is empty", field, path)
	}
	return identity.Secret(data), nil
}

// directoryChecks are what the chain and the refresh tokens hold of the
// directories.
func directoryChecks(dirs []*ldap.Authenticator) ([]authn.Directory, map[string]refreshDirectory) {
	var chain []authn.Directory
	byName := map[string]refreshDirectory{}
	for _, d := range dirs {
		chain = append(chain, d)
		byName[d.Name()] = d
	}
	return chain, byName
}

// refreshDirectory is refresh.Directory.
type refreshDirectory interface {
	Lookup(ctx context.Context, user string) (identity.Identity, error)
}

// sharedNames lists, for check-config, the htpasswd users that a
// directory also has: the htpasswd line answers for them (docs/ldap.md),
// and the directory's user of that name cannot log in here.
func sharedNames(ctx context.Context, htpasswd []string, dirs []*ldap.Authenticator, timeout time.Duration) (shared []string, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for _, d := range dirs {
		for _, user := range htpasswd {
			if ctx.Err() != nil {
				return shared, fmt.Errorf("directory %s: gave up after %v: %w", d.Name(), timeout, ctx.Err())
			}
			known, err := d.Knows(ctx, user)
			if err != nil {
				return shared, fmt.Errorf("directory %s: %w", d.Name(), err)
			}
			if known {
				shared = append(shared, fmt.Sprintf("%q is an htpasswd user and a user of directory %s: the htpasswd line answers for the name, so %s's %s cannot log in here",
					user, d.Name(), d.Name(), user))
			}
		}
	}
	return shared, nil
}

// sharedNamesTimeout bounds check-config's questions to the directories.
const sharedNamesTimeout = 10 * time.Second

// checkLDAP is check-config's part for authn.ldap: each directory built as
// serve builds it, summarised, and asked whether it has a user named like
// an htpasswd user (returned as warnings; a directory that cannot be asked
// is a warning too, as serve starts without it).
func checkLDAP(ctx context.Context, cfg config.Config, htpasswd *authn.Htpasswd, s *configSummary, problems *[]error) []string {
	dirs, err := buildLDAP(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		*problems = append(*problems, err)
		return nil
	}
	defer func() {
		for _, d := range dirs {
			d.Close()
		}
	}()
	for _, l := range cfg.Authn.LDAP {
		s.add("LDAP "+l.Name, "%s; users %s under %s, subject %s; groups from %s", strings.Join(l.URLs, " then "),
			l.UserFilter, l.UserBase, l.SubjectAttribute, groupSource(l))
	}
	if htpasswd == nil || htpasswd.Len() == 0 {
		return nil
	}
	shared, err := sharedNames(ctx, htpasswd.Users(), dirs, sharedNamesTimeout)
	if err != nil {
		shared = append(shared, "could not ask whether the htpasswd users are also directory users: "+err.Error())
	}
	return shared
}
