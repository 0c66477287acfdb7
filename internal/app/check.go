package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"

	"git.sr.ht/~zozs/srht-registry/internal/authn"
	"git.sr.ht/~zozs/srht-registry/internal/config"
)

// runCheckConfig loads the config and, independently of each other,
// everything it names (keys, htpasswd file, TLS pair, policy) as serve
// would, and reports every problem at once: exit 2 when any is found. A
// valid config gets a summary of what serve would run with, and the
// warnings serve would log.
func runCheckConfig(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check-config", stderr)
	configPath := fs.String("config", "", "config `FILE`")
	if err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	summary, problems := checkConfig(ctx, cfg)
	if len(problems) > 0 {
		name := *configPath
		if name == "" {
			name = "(built-in defaults)"
		}
		lines := make([]string, len(problems))
		for i, p := range problems {
			lines[i] = strings.ReplaceAll(p.Error(), "\n", "\n    ")
		}
		count := "1 problem"
		if len(problems) > 1 {
			count = fmt.Sprintf("%d problems", len(problems))
		}
		return usageError{fmt.Errorf("invalid config %s: %s:\n  %s", name, count, strings.Join(lines, "\n  "))}
	}
	for _, w := range summary.warnings {
		fmt.Fprintln(stderr, "warning: "+w)
	}
	summary.print(stdout)
	fmt.Fprintln(stdout, "config OK")
	return nil
}

// configSummary is what check-config says of a valid config.
type configSummary struct {
	lines    [][2]string
	warnings []string
}

func (s *configSummary) add(key, format string, args ...any) {
	s.lines = append(s.lines, [2]string{key, fmt.Sprintf(format, args...)})
}

func (s *configSummary) print(w io.Writer) {
	width := 0
	for _, l := range s.lines {
		width = max(width, len(l[0]))
	}
	for _, l := range s.lines {
		fmt.Fprintf(w, "%-*s  %s\n", width+1, l[0]+":", l[1])
	}
}

// checkConfig loads each part cfg names on its own, so that one broken
// part does not hide another, and returns every problem found.
func checkConfig(ctx context.Context, cfg config.Config) (configSummary, []error) {
	quiet := slog.New(slog.DiscardHandler)
	var s configSummary
	var problems []error
	certs, err := prepareTLS(cfg, quiet)
	if err != nil {
		problems = append(problems, err)
	}
	s.add("listen", "%s (%s)", cfg.Listen, certs.scheme())
	s.add("service", "%s", strings.Join(cfg.Service, ", "))
	s.add("issuer", "%s", cfg.Issuer)
	if _, err := parsePrefixes(cfg.TrustedProxies); err != nil {
		problems = append(problems, err)
	}

	keys, err := loadKey(cfg.Token, quiet)
	if err != nil {
		problems = append(problems, err)
	} else {
		set := keys.ring.Current()
		signing := set.Signing()
		what := "from " + cfg.Token.Key
		if keys.ephemeral != nil {
			what = "ephemeral: generated at every start (create one with srht-registry keys)"
		}
		s.add("signing key", "kid %s, %s, %s", signing.ID(), signing.Algorithm(), what)
		if published := set.KeyIDs()[1:]; len(published) > 0 {
			s.add("also published", "%s", strings.Join(published, ", "))
		}
	}

	var htpasswd *authn.Htpasswd
	if cfg.Authn.Htpasswd != "" {
		if htpasswd, err = authn.LoadHtpasswd(cfg.Authn.Htpasswd); err != nil {
			problems = append(problems, err)
		} else {
			s.add("password users", "%d in %s", htpasswd.Len(), cfg.Authn.Htpasswd)
		}
	} else {
		s.add("password users", "none (no authn.htpasswd)")
	}
	s.add("anonymous", "%s", onOff(cfg.Authn.AnonymousEnabled()))
	switch sh := cfg.Authn.Sourcehut; {
	case !sh.IsEnabled():
		s.add("Sourcehut login", "off")
	case sh.AllUsers():
		s.add("Sourcehut login", "every account of %s", sh.MetaURL)
	case len(sh.Users) == 0:
		s.add("Sourcehut login", "nobody (list them under authn.sourcehut.users)")
	default:
		s.add("Sourcehut login", "%s (%s)", strings.Join(sh.Users, ", "), sh.MetaURL)
	}
	if len(cfg.Authn.OIDC) > 0 {
		// Built as serve builds them (no issuer is asked anything yet).
		if set, err := buildOIDC(ctx, cfg, quiet); err != nil {
			problems = append(problems, err)
		} else {
			set.Close()
			for _, o := range cfg.Authn.OIDC {
				s.add("OIDC "+o.Name, "%s, audience %s, subject %s", o.Issuer, strings.Join(o.Audiences(cfg.Service), " or "), o.SubjectClaim)
			}
		}
	}
	if len(cfg.Authn.LDAP) > 0 {
		s.warnings = append(s.warnings, checkLDAP(ctx, cfg, htpasswd, &s, &problems)...)
	}
	if cfg.Token.Refresh.IsEnabled() {
		s.add("refresh tokens", "on, valid %s", cfg.Token.Refresh.TTL.D())
	} else {
		s.add("refresh tokens", "off")
	}

	var warn warnings
	if pol, err := buildPolicy(ctx, cfg, slog.New(&warn), true); err != nil {
		problems = append(problems, err)
	} else {
		if e := pol.az.Engine(); e != nil {
			s.add("policy", "revision %s", e.Revision())
		}
		pol.stop(ctx)
		warn.mu.Lock()
		s.warnings = append(s.warnings, warn.messages...)
		warn.mu.Unlock()
	}
	if htpasswd != nil || cfg.Authn.Htpasswd == "" {
		s.warnings = append(configWarnings(cfg, htpasswd), s.warnings...)
	}
	return s, dedupe(problems)
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// dedupe drops errors whose text an earlier one has.
func dedupe(errs []error) []error {
	var out []error
	seen := map[string]bool{}
	for _, err := range errs {
		if err == nil || seen[err.Error()] {
			continue
		}
		seen[err.Error()] = true
		out = append(out, err)
	}
	return out
}

// warnings is a log handler that keeps the messages of warnings, for
// check-config to print what serve would log.
type warnings struct {
	mu       sync.Mutex // policy.opa's plugins log from their own goroutines
	messages []string
}

func (w *warnings) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (w *warnings) Handle(_ context.Context, r slog.Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.messages = append(w.messages, r.Message)
	return nil
}
func (w *warnings) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnings) WithGroup(string) slog.Handler      { return w }
