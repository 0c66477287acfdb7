# The default authorization policy of srht-registry.
#
# The server evaluates this package once per requested scope, with an input
# document like
#
#   {"version": 1,
#    "identity": {"method": "password", "subject": "alice", "groups": ["ci"]},
#    "request": {"service": "registry.example.com", ...},
#    "scope": {"type": "repository", "name": "alice/app", "actions": ["pull", "push"]}}
#
# (Sourcehut identities also carry identity.sourcehut with the token's grants;
# an identity that a refresh token stands for has method "refresh" and the
# method of its original login in identity.refreshed_from), and reads two
# rules from it:
#
#   allow - the set of actions granted on input.scope ("*" means every action)
#   deny  - a set of messages; if it is non-empty nothing is granted
#
# Site settings come from data.registry, which may be absent entirely (then
# only the own-namespace and admins rules grant anything):
#
#   public:     ["library/*", "mirror/**"]   glob patterns anyone may pull
#   namespaces: {"team": {"pull": ["bob", "group:ci"], "push": ["alice"]}}
#
# Copy this file as a starting point for a policy of your own.
package registry.authz

# ---------------------------------------------------------------------------
# Site data, with defaults. data.registry is read one key at a time because
# it also contains this package: reading it whole from here would be recursive.

default public := []

public := data.registry.public

default namespaces := {}

namespaces := data.registry.namespaces

# ---------------------------------------------------------------------------
# Facts about the request.

# An identity is authenticated when a method other than anonymous vouched for
# a non-empty subject. Anything missing or malformed counts as anonymous.
authenticated if {
	input.identity.method != "anonymous"
	is_string(input.identity.subject)
	input.identity.subject != ""
}

# The caller's groups; absent or empty means none.
groups contains g if some g in input.identity.groups

admin if {
	authenticated
	"admins" in groups
}

# The method that vouched for the subject. A refresh token (method
# "refresh") stands for the login it was issued at, named by
# identity.refreshed_from: a rule about how someone logged in must use this,
# or a refresh token would escape it.
effective_method := input.identity.refreshed_from if {
	input.identity.method == "refresh"
} else := input.identity.method

# The repository being asked about; undefined for any other resource type,
# so every rule that uses it grants nothing on other types.
repository := input.scope.name if input.scope.type == "repository"

# in_namespace(ns, name): name is "ns/<something>", at any depth. The
# repository named exactly "ns", and "ns2/x", are not in namespace "ns".
in_namespace(ns, name) if {
	startswith(name, concat("", [ns, "/"]))
	count(name) > count(ns) + 1
}

# is_member(members): the caller is listed in a namespace's member list,
# either by subject, by "group:<g>", or by "*" (any authenticated identity).
# Only ever asked about authenticated callers.
is_member(members) if {
	some m in members
	m == input.identity.subject
	not startswith(m, "group:")
}

is_member(members) if "*" in members

is_member(members) if {
	some m in members
	startswith(m, "group:")
	substring(m, count("group:"), -1) in groups
}

# ---------------------------------------------------------------------------
# granted: what the rules grant before the read-only cap below. Internal;
# the server reads only allow.

# Public repositories: anyone may pull, anonymous included. The "/"
# delimiter makes "library/*" match "library/x" but not "library/x/y";
# "library/**" matches any depth.
granted contains "pull" if {
	some pattern in public
	glob.match(pattern, ["/"], repository)
}

# Everyone owns their own namespace: alice may do anything to alice/*.
granted contains action if {
	authenticated
	in_namespace(input.identity.subject, repository)
	some action in ["pull", "push", "delete"]
}

# Shared namespaces: the action keys of data.registry.namespaces[ns] are
# granted on ns/* to the members listed under them.
granted contains action if {
	authenticated
	some ns, acl in namespaces
	in_namespace(ns, repository)
	some action, members in acl
	is_member(members)
}

# Admins may do anything to any repository, and list the catalog (which the
# registry asks for as registry:catalog:*).
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
# The Sourcehut read-only cap. A Sourcehut token carries its own grants; one
# that holds only <service>/REGISTRY:RO must not push or delete, however much
# its owner could do with a read-write token. A refresh token made from such
# a token is capped the same way (its identity.sourcehut keeps the grants).

sourcehut_read_write if input.identity.sourcehut.all_grants == true

sourcehut_read_write if {
	some grant in input.identity.sourcehut.grants
	grant.service == input.request.service
	grant.scope == "REGISTRY"
	grant.access == "RW"
}

read_only if {
	effective_method == "sourcehut"
	not sourcehut_read_write
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

# Without the cap, everything granted is allowed.
allow contains action if {
	not read_only
	some action in granted
}

# With the cap, at most pull, and only on repositories: "*" is narrowed to
# pull, and the catalog (which needs "*") is not granted at all.
allow contains "pull" if {
	read_only
	input.scope.type == "repository"
	some action in ["pull", "*"]
	action in granted
}

# This policy understands version 1 of the input document only; refuse to
# guess about any other shape.
deny contains "unsupported input version" if not input.version == 1
