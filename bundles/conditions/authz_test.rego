# Tests for the conditions bundle, run against the bundle's own data.json:
# `opa test -b bundles/conditions/`.
#
# data.json holds
#   public:         ["library/*"]
#   namespaces:     team: pull ["*"],
#                         push ["htpasswd:alice", "sourcehut:carol", "group:ci"]
#   reserved:       ["admin"]
#   push_networks:  10.0.0.0/8, 192.0.2.0/24, 2001:db8::/32
#   freeze_windows: 2025-12-19T17:00:00Z .. 2026-01-05T08:00:00Z
#                     (reason "year-end change freeze")
#                   2026-03-01T00:00:00+01:00 .. 2026-03-02T00:00:00+01:00
#                     (no reason)
#
# Other data is mocked one key at a time (with data.registry.push_networks
# as ...), never data.registry whole: that would replace this package too.
package registry.authz_test

import data.registry.authz

# ---------------------------------------------------------------------------
# Fixtures: input version 2. Each login's identity owns the namespace named
# like its subject, as the server says for an htpasswd user, and for a
# Sourcehut user no htpasswd user shares a name with.

service := "registry.example.com"

inside := "10.1.2.3"

outside := "203.0.113.9"

normal_day := "2025-11-03T10:00:00Z"

christmas := "2025-12-24T12:00:00Z"

freeze_end := "2026-01-05T08:00:00Z"

refused_freeze := "push refused: change freeze until 2026-01-05T08:00:00Z (year-end change freeze)"

refused_network := "push refused: client IP 203.0.113.9 not in push_networks"

anonymous := {"method": "anonymous", "subject": "", "groups": []}

password(subject, groups) := {
	"method": "password",
	"provider": "htpasswd",
	"subject": subject,
	"namespace": subject,
	"groups": groups,
}

sourcehut(username, access) := {
	"method": "sourcehut",
	"provider": "sourcehut",
	"subject": username,
	"namespace": username,
	"groups": [],
	"sourcehut": {
		"username": username,
		"client_id": "",
		"expires": "2030-01-01T00:00:00Z",
		"all_grants": false,
		"access": access,
		"grants": [{"service": service, "scope": "REGISTRY", "access": access}],
	},
}

# A personal access token: all access.
personal(username) := object.union(sourcehut(username, "RW"), {"sourcehut": {"all_grants": true, "grants": []}})

# The identity a refresh token issued at the login `identity` stands for: it
# keeps the login's provider, namespace, groups and identity.sourcehut.
refreshed(identity) := object.union(identity, {"method": "refresh", "refreshed_from": identity.method})

# The same identity as the server sends it when it owns no namespace.
no_namespace(identity) := object.remove(identity, ["namespace"])

alice := password("alice", [])

root := password("root", ["admins"])

input_for(identity, type, name, actions, ip, time) := {
	"version": 2,
	"identity": identity,
	"request": {
		"service": service,
		"client_ip": ip,
		"client_id": "docker",
		"user_agent": "docker/27.0",
		"time": time,
	},
	"scope": {"type": type, "name": name, "actions": actions},
}

# What docker asks for: pull, or pull,push to push.
pull(identity, name, ip, time) := input_for(identity, "repository", name, ["pull"], ip, time)

push(identity, name, ip, time) := input_for(identity, "repository", name, ["pull", "push"], ip, time)

everything(identity, name, ip, time) := input_for(identity, "repository", name, ["pull", "push", "delete"], ip, time)

catalog(identity, ip, time) := input_for(identity, "registry", "catalog", ["*"], ip, time)

all_actions := {"pull", "push", "delete"}

# ---------------------------------------------------------------------------
# data.json itself: every freeze window parses and ends after it starts.

test_data_json_freeze_windows_are_valid if {
	count(data.registry.freeze_windows) > 0
	every window in data.registry.freeze_windows {
		time.parse_rfc3339_ns(window.start) < time.parse_rfc3339_ns(window.end)
	}
}

test_data_json_push_networks_are_valid if {
	count(data.registry.push_networks) > 0
	every cidr in data.registry.push_networks {
		net.cidr_is_valid(cidr)
	}
}

# ---------------------------------------------------------------------------
# Both conditions hold: the default rules, unchanged.

