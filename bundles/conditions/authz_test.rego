# Tests for the conditions bundle, run against the bundle's own data.json:
# `opa test -b bundles/conditions/`.
#
# data.json holds
#   public:         ["library/*"]
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
# Fixtures.

service := "registry.example.com"

inside := "10.1.2.3"

outside := "203.0.113.9"

normal_day := "2025-11-03T10:00:00Z"

christmas := "2025-12-24T12:00:00Z"

freeze_end := "2026-01-05T08:00:00Z"

refused_freeze := "push refused: change freeze until 2026-01-05T08:00:00Z (year-end change freeze)"

refused_network := "push refused: client IP 203.0.113.9 not in push_networks"

anonymous := {"method": "anonymous", "subject": "", "groups": []}

password(subject, groups) := {"method": "password", "subject": subject, "groups": groups}

sourcehut(username, access) := {
	"method": "sourcehut",
	"subject": username,
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

# The identity a refresh token issued at the login `identity` stands for.
refreshed(identity) := object.union(identity, {"method": "refresh", "refreshed_from": identity.method})

alice := password("alice", [])

root := password("root", ["admins"])

input_for(identity, type, name, actions, ip, time) := {
	"version": 1,
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
	authz.allow == {"pull"} with input as everything({"method": "refresh", "subject": "alice", "groups": []}, "alice/app", inside, normal_day)
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

test_deny_other_versions if {
	authz.deny == {"unsupported input version"} with input as object.union(pull(anonymous, "library/alpine", inside, normal_day), {"version": 2})
}
