# teams: shared team namespaces, with group membership kept in the bundle.
#
# Like srht-registry's default policy, but a team's members can be listed in
# the bundle's data.json instead of the server configuration, so that who may
# push where changes with a bundle revision, not a server restart.
#
# What it grants, evaluated once per requested scope:
#
#   anyone, anonymous included   pull on repositories matching a glob in public
#   an authenticated user u      pull, push, delete on u/* (its own namespace)
#   a namespace member           the actions listed for it in namespaces, on ns/*
#   group admins                 everything on every repository, and the
#                                catalog (registry:catalog:*)
#   a Sourcehut token that is    at most pull, wherever the rules above grant
#   read-only for this registry  more
#   anything else                nothing
#
# A user is in group g when data.registry.groups[g] lists it, OR when the
# server says so (input.identity.groups, from `groups:` in its config). Either
# source is enough; neither can take a group away that the other gives.
# Anonymous callers are in no group.
#
# Data (data.json, under data.registry; every key optional):
#
#   groups:     {"admins": ["root"], "backend": ["alice", "bob"]}
#               group -> user names
#   namespaces: {"backend": {"pull": ["group:backend"], "push": ["alice"]}}
#               action -> members granted it on backend/*; a member is a user
#               name, "group:<g>", or "*" (any authenticated user); an action
#               "*" grants every action
#   public:     ["releases/*"]   glob patterns anyone may pull ("*" stays in
#                                one path segment, "**" spans any depth)
#
# User names are shared by password (htpasswd) and Sourcehut users: "alice"
# in a group means both. Tell them apart with effective_method if needed.
# Do not name a data key "authz": this package lives at data.registry.authz.
# Input: see policy/README.md and policy/input.schema.json.
package registry.authz

# ---------------------------------------------------------------------------
# Data, with defaults. data.registry is read one key at a time: it also
# holds this package, so reading it whole from here would be recursive.

default public := []

public := data.registry.public

default namespaces := {}

namespaces := data.registry.namespaces

default group_members := {}

group_members := data.registry.groups

# ---------------------------------------------------------------------------
# Who is asking.

# Authenticated: a method other than anonymous vouched for a non-empty name.
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

# The caller's groups, from the server ...
groups contains g if {
	authenticated
	some g in input.identity.groups
}

# ... and from data.json.
groups contains g if {
	authenticated
	some g, members in group_members
	input.identity.subject in members
}

admin if "admins" in groups

# ---------------------------------------------------------------------------
# What is asked about.

# The repository name; undefined for other resource types, so every rule
# that uses it grants nothing on them.
repository := input.scope.name if input.scope.type == "repository"

# in_namespace(ns, name): name is "ns/<something>", at any depth; not "ns"
# itself and not "ns2/x".
in_namespace(ns, name) if {
	startswith(name, concat("", [ns, "/"]))
	count(name) > count(ns) + 1
}

# is_member(members): the caller is in a namespace's member list, by name,
# by "group:<g>", or through "*". Asked about authenticated callers only.
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
# granted: what the rules grant before the read-only cap.

granted contains "pull" if {
	some pattern in public
	glob.match(pattern, ["/"], repository)
}

granted contains action if {
	authenticated
	in_namespace(input.identity.subject, repository)
	some action in ["pull", "push", "delete"]
}

granted contains action if {
	authenticated
	some ns, acl in namespaces
	in_namespace(ns, repository)
	some action, members in acl
	is_member(members)
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
# The Sourcehut read-only cap: a token that is only RO for this registry
# (access, computed by the server from the token's grants) must not push or
# delete, however much its owner may do with a read-write token.

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