test_normal_day_inside_everything if {
	authz.allow == all_actions with input as everything(alice, "alice/app", inside, normal_day)
	count(authz.deny) == 0 with input as everything(alice, "alice/app", inside, normal_day)
}

test_normal_day_other_networks if {
	authz.allow == all_actions with input as push(alice, "alice/app", "192.0.2.77", normal_day)
	authz.allow == all_actions with input as push(alice, "alice/app", "2001:db8::1", normal_day)
	authz.allow == all_actions with input as push(alice, "alice/app", "::ffff:10.9.9.9", normal_day)
}

test_normal_day_admin_star if {
	authz.allow == {"pull", "*"} with input as everything(root, "bob/app", inside, normal_day)
}

test_sourcehut_rw_pushes if {
	authz.allow == all_actions with input as push(sourcehut("alice", "RW"), "alice/app", inside, normal_day)
}

# ---------------------------------------------------------------------------
# Outside push_networks: pull yes, writes no.

test_outside_pull_only_request_no_deny if {
	authz.allow == {"pull"} with input as pull(alice, "alice/app", outside, normal_day)
	count(authz.deny) == 0 with input as pull(alice, "alice/app", outside, normal_day)
}

test_outside_push_denied if {
	authz.allow == {"pull"} with input as push(alice, "alice/app", outside, normal_day)
	authz.deny == {refused_network} with input as push(alice, "alice/app", outside, normal_day)
}

test_outside_several_writes_one_message if {
	authz.deny == {"delete,push refused: client IP 203.0.113.9 not in push_networks"} with input as everything(alice, "alice/app", outside, normal_day)
}

test_outside_delete_only if {
	inp := input_for(alice, "repository", "alice/app", ["delete"], outside, normal_day)
	authz.deny == {"delete refused: client IP 203.0.113.9 not in push_networks"} with input as inp
}

test_outside_ipv6_denied if {
	authz.deny == {"push refused: client IP 2001:db9::1 not in push_networks"} with input as push(alice, "alice/app", "2001:db9::1", normal_day)
}

test_outside_admin_star_narrowed_to_pull if {
	authz.allow == {"pull"} with input as everything(root, "bob/app", outside, normal_day)
	authz.deny == {"delete,push refused: client IP 203.0.113.9 not in push_networks"} with input as everything(root, "bob/app", outside, normal_day)
}

test_outside_admin_requesting_star if {
	inp := input_for(root, "repository", "bob/app", ["*"], outside, normal_day)
	authz.allow == {"pull"} with input as inp
	authz.deny == {"* refused: client IP 203.0.113.9 not in push_networks"} with input as inp
}

# A client address that is no IP at all refuses writes, without an error.
test_malformed_client_ip if {
	authz.allow == {"pull"} with input as push(alice, "alice/app", "", normal_day)
	authz.deny == {"push refused: client IP  not in push_networks"} with input as push(alice, "alice/app", "", normal_day)
	authz.deny == {"push refused: client IP 10.1.2.3:5000 not in push_networks"} with input as push(alice, "alice/app", "10.1.2.3:5000", normal_day)
}

test_no_push_networks_nobody_writes if {
	authz.allow == {"pull"} with input as push(alice, "alice/app", inside, normal_day)
		with data.registry.push_networks as []
	authz.deny == {"push refused: client IP 10.1.2.3 not in push_networks"} with input as push(alice, "alice/app", inside, normal_day)
		with data.registry.push_networks as []
}

test_invalid_cidr_matches_nothing if {
	authz.allow == all_actions with input as push(alice, "alice/app", inside, normal_day)
		with data.registry.push_networks as ["nonsense", "10.0.0.0/8"]
	authz.allow == {"pull"} with input as push(alice, "alice/app", inside, normal_day)
		with data.registry.push_networks as ["nonsense"]
}

# ---------------------------------------------------------------------------
# Change freezes.

test_freeze_pull_only_request_no_deny if {
	authz.allow == {"pull"} with input as pull(alice, "alice/app", inside, christmas)
	count(authz.deny) == 0 with input as pull(alice, "alice/app", inside, christmas)
}

