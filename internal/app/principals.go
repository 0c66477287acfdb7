package app

import (
	"fmt"
	"log/slog"
	"slices"

	"git.sr.ht/~zozs/srht-registry/internal/authn"
	"git.sr.ht/~zozs/srht-registry/internal/config"
	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

// configWarnings are the config's warnings (config.Warnings) and those that
// need the htpasswd file: a principal htpasswd:x with no line for x, and a
// Sourcehut user allowed to log in under the name of a local account.
func configWarnings(cfg config.Config, htpasswd *authn.Htpasswd) []string {
	w := cfg.Warnings()
	if htpasswd == nil {
		return w
	}
	for _, r := range cfg.Principals() {
		provider, name, _ := identity.SplitPrincipal(r.Principal)
		if provider == identity.ProviderHtpasswd && !htpasswd.HasUser(name) {
			w = append(w, fmt.Sprintf("%s: %s matches nobody: %s has no user %q", r.Key, r.Principal, cfg.Authn.Htpasswd, name))
		}
	}
	sh := cfg.Authn.Sourcehut
	if !sh.IsEnabled() || sh.AllUsers() {
		return w
	}
	for i, u := range sh.Users {
		if htpasswd.HasUser(u) {
			w = append(w, fmt.Sprintf("authn.sourcehut.users[%d]: %q is also an htpasswd user; sourcehut:%s and htpasswd:%s are different people, "+
				"and the Sourcehut account owns no %s/* (the local account holds the name)", i, u, u, u, u))
		}
	}
	return w
}

// logSourcehutUsers says who may log in with Sourcehut, and how to change
// it: the default lets nobody in, so a new operator must be told why a
// build token is refused.
func logSourcehutUsers(log *slog.Logger, sh config.Sourcehut) {
	switch {
	case len(sh.Users) == 0:
		log.Warn("Sourcehut login lets nobody in: list who may log in under authn.sourcehut.users (e.g. users: [alice]), " +
			`or users: ["*"] for every account of ` + sh.MetaURL + "; each may push to its own namespace")
	case sh.AllUsers():
		log.Info("every account of " + sh.MetaURL + " may log in with a Sourcehut token, and push to its own namespace (authn.sourcehut.users: [\"*\"])")
	default:
		log.Info("Sourcehut users who may log in", "users", slices.Clone(sh.Users))
	}
}
