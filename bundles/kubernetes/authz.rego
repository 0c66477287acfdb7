# kubernetes: pods pull with their service account's token, with no image
# pull secret.
#
# A pod mounts a projected service-account token with this registry's
# audience and logs in with it (a credential helper, or
# `docker login -u oidc -p "$(cat /var/run/secrets/registry/token)"`); the
# server verifies it against the cluster's service-account issuer (an
# authn.oidc entry per cluster) and hands this policy an OIDC identity:
# method "oidc" (or "refresh" from an "oidc" login), the cluster's
# provider name, subject "system:serviceaccount:<namespace>:<name>", and
# identity.oidc.claims with the claim "kubernetes.io":
#
#   {"namespace": "ci", "serviceaccount": {"name": "builder", "uid": "…"},
#    "pod": {"name": "…", "uid": "…"}}
#
# Input version 2 (policy/README.md, policy/input.schema.json); any other
# version is denied ("unsupported input version"). A principal is the pair
# (provider, subject), written "provider:subject"; an identity is
# authenticated when a method other than anonymous vouched for a non-empty
# subject of a named provider. A refresh token keeps the provider, and the
# claims, of its login.
#
# What it grants:
#
#   a service account of a        pull on the repositories that namespace's
#   namespace listed for its      entry lists, if the entry lists the
#   cluster in clusters           account (or lists none: all of them)
#   an account identity with      pull, push, delete on ns/*, unless ns is in
#   namespace ns (htpasswd,       reserved
#   Sourcehut)
#   "admins" in identity.groups   everything on every repository, and the
#                                 catalog (registry:catalog:*)
#   a Sourcehut token that is     at most pull, wherever the rules above grant
#   read-only for this registry   more; so do its refresh tokens
#   anything else                 nothing: other namespaces and clusters,
#                                 pushes from any pod
#
# Data (data.json, under data.registry; every key optional; data.schema.json
# describes it, and the server refuses to load data that does not match it):
#
#   clusters: {"prod": {"shop": {"repositories": ["shop/**", "base/*"]},
#                       "ci":   {"service_accounts": ["builder"], "repositories": ["base/*", "ci/**"]}}}
#             provider (the cluster's authn.oidc entry) -> Kubernetes
#             namespace -> what its service accounts may pull:
#               repositories      glob patterns ("*" stays in one path
#                                 segment, "**" spans any depth)
#               service_accounts  the accounts (names) it is for; absent:
#                                 every account of the namespace
#             default none, so no pod pulls anything
#   reserved: ["admin"]  names no account owns as a personal namespace
#
# Do not name a data key "authz": this package lives at data.registry.authz.
package registry.authz

# ---------------------------------------------------------------------------
# Data, with defaults. data.registry is read one key at a time: it also
# holds this package, so reading it whole from here would be recursive.

default clusters := {}

clusters := data.registry.clusters

default reserved := []

reserved := data.registry.reserved

# ---------------------------------------------------------------------------
# Who is asking.

authenticated if {
	input.identity.method != "anonymous"
	is_string(input.identity.provider)
	input.identity.provider != ""
	is_string(input.identity.subject)
	input.identity.subject != ""
}

# The method that vouched for the subject: for a refresh token, the method
# of the login it was issued at, so a refresh token escapes no rule.
effective_method := input.identity.refreshed_from if {
	input.identity.method == "refresh"
} else := input.identity.method

# An OIDC identity (any provider's): owns no namespace here.
oidc_identity if effective_method == "oidc"

oidc_identity if is_object(input.identity.oidc)

admin if {
	authenticated
	"admins" in input.identity.groups
}

# The service account's namespace entry in clusters: for an OIDC login (or
# its refresh token) of a listed cluster, whose kubernetes.io claim names a
# listed namespace, and an account the entry allows.
entry := e if {
	authenticated
	effective_method == "oidc"
	namespaces := clusters[input.identity.provider]
	k8s := input.identity.oidc.claims["kubernetes.io"]
	is_string(k8s.namespace)
	e := namespaces[k8s.namespace]
	account_allowed(e, k8s.serviceaccount.name)
}

account_allowed(e, _) if not "service_accounts" in object.keys(e)

account_allowed(e, name) if {
	is_string(name)
	name in e.service_accounts
}

# ---------------------------------------------------------------------------
# What is asked about.

repository := input.scope.name if input.scope.type == "repository"

in_namespace(ns, name) if {
	startswith(name, concat("", [ns, "/"]))
	count(name) > count(ns) + 1
}

own_namespace := ns if {
	authenticated
	not oidc_identity
	ns := input.identity.namespace
	is_string(ns)
	ns != ""
	not ns in reserved
}

# ---------------------------------------------------------------------------
# granted: what the rules grant before the read-only cap.

granted contains "pull" if {
	some pattern in entry.repositories
	glob.match(pattern, ["/"], repository)
}

granted contains action if {
	in_namespace(own_namespace, repository)
	some action in ["pull", "push", "delete"]
}

granted contains "*" if {
	admin
	input.scope.type == "repository"
}

granted contains "*" if {
	admin
	input.scope.type == "registry"
	input.scope.name == "catalog"
}

# ---------------------------------------------------------------------------
# The Sourcehut read-only cap, as in the default policy.

read_only if {
	input.identity.provider == "sourcehut"
	not input.identity.sourcehut.access == "RW"
}

read_only if {
	effective_method == "sourcehut"
	not input.identity.sourcehut.access == "RW"
}

# Fail closed: a refresh identity that does not say it came from a password,
# Sourcehut or OIDC login is capped too (the server never sends one).
read_only if {
	input.identity.method == "refresh"
	not refreshed_from_login
}

refreshed_from_login if input.identity.refreshed_from in {"password", "sourcehut", "oidc"}

# ---------------------------------------------------------------------------
# The rules the server reads.

allow contains action if {
	not read_only
	some action in granted
}

allow contains "pull" if {
	read_only
	input.scope.type == "repository"
	some action in ["pull", "*"]
	action in granted
}

# Input version 2 only (version 1 had no providers).
deny contains "unsupported input version" if not input.version == 2