test_freeze_push_denied if {
	authz.allow == {"pull"} with input as push(alice, "alice/app", inside, christmas)
	authz.deny == {refused_freeze} with input as push(alice, "alice/app", inside, christmas)
}

test_freeze_applies_to_admins if {
	authz.allow == {"pull"} with input as everything(root, "bob/app", inside, christmas)
	authz.deny == {"delete,push refused: change freeze until 2026-01-05T08:00:00Z (year-end change freeze)"} with input as everything(root, "bob/app", inside, christmas)
}

test_freeze_and_outside_two_messages if {
	authz.deny == {refused_freeze, refused_network} with input as push(alice, "alice/app", outside, christmas)
}

test_freeze_start_inclusive if {
	authz.allow == all_actions with input as push(alice, "alice/app", inside, "2025-12-19T16:59:59Z")
	authz.allow == {"pull"} with input as push(alice, "alice/app", inside, "2025-12-19T17:00:00Z")
}

test_freeze_end_exclusive if {
	authz.allow == {"pull"} with input as push(alice, "alice/app", inside, "2026-01-05T07:59:59Z")
	authz.allow == all_actions with input as push(alice, "alice/app", inside, freeze_end)
}

# The second window is given in +01:00 and has no reason.
test_freeze_with_offset_and_no_reason if {
	authz.allow == all_actions with input as push(alice, "alice/app", inside, "2026-02-28T22:59:59Z")
	authz.allow == {"pull"} with input as push(alice, "alice/app", inside, "2026-02-28T23:00:00Z")
	authz.deny == {"push refused: change freeze until 2026-03-02T00:00:00+01:00"} with input as push(alice, "alice/app", inside, "2026-03-01T12:00:00Z")
	authz.allow == all_actions with input as push(alice, "alice/app", inside, "2026-03-01T23:00:00Z")
}

test_request_time_with_offset if {
	authz.allow == {"pull"} with input as push(alice, "alice/app", inside, "2025-12-19T18:00:00+01:00")
	authz.allow == all_actions with input as push(alice, "alice/app", inside, "2025-12-19T17:59:59+01:00")
}

test_overlapping_windows_each_reported if {
	windows := [
		{"start": "2025-12-01T00:00:00Z", "end": "2025-12-31T00:00:00Z", "reason": "a"},
		{"start": "2025-12-20T00:00:00Z", "end": "2026-01-02T00:00:00Z", "reason": "b"},
	]
	authz.deny == {
		"push refused: change freeze until 2025-12-31T00:00:00Z (a)",
		"push refused: change freeze until 2026-01-02T00:00:00Z (b)",
	} with input as push(alice, "alice/app", inside, christmas)
		with data.registry.freeze_windows as windows
}

test_no_freeze_windows if {
	authz.allow == all_actions with input as push(alice, "alice/app", inside, christmas)
		with data.registry.freeze_windows as []
}

test_empty_reason_left_out if {
	windows := [{"start": "2025-12-01T00:00:00Z", "end": "2025-12-31T00:00:00Z", "reason": ""}]
	authz.deny == {"push refused: change freeze until 2025-12-31T00:00:00Z"} with input as push(alice, "alice/app", inside, christmas)
		with data.registry.freeze_windows as windows
}

# ---------------------------------------------------------------------------
# No deny for writes the caller could not make anyway.

test_no_deny_for_anonymous_push if {
	authz.allow == {"pull"} with input as push(anonymous, "library/alpine", outside, christmas)
	count(authz.deny) == 0 with input as push(anonymous, "library/alpine", outside, christmas)
}

test_no_deny_for_someone_elses_repository if {
	count(authz.allow) == 0 with input as push(alice, "bob/app", outside, christmas)
	count(authz.deny) == 0 with input as push(alice, "bob/app", outside, christmas)
}

test_no_deny_for_read_only_token if {
	authz.allow == {"pull"} with input as push(sourcehut("alice", "RO"), "alice/app", outside, christmas)
	count(authz.deny) == 0 with input as push(sourcehut("alice", "RO"), "alice/app", outside, christmas)
}

# ---------------------------------------------------------------------------
# Pull follows the default rules, whatever the conditions.

