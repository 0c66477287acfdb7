package app

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"git.sr.ht/~zozs/srht-registry/internal/config"
)

// What a reload can change. A reload applies every setting that changed or,
// when one of them needs a restart, none: the error names those, so that
// "reloaded" in the log always means the running server now does what the
// file says.

// reloadable are the settings a running server takes on at a reload (a key
// and everything under it).
var reloadable = []string{
	"groups",
	"policy.data", "policy.bundles", "policy.query", "policy.timeout",
	"policy.capabilities", // for a local policy; with policy.opa it needs a restart
	"authn.anonymous",
	"authn.htpasswd", // changed or removed; added needs a restart (see reloadRefusals)
	"authn.sourcehut.users",
	"authn.sourcehut.enabled", // turned off; turned on needs a restart
	"token.key", "token.certificate", "token.published_keys", "token.kid_format",
	"token.refresh.enabled", // turned off; turned on needs a restart
	"log.level", "log.decisions",
}

// opaque are the settings compared whole: free-form maps and lists whose
// inner keys are not settings.
var opaque = []string{"groups", "policy.data", "policy.opa", "service", "trusted_proxies", "policy.bundles", "token.published_keys", "authn.sourcehut.users"}

// configChanges lists the settings (YAML key paths) whose values differ
// between two configs, in a stable order.
func configChanges(old, next config.Config) ([]string, error) {
	a, err := asTree(old)
	if err != nil {
		return nil, err
	}
	b, err := asTree(next)
	if err != nil {
		return nil, err
	}
	var changed []string
	diffTrees("", a, b, &changed)
	slices.Sort(changed)
	return changed, nil
}

// asTree is the config as the generic tree its YAML form decodes to.
func asTree(c config.Config) (map[string]any, error) {
	data, err := yaml.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("compare configs: %w", err)
	}
	var tree map[string]any
	if err := yaml.Unmarshal(data, &tree); err != nil {
		return nil, fmt.Errorf("compare configs: %w", err)
	}
	return tree, nil
}

func diffTrees(path string, a, b any, changed *[]string) {
	am, aMap := a.(map[string]any)
	bm, bMap := b.(map[string]any)
	if !aMap || !bMap || slices.Contains(opaque, path) {
		if !reflect.DeepEqual(a, b) {
			*changed = append(*changed, path)
		}
		return
	}
	keys := map[string]bool{}
	for k := range am {
		keys[k] = true
	}
	for k := range bm {
		keys[k] = true
	}
	for k := range keys {
		p := k
		if path != "" {
			p = path + "." + k
		}
		diffTrees(p, am[k], bm[k], changed)
	}
}

// reloadRefusals are the changed settings a running server cannot take on,
// each with why, or nothing when the reload can apply them all.
func reloadRefusals(old config.Config, changed []string) []string {
	var refused []string
	for _, key := range changed {
		if why := refusal(old, key); why != "" {
			refused = append(refused, key+" ("+why+")")
		}
	}
	return refused
}

func refusal(old config.Config, key string) string {
	covered := slices.ContainsFunc(reloadable, func(r string) bool { return key == r || strings.HasPrefix(key, r+".") })
	switch {
	case !covered:
		return "needs a restart"
	case key == "authn.htpasswd" && old.Authn.Htpasswd == "":
		return "turning password login on needs a restart"
	case key == "authn.sourcehut.enabled" && !old.Authn.Sourcehut.IsEnabled():
		return "turning Sourcehut login on needs a restart"
	case strings.HasPrefix(key, "policy.capabilities") && len(old.Policy.OPA) > 0:
		return "the built-ins of policy.opa's bundles are set at start"
	case key == "token.refresh.enabled" && !old.Token.Refresh.IsEnabled():
		return "turning refresh tokens on needs a restart"
	}
	return ""
}
