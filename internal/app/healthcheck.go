package app

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/config"
)

// runHealthcheck asks a running server's /readyz, so a container runtime can
// probe an image that has no shell and no HTTP client: `srht-registry
// healthcheck --config FILE` as a compose or Docker HEALTHCHECK command.
func runHealthcheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("healthcheck", stderr)
	configPath := fs.String("config", "", "config `FILE` of the server; its listen address (and TLS) say where to ask")
	rawURL := fs.String("url", "", "`URL` to ask instead, e.g. http://127.0.0.1:5001/readyz")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this long")
	if err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	target := *rawURL
	if target == "" {
		cfg, err := loadConfig(*configPath)
		if err != nil {
			return err
		}
		target = readyURL(cfg)
	} else if u, err := url.Parse(target); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usageError{fmt.Errorf("healthcheck: --url %q is not an http(s) URL", target)}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{
		// The probe asks this host's own server whether it is ready; the
		// certificate names the public host, not the address asked.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		Proxy:           nil,
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("not healthy: %w", err)
	}
	defer resp.Body.Close()
	var status struct{ Status, Reason string }
	_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&status)
	if resp.StatusCode != http.StatusOK {
		if status.Reason != "" {
			return fmt.Errorf("not ready: %s: %s", resp.Status, status.Reason)
		}
		return errors.New("not ready: " + resp.Status)
	}
	fmt.Fprintln(stdout, "ready")
	return nil
}

// readyURL is where the server of cfg answers /readyz from this host: its
// listen address, with an unspecified host (all interfaces) asked on
// loopback.
func readyURL(cfg config.Config) string {
	host, port, _ := net.SplitHostPort(cfg.Listen)
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	scheme := "http"
	if cfg.TLS.Certificate != "" {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port) + "/readyz"
}
