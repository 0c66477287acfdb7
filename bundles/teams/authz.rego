# teams: shared team namespaces, with group membership kept in the bundle.
#
# Like srht-registry's default policy (policy/authz.rego), but a team's
# members can be listed in the bundle's data.json instead of the server
# configuration, so that who may push where changes with a bundle revision,
# not a server restart.
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
# ID tokens, and their refresh tokens) own no namespace and are not members
# of "*"; this bundle has no claim rules, so they get only public pulls and
# what names their principal. For claim rules see the default policy's
# oidc data, or the github-actions, gitlab-ci and kubernetes bundles.
# Directory identities (authn.ldap: method "password", provider the
# directory's name) own no namespace, are members of "*", and are in the
# directory's groups the server sends qualified by it ("corp:devs"): a team
# names them "group:corp:devs" in namespaces (docs/ldap.md).
#
# What it grants, evaluated once per requested scope:
#
#   anyone, anonymous included     pull on repositories matching a glob in public
#   an identity with namespace ns  pull, push, delete on ns/*, unless the site
#                                  took ns (below)
#   a namespace member             the actions listed for it in namespaces, on ns/*
#   group admins                   everything on every repository, and the
#                                  catalog (registry:catalog:*)
#   a Sourcehut token that is      at most pull, wherever the rules above grant
#   read-only for this registry    more; so do the refresh tokens made from it
#   anything else                  nothing
#
# An authenticated caller is in group g when data.registry.groups[g] lists
# its principal, OR when the server says so (input.identity.groups, from
# `groups:` in its config, which the server also matches by principal).
# Either source is enough; neither can take a group away that the other
# gives. Anonymous callers are in no group.
#
# Site configuration beats ownership, as in the default policy: a name that
# is a key of namespaces, is in reserved, or is the namespace of a public
# pattern "<ns>/*" or "<ns>/**" (a plain <ns>, no glob characters) is
# nobody's personal namespace, whatever identity.namespace says; and a
# repository inside any team namespace is governed by its ACL alone. So a
# Sourcehut account named "backend" gets nothing on backend/* from its name.
#
# Data (data.json, under data.registry; every key optional; data.schema.json
# describes it, and the server refuses to load data that does not match it):
#
#   groups:     {"admins": ["htpasswd:root"], "backend": ["htpasswd:alice", "sourcehut:bob"]}
#               group -> principals; a bare name ("bob") matches nobody
#   namespaces: {"backend": {"pull": ["group:backend"], "push": ["htpasswd:alice"]}}
#               action -> members granted it on backend/*; a member is a
#               principal, "group:<g>", or "*" (every authenticated
#               identity of an account provider, htpasswd or Sourcehut; not
#               an OIDC identity); a bare name matches nobody; an
#               action "*" grants every action
#   public:     ["releases/*"]   glob patterns anyone may pull ("*" stays in
#                                one path segment, "**" spans any depth)
#   reserved:   ["admin"]        names nobody owns as a personal namespace
#
# Do not name a data key "authz": this package lives at data.registry.authz.
package registry.authz

# ---------------------------------------------------------------------------
# Data, with defaults. data.registry is read one key at a time: it also
# holds this package, so reading it whole from here would be recursive.

default public := []

public := data.registry.public

default namespaces := {}

namespaces := data.registry.namespaces

default reserved := []

reserved := data.registry.reserved

default group_members := {}

group_members := data.registry.groups

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

# The caller's groups, from the server ...
groups contains g if {
	authenticated
	some g in input.identity.groups
}

# ... and from data.json, by principal.
groups contains g if {
	authenticated
	some g, members in group_members
	principal in members
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

# site_namespace(name): the site configured name for itself, so no
# identity owns it: a team namespace, a reserved name, or the namespace a
# public pattern covers whole ("releases" for "releases/*" or "releases/**").
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
	not oidc_identity
	ns := input.identity.namespace
	is_string(ns)
	ns != ""
	not site_namespace(ns)
}

# is_member(members): the caller is in a namespace's member list, by
# principal ("htpasswd:bob"), by "group:<g>", or through "*" (not an OIDC
# identity: see oidc_identity). A bare name matches nobody. Asked about
# authenticated callers only.
is_member(members) if principal in members

is_member(members) if {
	"*" in members
	not oidc_identity
}

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

# Own namespace, except inside a team namespace configured there.
granted contains action if {
	in_namespace(own_namespace, repository)
	not in_shared_namespace(repository)
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