test_public_anonymous_pull_anywhere_anytime if {
	authz.allow == {"pull"} with input as pull(anonymous, "library/alpine", outside, christmas)
	authz.allow == {"pull"} with input as pull(anonymous, "library/alpine", inside, normal_day)
}

test_public_one_level if {
	count(authz.allow) == 0 with input as pull(anonymous, "library/alpine/x", inside, normal_day)
}

test_private_not_pulled_by_others if {
	count(authz.allow) == 0 with input as pull(alice, "bob/app", inside, normal_day)
	count(authz.allow) == 0 with input as pull(anonymous, "alice/app", inside, normal_day)
}

test_own_namespace_not_the_bare_name if {
	count(authz.allow) == 0 with input as everything(alice, "alice", inside, normal_day)
}

test_read_only_token_pulls_own if {
	authz.allow == {"pull"} with input as everything(sourcehut("alice", "RO"), "alice/app", inside, normal_day)
}

# ---------------------------------------------------------------------------
# Refresh tokens are judged as the login they were issued at: the read-only
# cap follows a Sourcehut token, and the conditions apply as to anyone.

test_refreshed_password_pushes_inside if {
	authz.allow == all_actions with input as push(refreshed(alice), "alice/app", inside, normal_day)
}

test_refreshed_password_refused_outside if {
	authz.deny == {refused_network} with input as push(refreshed(alice), "alice/app", outside, normal_day)
}

test_refreshed_sourcehut_ro_pull_only if {
	authz.allow == {"pull"} with input as everything(refreshed(sourcehut("alice", "RO")), "alice/app", inside, normal_day)
}

test_refreshed_sourcehut_rw_pushes_inside if {
	authz.allow == all_actions with input as everything(refreshed(sourcehut("alice", "RW")), "alice/app", inside, normal_day)
}

test_refresh_without_refreshed_from_is_read_only if {
	id := {"method": "refresh", "provider": "htpasswd", "subject": "alice", "namespace": "alice", "groups": []}
	authz.allow == {"pull"} with input as everything(id, "alice/app", inside, normal_day)
}

# ---------------------------------------------------------------------------
# Who is who: principals, and the identity's own namespace.

test_principal_is_provider_and_subject if {
	authz.principal == "htpasswd:alice" with input as pull(alice, "x/y", inside, normal_day)
	authz.principal == "sourcehut:alice" with input as pull(sourcehut("alice", "RW"), "x/y", inside, normal_day)
	authz.principal == "sourcehut:alice" with input as pull(refreshed(sourcehut("alice", "RW")), "x/y", inside, normal_day)
}

test_no_provider_is_nobody if {
	id := object.remove(root, ["provider"])
	count(authz.allow) == 0 with input as everything(id, "root/app", inside, normal_day)
	count(authz.allow) == 0 with input as catalog(id, inside, normal_day)
	count(authz.deny) == 0 with input as everything(id, "root/app", outside, christmas)
}

# Ownership comes from identity.namespace: a subject without one owns
# nothing, and gets no deny either (it could not write anyway).
test_subject_without_namespace_owns_nothing if {
	count(authz.allow) == 0 with input as everything(no_namespace(alice), "alice/app", inside, normal_day)
	count(authz.allow) == 0 with input as everything(no_namespace(personal("alice")), "alice/app", inside, normal_day)
	count(authz.deny) == 0 with input as everything(no_namespace(personal("alice")), "alice/app", outside, christmas)
}

test_namespace_not_subject_decides if {
	id := object.union(alice, {"namespace": "al"})
	authz.allow == all_actions with input as everything(id, "al/app", inside, normal_day)
	count(authz.allow) == 0 with input as everything(id, "alice/app", inside, normal_day)
}

test_anonymous_with_a_namespace_owns_nothing if {
	id := {"method": "anonymous", "subject": "alice", "namespace": "alice", "groups": []}
	count(authz.allow) == 0 with input as everything(id, "alice/app", inside, normal_day)
}

# ---------------------------------------------------------------------------
# Shared namespaces: members by principal, writes under the conditions.

test_namespace_listed_principal if {
	authz.allow == {"pull", "push"} with input as everything(alice, "team/app", inside, normal_day)
	authz.allow == {"pull", "push"} with input as everything(personal("carol"), "team/app", inside, normal_day)
	authz.allow == {"pull", "push"} with input as everything(password("bot", ["ci"]), "team/app", inside, normal_day)
}

