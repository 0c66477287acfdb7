# conditions: pushes only from known networks and outside change freezes.
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
#
# Who may do what is decided as in srht-registry's default policy
# (policy/authz.rego):
#
#   anyone, anonymous included     pull on repositories matching a glob in public
#   an identity with namespace ns  pull, push, delete on ns/*, unless the site
#                                  took ns (below)
#   a namespace member             the actions listed for it in namespaces, on ns/*
#   "admins" in identity.groups    everything on every repository, and the
#                                  catalog (registry:catalog:*)
#   a Sourcehut token that is      at most pull, wherever the rules above grant
#   read-only for this registry    more; so do the refresh tokens made from it
#
# Site configuration beats ownership, as there: a name that is a key of
# namespaces, is in reserved, or is the namespace of a public pattern
# "<ns>/*" or "<ns>/**" (a plain <ns>, no glob characters) is nobody's
# personal namespace, whatever identity.namespace says; and a repository
# inside any shared namespace is governed by its ACL alone.
#
# On top of that, every action on a repository other than pull (push, delete,
# "*", anything else) is granted only when BOTH conditions hold:
#
#   - input.request.client_ip is inside a network of push_networks, and
#   - input.request.time is outside every window of freeze_windows.
#
# Pulls are never subject to the conditions, nor is the catalog (read-only).
# Admins are subject to them like everyone else.
#
# Refusals and deny. The server grants nothing at all on a scope whose deny
# set is non-empty, pull included. So deny is used only for a request that
# asks for a write (any action but pull) which the rules above would grant
# but the conditions refuse. A pull-only request never meets a deny and keeps
# working during a freeze and from any network; a `docker push` (which asks
# pull,push) during a freeze gets nothing on that repository (the push could
# not succeed anyway) and the server logs the reason, e.g.
#
#   push refused: change freeze until 2026-01-05T08:00:00Z (year-end change freeze)
#   push refused: client IP 203.0.113.9 not in push_networks
#
# A request for writes the caller may not make anyway (anonymous, someone
# else's repository) gets no deny: it is refused as usual, by allow. allow
# itself also leaves out gated writes, so it is right on its own.
#
# The time is input.request.time, never time.now_ns(): decisions are then
# deterministic, testable, and cacheable per input.
#
# Data (data.json, under data.registry; every key optional; data.schema.json
# describes it, and the server refuses to load data that does not match it):
#
#   public:         ["library/*"]     glob patterns anyone may pull
#   namespaces:     {"team": {"pull": ["*"], "push": ["htpasswd:alice", "group:ci"]}}
#                   action -> members granted it on team/* (conditions
#                   permitting); a member is a principal ("htpasswd:bob",
#                   "sourcehut:carol"), "group:<g>" (a group of
#                   identity.groups), or "*" (every authenticated identity
#                   of an account provider; not an OIDC identity);
#                   a bare name ("bob") matches nobody
#   reserved:       ["admin"]         names nobody owns as a personal namespace
#   push_networks:  ["10.0.0.0/8", "2001:db8::/32"]
#                   CIDRs (IPv4 or IPv6) writes may come from; default none,
#                   so that without it nobody writes: fail closed. Entries
#                   that are not valid CIDRs match nothing (data.schema.json
#                   refuses those not even shaped like one).
#   freeze_windows: [{"start": "2025-12-19T17:00:00Z",
#                     "end": "2026-01-05T08:00:00Z",
#                     "reason": "year-end change freeze"}]
#                   start inclusive, end exclusive, RFC 3339; reason optional.
#                   The server refuses to load a start or end that is not
#                   RFC 3339 (data.schema.json says so); should one reach
#                   evaluation anyway, it fails, and the server then grants
#                   nothing on any scope (fail closed).
#
# Groups come from the server (input.identity.groups, `groups:` in its config,
# whose members are principals too).
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

default reserved := []

reserved := data.registry.reserved

default push_networks := []

push_networks := data.registry.push_networks

default freeze_windows := []

freeze_windows := data.registry.freeze_windows

# ---------------------------------------------------------------------------
# Who is asking, and what about.

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

# The caller's groups; absent or empty means none.
groups contains g if some g in input.identity.groups

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
	"admins" in groups
}

repository := input.scope.name if input.scope.type == "repository"

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
	not oidc_identity
	ns := input.identity.namespace
	is_string(ns)
	ns != ""
	not site_namespace(ns)
}

# is_member(members): the caller is listed in a namespace's member list,
# by principal ("htpasswd:bob"), by "group:<g>", or by "*" (any
# authenticated identity but an OIDC one). A bare name ("bob") matches nobody. Only ever
# asked about authenticated callers.
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
# The conditions.

now := time.parse_rfc3339_ns(input.request.time)

# The freeze windows in force at the time of the request.
active_freezes contains window if {
	some window in freeze_windows
	time.parse_rfc3339_ns(window.start) <= now
	now < time.parse_rfc3339_ns(window.end)
}

frozen if count(active_freezes) > 0

# The client's address, when it is one: net.cidr_contains fails on anything
# else, and a failing built-in would fail the whole decision.
client_ip := ip if {
	ip := input.request.client_ip
	net.cidr_is_valid(concat("", [ip, "/32"]))
}

from_push_network if {
	some cidr in push_networks
	net.cidr_is_valid(cidr)
	net.cidr_contains(cidr, client_ip)
}

writes_possible if {
	from_push_network
	not frozen
}

# ---------------------------------------------------------------------------
# What the rules would grant, before the conditions (as the default policy).

granted contains "pull" if {
	some pattern in public
	glob.match(pattern, ["/"], repository)
}

# Own namespace, except inside a shared namespace configured there.
granted contains action if {
	in_namespace(own_namespace, repository)
	not in_shared_namespace(repository)
	some action in ["pull", "push", "delete"]
}

# Shared namespaces: the actions listed for the caller on ns/*.
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

# The Sourcehut read-only cap: a token that is only RO for this registry
# gets at most pull.
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

permitted contains action if {
	not read_only
	some action in granted
}

permitted contains "pull" if {
	read_only
	input.scope.type == "repository"
	some action in ["pull", "*"]
	action in granted
}

# ---------------------------------------------------------------------------
# The rules the server reads.

# Pull, wherever it is permitted ("*" includes it), whatever the conditions.
allow contains "pull" if {
	input.scope.type == "repository"
	some action in ["pull", "*"]
	action in permitted
}

# Every other action on a repository only when the conditions hold.
allow contains action if {
	input.scope.type == "repository"
	writes_possible
	some action in permitted
	action != "pull"
}

# Anything on other resource types (the catalog) is not a write: as is.
allow contains action if {
	input.scope.type != "repository"
	some action in permitted
}

# The requested writes that the rules would grant, sorted: a deny is only
# about these.
requested_writes := sort({action |
	input.scope.type == "repository"
	some action in input.scope.actions
	action != "pull"
	would_grant(action)
})

would_grant(action) if action in permitted

would_grant(_) if "*" in permitted

deny contains msg if {
	count(requested_writes) > 0
	some window in active_freezes
	msg := sprintf("%s refused: change freeze until %s%s", [
		concat(",", requested_writes),
		window.end,
		reason(window),
	])
}

deny contains msg if {
	count(requested_writes) > 0
	not from_push_network
	msg := sprintf("%s refused: client IP %s not in push_networks", [
		concat(",", requested_writes),
		input.request.client_ip,
	])
}

reason(window) := sprintf(" (%s)", [window.reason]) if {
	is_string(window.reason)
	window.reason != ""
} else := ""

# Input version 2 only (version 1 had no providers).
deny contains "unsupported input version" if not input.version == 2
