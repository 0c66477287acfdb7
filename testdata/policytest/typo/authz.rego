package registry.authz

# "subjet" is a typo; only the schema catches it.
allow contains "pull" if input.identity.subjet == "alice"