test_namespace_star_pull_not_anonymous if {
	authz.allow == {"pull"} with input as everything(password("dave", []), "team/app", inside, normal_day)
	count(authz.allow) == 0 with input as everything(anonymous, "team/app", inside, normal_day)
}

# htpasswd:alice is listed; the Sourcehut account alice is someone else, as
# htpasswd:carol is not sourcehut:carol.
test_namespace_principal_other_provider_not_member if {
	authz.allow == {"pull"} with input as everything(personal("alice"), "team/app", inside, normal_day)
	authz.allow == {"pull"} with input as everything(password("carol", []), "team/app", inside, normal_day)
	count(authz.deny) == 0 with input as everything(personal("alice"), "team/app", outside, christmas)
}

test_namespace_htpasswd_bob_does_not_let_sourcehut_bob_in if {
	acl := {"x": {"push": ["htpasswd:bob"]}}
	authz.allow == {"push"} with input as push(password("bob", []), "x/app", inside, normal_day)
		with data.registry.namespaces as acl
	count(authz.allow) == 0 with input as push(personal("bob"), "x/app", inside, normal_day)
		with data.registry.namespaces as acl
}

test_namespace_bare_name_matches_nobody if {
	acl := {"x": {"push": ["bob"]}}
	count(authz.allow) == 0 with input as push(password("bob", []), "x/app", inside, normal_day)
		with data.registry.namespaces as acl
	count(authz.allow) == 0 with input as push(personal("bob"), "x/app", inside, normal_day)
		with data.registry.namespaces as acl
}

test_namespace_group_entry_is_not_a_user if {
	authz.allow == {"pull"} with input as everything(password("group:ci", []), "team/app", inside, normal_day)
}

test_namespace_push_refused_outside if {
	authz.allow == {"pull"} with input as push(alice, "team/app", outside, normal_day)
	authz.deny == {refused_network} with input as push(alice, "team/app", outside, normal_day)
	authz.deny == {refused_freeze} with input as push(personal("carol"), "team/app", inside, christmas)
}

# ---------------------------------------------------------------------------
# Site configuration beats ownership.

# An account named like the shared namespace gets the namespace's ACL
# ("*" may pull), no more, and no deny for the writes it may not make.
test_sourcehut_named_like_shared_namespace_no_push if {
	authz.allow == {"pull"} with input as everything(personal("team"), "team/app", inside, normal_day)
	authz.allow == {"pull"} with input as everything(refreshed(personal("team")), "team/app", inside, normal_day)
	authz.allow == {"pull"} with input as everything(password("team", []), "team/app", inside, normal_day)
	count(authz.deny) == 0 with input as everything(personal("team"), "team/app", outside, christmas)
	not authz.own_namespace with input as everything(personal("team"), "team/app", inside, normal_day)
}

test_sourcehut_named_like_public_prefix_no_push if {
	authz.allow == {"pull"} with input as everything(personal("library"), "library/alpine", inside, normal_day)
	count(authz.allow) == 0 with input as everything(personal("library"), "library/a/b", inside, normal_day)
	authz.allow == {"pull"} with input as everything(password("library", []), "library/alpine", inside, normal_day)
}

test_other_public_patterns_reserve_nothing if {
	authz.allow == all_actions with input as everything(personal("dave"), "dave/app", inside, normal_day)
		with data.registry.public as ["dave/app", "*/public", "**", "dav?/*"]
}

# Only a plain name before "/*" or "/**" is a namespace of the site's.
test_pattern_namespace if {
	authz.pattern_namespace("library/*") == "library"
	authz.pattern_namespace("mirror/**") == "mirror"
	not authz.pattern_namespace("lib*/*")
	not authz.pattern_namespace("l?b/*")
	not authz.pattern_namespace("[ab]/**")
	not authz.pattern_namespace("library/app")
	not authz.pattern_namespace("library/*/x")
	not authz.pattern_namespace("**")
}

