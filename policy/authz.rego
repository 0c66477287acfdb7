# The default authorization policy of srht-registry.
#
# The server evaluates this package once per requested scope, with an input
# document (version 2) like
#
#   {"version": 2,
#    "identity": {"method": "password", "provider": "htpasswd", "subject": "alice",
#                 "namespace": "alice", "groups": ["ci"]},
#    "request": {"service": "registry.example.com", ...},
#    "scope": {"type": "repository", "name": "alice/app", "actions": ["pull", "push"]}}
#
# (Sourcehut identities also carry identity.sourcehut with the token's grants;
# an identity that a refresh token stands for has method "refresh", the
# method of its original login in identity.refreshed_from, and the provider
# of that login), and reads two rules from it:
#
#   allow - the set of actions granted on input.scope ("*" means every action)
#   deny  - a set of messages; if it is non-empty nothing is granted
#
# A principal is the pair (provider, subject), written "provider:subject":
# htpasswd:alice and sourcehut:alice are different people, and nothing here
# compares a subject without its provider. identity.namespace is the
# personal namespace the server's account model gives the identity (an
# htpasswd user's name; a Sourcehut user's name unless an htpasswd user has
# it); absent when it owns none.
#
# Site settings come from data.registry, which may be absent entirely (then
# only the own-namespace and admins rules grant anything). data.schema.json
# gives their shapes; the server refuses data with any other key or shape:
#
#   public:     ["library/*", "mirror/**"]   glob patterns anyone may pull
#   namespaces: {"team": {"pull": ["htpasswd:bob", "group:ci"], "push": ["sourcehut:alice"]}}
#               members are principals, "group:<g>", or "*" (every
#               authenticated identity); a bare name matches nobody
#   reserved:   ["admin", "v2"]   names nobody owns as a personal namespace
#
# Site configuration beats ownership: a name that is a shared namespace
# (a key of namespaces), is reserved, or is the namespace of a public
# pattern "<ns>/*" or "<ns>/**" is nobody's personal namespace, and a
# repository inside a shared namespace is governed by its ACL alone.
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

default reserved := []

reserved := data.registry.reserved

# ---------------------------------------------------------------------------
# Facts about the request.

# An identity is authenticated when a method other than anonymous vouched for
# a non-empty subject of a named provider. Anything missing or malformed
# counts as anonymous.
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

# site_namespace(name): the site configured name for itself, so no
# identity owns it: a shared namespace, a reserved name, or the namespace a
# public pattern covers whole ("library" for "library/*" or "library/**").
site_namespace(name) if namespaces[name]

site_namespace(name) if name in reserved

site_namespace(name) if {
	some pattern in public
	pattern_namespace(pattern) == name
}

# pattern_namespace(pattern): ns for a pattern "ns/*" or "ns/**" whose ns
# is a plain name. Other patterns ("alice/app", "*/public", "**") name no
# namespace of the site's.
pattern_namespace(pattern) := parts[0] if {
	parts := split(pattern, "/")
	count(parts) == 2
	parts[1] in {"*", "**"}
	not regex.match(`[*?\[\]{}\\]`, parts[0])
}

# in_shared_namespace(name): name is inside a namespace of namespaces,
# whose ACL alone says who may do what there.
in_shared_namespace(name) if {
	some ns, _ in namespaces
	in_namespace(ns, name)
}

# The caller's personal namespace: the one the server says it owns, unless
# the site took that name.
own_namespace := ns if {
	authenticated
	ns := input.identity.namespace
	is_string(ns)
	ns != ""
	not site_namespace(ns)
}

# is_member(members): the caller is listed in a namespace's member list,
# by principal ("htpasswd:bob"), by "group:<g>", or by "*" (any
# authenticated identity). A bare name ("bob") matches nobody: it does not
# say which provider's bob. Only ever asked about authenticated callers.
is_member(members) if principal in members

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

# Everyone owns their own namespace: htpasswd:alice may do anything to
# alice/*, except inside a shared namespace configured there.
granted contains action if {
	in_namespace(own_namespace, repository)
	not in_shared_namespace(repository)
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
	input.identity.provider == "sourcehut"
	not sourcehut_read_write
}

# The same by how the caller logged in, should an identity ever say
# sourcehut there without naming the provider.
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

# This policy understands version 2 of the input document only; refuse to
# guess about any other shape (version 1 had no providers).
deny contains "unsupported input version" if not input.version == 2
