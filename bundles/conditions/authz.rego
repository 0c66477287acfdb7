# conditions: pushes only from known networks and outside change freezes.
#
# Who may do what is decided as in srht-registry's default policy:
#
#   anyone, anonymous included   pull on repositories matching a glob in public
#   an authenticated user u      pull, push, delete on u/* (its own namespace)
#   group admins                 everything on every repository, and the
#                                catalog (registry:catalog:*)
#   a Sourcehut token that is    at most pull, wherever the rules above grant
#   read-only for this registry  more
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
# Data (data.json, under data.registry; every key optional):
#
#   public:         ["library/*"]     glob patterns anyone may pull
#   push_networks:  ["10.0.0.0/8", "2001:db8::/32"]
#                   CIDRs (IPv4 or IPv6) writes may come from; default none,
#                   so that without it nobody writes: fail closed. Entries
#                   that are not valid CIDRs match nothing.
#   freeze_windows: [{"start": "2025-12-19T17:00:00Z",
#                     "end": "2026-01-05T08:00:00Z",
#                     "reason": "year-end change freeze"}]
#                   start inclusive, end exclusive, RFC 3339; reason optional.
#                   A start or end that is not RFC 3339 makes evaluation fail,
#                   and the server then grants nothing on any scope (fail
#                   closed): run this bundle's tests after editing data.json.
#
# Groups come from the server (input.identity.groups, `groups:` in its config).
# Do not name a data key "authz": this package lives at data.registry.authz.
# Input: see policy/README.md and policy/input.schema.json.
package registry.authz

# ---------------------------------------------------------------------------
# Data, with defaults. data.registry is read one key at a time: it also
# holds this package, so reading it whole from here would be recursive.

default public := []

public := data.registry.public

default push_networks := []

push_networks := data.registry.push_networks

default freeze_windows := []

freeze_windows := data.registry.freeze_windows

# ---------------------------------------------------------------------------
# Who is asking, and what about.

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

repository := input.scope.name if input.scope.type == "repository"

in_namespace(ns, name) if {
	startswith(name, concat("", [ns, "/"]))
	count(name) > count(ns) + 1
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

granted contains action if {
	authenticated
	in_namespace(input.identity.subject, repository)
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

# The Sourcehut read-only cap: a token that is only RO for this registry
# gets at most pull.
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

deny contains "unsupported input version" if not input.version == 1