test_sourcehut_named_like_reserved_no_push if {
	count(authz.allow) == 0 with input as everything(personal("admin"), "admin/app", inside, normal_day)
	count(authz.allow) == 0 with input as everything(password("admin", []), "admin/app", inside, normal_day)
	authz.allow == all_actions with input as everything(personal("admin"), "admin/app", inside, normal_day)
		with data.registry.reserved as []
}

test_shared_namespace_inside_own_namespace if {
	acl := {"alice/shared": {"pull": ["htpasswd:bob"]}}
	count(authz.allow) == 0 with input as everything(alice, "alice/shared/app", inside, normal_day)
		with data.registry.namespaces as acl
	authz.allow == {"pull"} with input as everything(password("bob", []), "alice/shared/app", inside, normal_day)
		with data.registry.namespaces as acl
	authz.allow == all_actions with input as everything(alice, "alice/app", inside, normal_day)
		with data.registry.namespaces as acl
}

# ---------------------------------------------------------------------------
# Admins: "admins" in identity.groups.

# The Sourcehut account root is not htpasswd:root: without "admins" in its
# groups it is nobody special.
test_sourcehut_named_root_is_not_admin if {
	not authz.admin with input as catalog(personal("root"), inside, normal_day)
	count(authz.allow) == 0 with input as catalog(personal("root"), inside, normal_day)
	count(authz.allow) == 0 with input as everything(personal("root"), "bob/app", inside, normal_day)
	count(authz.deny) == 0 with input as everything(personal("root"), "bob/app", outside, christmas)
}

# The cap follows the provider, whatever the method says.
test_sourcehut_provider_capped_by_provider if {
	id := object.union(sourcehut("alice", "RO"), {"method": "password"})
	authz.allow == {"pull"} with input as everything(id, "alice/app", inside, normal_day)
}

# ---------------------------------------------------------------------------
# The catalog is not a write.

test_admin_catalog_anywhere_anytime if {
	authz.allow == {"*"} with input as catalog(root, outside, christmas)
	count(authz.deny) == 0 with input as catalog(root, outside, christmas)
}

test_non_admin_no_catalog if {
	count(authz.allow) == 0 with input as catalog(alice, inside, normal_day)
	count(authz.allow) == 0 with input as catalog(sourcehut("root", "RO"), inside, normal_day)
}

test_other_resource_types_nothing if {
	count(authz.allow) == 0 with input as input_for(root, "foo", "bob/app", ["pull"], inside, normal_day)
	count(authz.allow) == 0 with input as input_for(root, "registry", "other", ["*"], inside, normal_day)
}

# ---------------------------------------------------------------------------
# Input version.

test_no_deny_for_version_2 if {
	count(authz.deny) == 0 with input as everything(alice, "alice/app", inside, normal_day)
}

test_deny_version_1 if {
	authz.deny == {"unsupported input version"} with input as object.union(everything(alice, "alice/app", inside, normal_day), {"version": 1})
}

test_deny_other_versions if {
	authz.deny == {"unsupported input version"} with input as object.union(pull(anonymous, "library/alpine", inside, normal_day), {"version": 3})
	authz.deny == {"unsupported input version"} with input as object.remove(pull(anonymous, "library/alpine", inside, normal_day), ["version"])
}

# ---------------------------------------------------------------------------
# OIDC identities: no namespace, not in "*".

ci_job := {
	"method": "oidc",
	"provider": "github",
	"subject": "repo:octo-org/app:ref:refs/heads/main",
	"groups": [],
	"oidc": {"issuer": "https://token.actions.githubusercontent.com", "claims": {"sub": "repo:octo-org/app:ref:refs/heads/main"}},
}

test_oidc_not_a_member_of_star if {
	count(authz.allow) == 0 with input as pull(ci_job, "team/app", inside, normal_day)
	count(authz.allow) == 0 with input as pull(refreshed(ci_job), "team/app", inside, normal_day)
	authz.allow == {"pull"} with input as pull(password("dave", []), "team/app", inside, normal_day)
}

test_oidc_owns_no_namespace if {
	count(authz.allow) == 0 with input as push(object.union(ci_job, {"namespace": "octo-org"}), "octo-org/app", inside, normal_day)
}

test_oidc_public_pull if {
	authz.allow == {"pull"} with input as pull(ci_job, "library/alpine", outside, christmas)
}
