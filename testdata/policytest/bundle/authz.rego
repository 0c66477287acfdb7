package registry.authz

allow contains "*" if input.identity.subject in data.registry.admins
