# public-mirror: a public, read-only mirror that only CI jobs fill.
#
# Input version 2 (policy/README.md, policy/input.schema.json); any other
# version is denied ("unsupported input version"). A principal is the pair
# (provider, subject), written "provider:subject": htpasswd:alice and
# sourcehut:alice are different people, and nothing here compares a subject
# without its provider. An identity is authenticated when a method other
# than anonymous vouched for a non-empty subject of a named provider.
# identity.namespace is the personal namespace the server's account model
# gives the identity (an htpasswd user's name; a Sourcehut user's name
# unless an htpasswd user has it); absent when it owns none. A refresh
# token keeps the provider and namespace of its login.
# OIDC identities (method "oidc": CI jobs' and Kubernetes service accounts'
# ID tokens, and their refresh tokens) own no namespace and are never CI
# identities here; this bundle has no claim rules, so they get only the
# mirror's pulls (and admins' rights, should the server's groups: put their
# principal in admins). For claim rules see the default policy's oidc data,
# or the github-actions, gitlab-ci and kubernetes bundles.
#
# Repositories matching a pattern in data.registry.mirror (say mirror/**)
# form the mirror:
#
#   anyone, anonymous included   pull
#   a CI identity (below)        push, if data.registry.mirror_pushers lists
#                                its principal ("sourcehut:mirror-bot") or "*"
#   group admins                 delete (to clean up); admins do not push
#   anyone else                  nothing more: no one owns the mirror as a
#                                namespace (below)
#
# A CI identity is a Sourcehut token that is read-write for this registry but
# was not given all access: provider "sourcehut" and method "sourcehut" (or
# "refresh" from a "sourcehut" login: the job's refresh token, which keeps
# its provider), identity.sourcehut.access "RW", identity.sourcehut.all_grants
# false. A builds.sr.ht job asking for
# `oauth: registry.example.com/REGISTRY:RW` gets exactly such a token. A
# personal access token with every grant (all_grants true) is not CI, nor is
# a password user. Caveat: a personal token generated with a limited grant
# list looks the same as a build token to this server; list the accounts
# whose jobs mirror in mirror_pushers (ideally a dedicated account) to be
# strict.
#
# Everywhere else the default rules for owners and admins hold: an
# identity with identity.namespace ns may pull, push and delete ns/*; group
# admins may do anything, and list the catalog; a Sourcehut token that is
# read-only for this registry gets at most pull.
#
# Site configuration beats ownership: a name that is the namespace of a
# mirror pattern "<ns>/*" or "<ns>/**" (a plain <ns>, no glob characters),
# or is in reserved, is nobody's personal namespace, whatever
# identity.namespace says: a Sourcehut account named "mirror" owns nothing
# on mirror/*, not even below what the mirror patterns reach. Repositories
# in the mirror are governed by the mirror rules alone.
#
# Data (data.json, under data.registry; every key optional; data.schema.json
# describes it, and the server refuses to load data that does not match it):
#
#   mirror:         ["mirror/**"]    glob patterns of the mirror ("*" stays in
#                                    one path segment, "**" spans any depth);
#                                    default none: no mirror
#   mirror_pushers: ["sourcehut:mirror-bot"]
#                                    principals whose CI tokens may push to the
#                                    mirror; "*" means any CI token; a bare
#                                    name ("mirror-bot") matches nobody;
#                                    default ["*"]; [] means nobody
#   reserved:       ["admin"]        names nobody owns as a personal namespace
#
# Groups come from the server (input.identity.groups, `groups:` in its config,
# whose members are principals too).
# Do not name a data key "authz": this package lives at data.registry.authz.
package registry.authz

# ---------------------------------------------------------------------------
# Data, with defaults. data.registry is read one key at a time: it also
# holds this package, so reading it whole from here would be recursive.

default mirror := []

mirror := data.registry.mirror

default mirror_pushers := ["*"]

mirror_pushers := data.registry.mirror_pushers

default reserved := []

reserved := data.registry.reserved

# ---------------------------------------------------------------------------
# Who is asking.

# Authenticated: a method other than anonymous vouched for a non-empty
# subject of a named provider. Anything missing or malformed counts as
# anonymous.
authenticated if {
	input.identity.method != "anonymous"
	is_string(input.identity.provider)
	input.identity.provider != ""
	is_string(input.identity.subject)
	input.identity.subject != ""
}

