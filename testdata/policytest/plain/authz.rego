package registry.authz

allow contains "pull" if input.identity.subject == "alice"
