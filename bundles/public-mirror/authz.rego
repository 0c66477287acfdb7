# public-mirror: a public, read-only mirror that only CI jobs fill.
#
# Repositories matching a pattern in data.registry.mirror (say mirror/**)
# form the mirror:
#
#   anyone, anonymous included   pull
#   a CI identity (below)        push, if data.registry.mirror_pushers allows
#                                its user name
#   group admins                 delete (to clean up); admins do not push
#   anyone else                  nothing more: no one owns mirror/* as a
#                                namespace, not even a user named "mirror"
#
# A CI identity is a Sourcehut token that is read-write for this registry but
# was not given all access: method "sourcehut" (or "refresh" from a
# "sourcehut" login: the job's refresh token), identity.sourcehut.access
# "RW", identity.sourcehut.all_grants false. A builds.sr.ht job asking for
# `oauth: registry.example.com/REGISTRY:RW` gets exactly such a token. A
# personal access token with every grant (all_grants true) is not CI, nor is a
# password user. Caveat: a personal token generated with a limited grant list
# looks the same as a build token to this server; list the accounts whose
# jobs mirror in mirror_pushers (ideally a dedicated account) to be strict.
#
# Everywhere else the default rules hold: an authenticated user u may pull,
# push and delete u/*; group admins may do anything, and list the catalog; a
# Sourcehut token that is read-only for this registry gets at most pull.
#
# Data (data.json, under data.registry; every key optional):
#
#   mirror:         ["mirror/**"]    glob patterns of the mirror ("*" stays in
#                                    one path segment, "**" spans any depth);
#                                    default none: no mirror
#   mirror_pushers: ["mirror-bot"]   Sourcehut user names whose CI tokens may
#                                    push to the mirror; "*" means any CI
#                                    token; default ["*"]; [] means nobody
#
# Groups come from the server (input.identity.groups, `groups:` in its config).
# Do not name a data key "authz": this package lives at data.registry.authz.
# Input: see policy/README.md and policy/input.schema.json.
package registry.authz

# ---------------------------------------------------------------------------
# Data, with defaults. data.registry is read one key at a time: it also
# holds this package, so reading it whole from here would be recursive.

default mirror := []

mirror := data.registry.mirror

default mirror_pushers := ["*"]

mirror_pushers := data.registry.mirror_pushers

# ---------------------------------------------------------------------------
# Who is asking.

authenticated if {
	input.identity.method != "anonymous"
	is_string(input.identity.subject)
	input.identity.subject != ""
}

# The method that vouched for the subject: for a refresh token (method
# "refresh"), the method of the login it was issued at. Rules about how
# someone logged in use this, so a refresh token cannot escape them.
effective_method := input.identity.refreshed_from if {
	input.identity.method == "refresh"
} else := input.identity.method

admin if {
	authenticated
	"admins" in input.identity.groups
}

# A CI identity: a Sourcehut token, read-write here, with a limited grant list.
ci if {
	authenticated
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
	input.identity.subject in mirror_pushers
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
	authenticated
	not in_mirror
	in_namespace(input.identity.subject, repository)
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
	effective_method == "sourcehut"
	not input.identity.sourcehut.access == "RW"
}

# Fail closed: a refresh identity that does not say it came from a password
# or Sourcehut login is capped too (the server never sends one).
read_only if {
	input.identity.method == "refresh"
	not refreshed_from_login
}

refreshed_from_login if input.identity.refreshed_from in {"password", "sourcehut"}

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

deny contains "unsupported input version" if not input.version == 1
