package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/app"
)

const (
	systemdUnit = examples + "systemd/srht-registry.service"
	// Where the unit and docs/operations.md install the binary and the config.
	installedBinary = "/usr/local/bin/srht-registry"
	installedConfig = "/etc/srht-registry/config.yaml"
)

// unit is a systemd unit file: section -> key -> values in order (a key
// may repeat, as SystemCallFilter= does).
type unit map[string]map[string][]string

// parseUnit reads the subset of the unit file syntax the example uses:
// sections, Key=Value lines and comments. A line it does not understand
// (a continuation, a stray word) fails the test rather than being skipped.
func parseUnit(t *testing.T, data []byte) unit {
	t.Helper()
	u := unit{}
	var section string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "", strings.HasPrefix(line, "#"), strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		case strings.HasSuffix(line, `\`):
			t.Fatalf("%s:%d: line continuations are not understood by this test", systemdUnit, n)
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not a Key=Value line in a section: %q", systemdUnit, n, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

// one is the single value of section.key.
func (u unit) one(t *testing.T, section, key string) string {
	t.Helper()
	v := u[section][key]
	if len(v) != 1 {
		t.Fatalf("%s: [%s] %s= is set %d times, want once", systemdUnit, section, key, len(v))
	}
	return v[0]
}

// TestSystemdUnit holds the unit to the server and its example config:
// the command lines, the reload signal, the stop timeout against
// limits.shutdown_timeout, the exit status that means "do not restart",
// and the hardening settings docs/operations.md promises. .ci/deploy runs
// systemd-analyze verify and security on it.
func TestSystemdUnit(t *testing.T) {
	u := parseUnit(t, readFile(t, systemdUnit))
	cfg := parseConfig(t, systemdConfig, readFile(t, systemdConfig))

	if got := strings.Fields(u.one(t, "Service", "ExecStart")); !slices.Equal(got, []string{installedBinary, "serve", "--config", installedConfig}) {
		t.Errorf("ExecStart=%q", got)
	}
	if got := strings.Fields(u.one(t, "Service", "ExecStartPre")); !slices.Equal(got, []string{installedBinary, "check-config", "--config", installedConfig}) {
		t.Errorf("ExecStartPre=%q: want check-config on the config serve uses", got)
	}
	if got := u.one(t, "Service", "ExecReload"); got != "/bin/kill -HUP $MAINPID" {
		t.Errorf("ExecReload=%q: the server reloads on SIGHUP", got)
	}
	if typ := u.one(t, "Service", "Type"); typ != "exec" && typ != "simple" {
		t.Errorf("Type=%s: the server neither forks nor notifies", typ)
	}
	if user := u.one(t, "Service", "User"); user == "" || user == "root" || user == "0" {
		t.Errorf("User=%q: run as an unprivileged user", user)
	}
	// ConfigurationDirectory= is relative to /etc; the config is in it.
	if dir := u.one(t, "Service", "ConfigurationDirectory"); filepath.Dir(installedConfig) != "/etc/"+dir {
		t.Errorf("ConfigurationDirectory=%s does not hold %s", dir, installedConfig)
	}
	// Every file the example config names is under that directory.
	for key, files := range namedFiles(t, readFile(t, systemdConfig)) {
		for _, f := range files {
			if !strings.HasPrefix(f, filepath.Dir(installedConfig)+"/") {
				t.Errorf("%s %s is outside %s", key, f, filepath.Dir(installedConfig))
			}
		}
	}

	t.Run("stop timeout", func(t *testing.T) {
		stop, err := time.ParseDuration(u.one(t, "Service", "TimeoutStopSec"))
		if err != nil {
			t.Fatalf("TimeoutStopSec= is not a duration this test reads (write it like 20s): %v", err)
		}
		if stop <= cfg.Limits.ShutdownTimeout.D() {
			t.Errorf("TimeoutStopSec=%v must exceed limits.shutdown_timeout %v, or SIGKILL cuts the graceful shutdown short", stop, cfg.Limits.ShutdownTimeout)
		}
	})

	t.Run("no restart on an invalid config", func(t *testing.T) {
		// check-config (and serve) exit with this status on an invalid
		// config; restarting cannot help then.
		want, err := strconv.Atoi(u.one(t, "Service", "RestartPreventExitStatus"))
		if err != nil {
			t.Fatal(err)
		}
		f := makeFiles(t)
		bad := editConfig(t, readFile(t, systemdConfig), setting("listen", "no-port"))
		code, out := checkConfig(t, systemdConfig, bad, f)
		if code != want {
			t.Errorf("an invalid config exits %d, RestartPreventExitStatus=%d:\n%s", code, want, out)
		}
		var stderr bytes.Buffer
		if code := app.Run(context.Background(), []string{"serve", "--config", filepath.Join(f.dir, "missing.yaml")}, nil, io.Discard, &stderr); code != want {
			t.Errorf("serve with a missing config exits %d, RestartPreventExitStatus=%d: %s", code, want, stderr.String())
		}
	})

	t.Run("unprivileged port", func(t *testing.T) {
		// CapabilityBoundingSet= is empty: no binding below 1024.
		if v := u.one(t, "Service", "CapabilityBoundingSet"); v != "" {
			t.Errorf("CapabilityBoundingSet=%s, want empty", v)
		}
		for _, addr := range []string{cfg.Listen, cfg.Metrics.Listen} {
			if p := port(t, addr); p < 1024 {
				t.Errorf("%s needs CAP_NET_BIND_SERVICE, which the unit does not grant", addr)
			}
		}
	})

	t.Run("hardening", func(t *testing.T) {
		want := map[string]string{
			"NoNewPrivileges":          "yes",
			"ProtectSystem":            "strict",
			"ProtectHome":              "yes",
			"PrivateTmp":               "yes",
			"PrivateDevices":           "yes",
			"PrivateUsers":             "yes",
			"ProtectKernelTunables":    "yes",
			"ProtectKernelModules":     "yes",
			"ProtectKernelLogs":        "yes",
			"ProtectControlGroups":     "yes",
			"ProtectClock":             "yes",
			"ProtectHostname":          "yes",
			"RestrictAddressFamilies":  "AF_INET AF_INET6 AF_UNIX",
			"RestrictNamespaces":       "yes",
			"LockPersonality":          "yes",
			"MemoryDenyWriteExecute":   "yes",
			"RestrictRealtime":         "yes",
			"RestrictSUIDSGID":         "yes",
			"SystemCallArchitectures":  "native",
			"UMask":                    "0077",
			"AmbientCapabilities":      "",
			"CapabilityBoundingSet":    "",
			"SystemCallErrorNumber":    "EPERM",
			"RestartPreventExitStatus": "2",
		}
		for k, v := range want {
			if got, ok := u["Service"][k]; !ok || got[len(got)-1] != v {
				t.Errorf("%s=%q, want %q", k, got, v)
			}
		}
		if got := u["Service"]["SystemCallFilter"]; !slices.Equal(got, []string{"@system-service", "~@privileged @resources"}) {
			t.Errorf("SystemCallFilter=%q", got)
		}
		if _, ok := u["Service"]["DynamicUser"]; ok {
			t.Error("DynamicUser= is set: the comment in the unit explains why it is not")
		}
	})
}