# The caller as the site names it: "htpasswd:alice", "sourcehut:alice".
principal := concat(":", [input.identity.provider, input.identity.subject]) if {
	authenticated

	# "group" is never a provider's name: should an identity claim it,
	# its principal must not pass for a group member ("group:ci").
	input.identity.provider != "group"
}

# The method that vouched for the subject: for a refresh token (method
# "refresh"), the method of the login it was issued at. Rules about how
# someone logged in use this, so a refresh token cannot escape them.
effective_method := input.identity.refreshed_from if {
	input.identity.method == "refresh"
} else := input.identity.method

# An OIDC identity: a CI job's or a Kubernetes service account's ID token,
# or a refresh token of such a login. Anyone the issuer vouches for has one
# (every workflow of every repository, for a public CI), so it gets nothing
# here that accounts get: no personal namespace, no "*". Only what names its
# principal (or a group the site puts it in) applies to it.
oidc_identity if effective_method == "oidc"

oidc_identity if is_object(input.identity.oidc)

admin if {
	authenticated
	"admins" in input.identity.groups
}

# A CI identity: a Sourcehut token, read-write here, with a limited grant
# list. Both the provider and the login method must say Sourcehut.
ci if {
	authenticated
	input.identity.provider == "sourcehut"
	effective_method == "sourcehut"
	input.identity.sourcehut.access == "RW"
	input.identity.sourcehut.all_grants == false
}

mirror_pusher if {
	ci
	"*" in mirror_pushers
}

mirror_pusher if {
	ci
	principal in mirror_pushers
}

# ---------------------------------------------------------------------------
# What is asked about.

# The repository name; undefined for other resource types.
repository := input.scope.name if input.scope.type == "repository"

in_mirror if {
	some pattern in mirror
	glob.match(pattern, ["/"], repository)
}

in_namespace(ns, name) if {
	startswith(name, concat("", [ns, "/"]))
	count(name) > count(ns) + 1
}

# site_namespace(name): the site configured name for itself, so no
# identity owns it: a reserved name, or the namespace a mirror pattern
# covers whole ("mirror" for "mirror/*" or "mirror/**").
site_namespace(name) if name in reserved

site_namespace(name) if {
	some pattern in mirror
	pattern_namespace(pattern) == name
}

# pattern_namespace(pattern): ns for a pattern "ns/*" or "ns/**" whose ns
# is a plain name. Other patterns ("alice/app", "*/mirror", "**") name no
# namespace of the site's.
pattern_namespace(pattern) := parts[0] if {
	parts := split(pattern, "/")
	count(parts) == 2
	parts[1] in {"*", "**"}
	not regex.match(`[*?\[\]{}\\]`, parts[0])
}

# The caller's personal namespace: the one the server says it owns, unless
# the site took that name.
own_namespace := ns if {
	authenticated
	not oidc_identity
	ns := input.identity.namespace
	is_string(ns)
	ns != ""
	not site_namespace(ns)
}

# ---------------------------------------------------------------------------
# granted: what the rules grant before the read-only cap.

# The mirror: pull for all, push for CI, delete for admins; nothing else.
granted contains "pull" if in_mirror

granted contains "push" if {
	in_mirror
	mirror_pusher
}

granted contains "delete" if {
	in_mirror
	admin
}

# Outside the mirror: own namespace and admins, as in the default policy.
granted contains action if {
	not in_mirror
	in_namespace(own_namespace, repository)
	some action in ["pull", "push", "delete"]
}

granted contains "*" if {
	admin
	not in_mirror
	input.scope.type == "repository"
}

granted contains "*" if {
	admin
	input.scope.type == "registry"
	input.scope.name == "catalog"
}

# ---------------------------------------------------------------------------
# The Sourcehut read-only cap: a token that is only RO for this registry
# must not push or delete. (CI identities are RW by definition.)

read_only if {
	input.identity.provider == "sourcehut"
	not input.identity.sourcehut.access == "RW"
}

# The same by how the caller logged in, should an identity ever say
# sourcehut there without naming the provider.
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
