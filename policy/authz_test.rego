# Tests for the default policy: `opa test policy/` or `go test ./policy/`.
#
# Site data is mocked key by key (with data.registry.public as ...,
# with data.registry.namespaces as ...), not as a whole: data.registry also
# holds the policy package itself, and mocking data.registry would replace it.
package registry.authz_test

import data.registry.authz

# ---------------------------------------------------------------------------
# Fixtures.

service := "registry.example.com"

public := ["library/*", "mirror/**"]

namespaces := {
	"team": {"pull": ["bob", "group:ci"], "push": ["alice"], "delete": ["group:ops"]},
	"open": {"pull": ["*"]},
	"ops": {"*": ["group:ops"]},
}

anonymous := {"method": "anonymous", "subject": ""}

password(subject, groups) := {"method": "password", "subject": subject, "groups": groups}

# A Sourcehut identity with the given grants (all_grants false).
sourcehut(username, groups, grants) := {
	"method": "sourcehut",
	"subject": username,
	"groups": groups,
	"sourcehut": {
		"username": username,
		"client_id": "",
		"expires": "2030-01-01T00:00:00Z",
		"all_grants": false,
		"grants": grants,
	},
}

# A Sourcehut personal access token: empty grant string, all access.
sourcehut_all(username, groups) := {
	"method": "sourcehut",
	"subject": username,
	"groups": groups,
	"sourcehut": {
		"username": username,
		"client_id": "",
		"expires": "2030-01-01T00:00:00Z",
		"all_grants": true,
		"grants": [],
	},
}

# The identity a refresh token issued at the login `identity` stands for:
# method "refresh", the login's method in refreshed_from, the rest (subject,
# groups, identity.sourcehut) as at the login.
refreshed(identity) := object.union(identity, {"method": "refresh", "refreshed_from": identity.method})

rw := [{"service": service, "scope": "REGISTRY", "access": "RW"}]

ro := [{"service": service, "scope": "REGISTRY", "access": "RO"}]

input_for(identity, type, name, actions) := {
	"version": 1,
	"identity": identity,
	"request": {
		"service": service,
		"client_ip": "192.0.2.1",
		"client_id": "docker",
		"user_agent": "docker/27.0",
		"time": "2025-01-01T00:00:00Z",
	},
	"scope": {"type": type, "name": name, "actions": actions},
}

repo(identity, name) := input_for(identity, "repository", name, ["pull", "push", "delete"])

catalog(identity) := input_for(identity, "registry", "catalog", ["*"])

all_actions := {"pull", "push", "delete"}

# ---------------------------------------------------------------------------
# No data at all: only the own-namespace and admin rules apply.

test_no_data_anonymous_gets_nothing if {
	count(authz.allow) == 0 with input as repo(anonymous, "library/alpine")
}

test_no_data_own_namespace if {
	authz.allow == all_actions with input as repo(password("alice", []), "alice/app")
}

test_no_data_admin if {
	authz.allow == {"*"} with input as repo(password("root", ["admins"]), "bob/app")
}

test_no_data_no_deny if {
	count(authz.deny) == 0 with input as repo(password("alice", []), "alice/app")
}

# An identity without a groups key at all.
test_no_groups_key if {
	authz.allow == all_actions with input as repo({"method": "password", "subject": "alice"}, "alice/app")
}

# ---------------------------------------------------------------------------
# Public repositories.

test_public_anonymous_pull if {
	authz.allow == {"pull"} with input as repo(anonymous, "library/alpine")
		with data.registry.public as public
}

test_public_anonymous_cannot_push if {
	allowed := authz.allow with input as repo(anonymous, "library/alpine")
		with data.registry.public as public
	not "push" in allowed
	not "delete" in allowed
	not "*" in allowed
}

test_public_single_star_is_one_level if {
	count(authz.allow) == 0 with input as repo(anonymous, "library/alpine/extra")
		with data.registry.public as public
}

test_public_single_star_not_the_prefix_itself if {
	count(authz.allow) == 0 with input as repo(anonymous, "library")
		with data.registry.public as public
}

test_public_double_star_any_depth if {
	authz.allow == {"pull"} with input as repo(anonymous, "mirror/docker.io/library/alpine")
		with data.registry.public as public
}

test_public_other_names_nothing if {
	count(authz.allow) == 0 with input as repo(anonymous, "private/app")
		with data.registry.public as public
}

test_public_authenticated_pull if {
	authz.allow == {"pull"} with input as repo(password("bob", []), "library/alpine")
		with data.registry.public as public
}

test_public_only_repositories if {
	count(authz.allow) == 0 with input as input_for(anonymous, "registry", "library/alpine", ["pull"])
		with data.registry.public as public
}

test_public_default_none if {
	count(authz.allow) == 0 with input as repo(anonymous, "library/alpine")
		with data.registry.namespaces as namespaces
}

# ---------------------------------------------------------------------------
# Own namespace.

test_own_namespace if {
	authz.allow == all_actions with input as repo(password("alice", []), "alice/app")
}

test_own_namespace_any_depth if {
	authz.allow == all_actions with input as repo(password("alice", []), "alice/a/b/c")
}

test_own_namespace_sourcehut if {
	authz.allow == all_actions with input as repo(sourcehut("alice", [], rw), "alice/app")
}

test_own_namespace_not_the_bare_name if {
	count(authz.allow) == 0 with input as repo(password("alice", []), "alice")
}

# Not a valid repository name, but the policy must not depend on that.
test_own_namespace_not_an_empty_rest if {
	count(authz.allow) == 0 with input as repo(password("alice", []), "alice/")
}

test_own_namespace_not_a_longer_name if {
	count(authz.allow) == 0 with input as repo(password("alice", []), "alicex/app")
}

test_cannot_push_to_someone_else if {
	count(authz.allow) == 0 with input as repo(password("alice", []), "bob/app")
}

test_anonymous_owns_nothing if {
	count(authz.allow) == 0 with input as repo(anonymous, "/app")
}

# A malformed identity claiming a subject without a method is not trusted.
test_anonymous_with_subject_owns_nothing if {
	count(authz.allow) == 0 with input as repo({"method": "anonymous", "subject": "alice"}, "alice/app")
}

test_empty_subject_owns_nothing if {
	count(authz.allow) == 0 with input as repo(password("", []), "/app")
}

test_missing_identity_gets_nothing if {
	count(authz.allow) == 0 with input as {"version": 1, "scope": {"type": "repository", "name": "alice/app", "actions": ["pull"]}}
}

# ---------------------------------------------------------------------------
# Shared namespaces.

test_namespace_member_by_subject if {
	authz.allow == {"pull"} with input as repo(password("bob", []), "team/app")
		with data.registry.namespaces as namespaces
}

test_namespace_push_without_pull if {
	authz.allow == {"push"} with input as repo(password("alice", []), "team/app")
		with data.registry.namespaces as namespaces
}

test_namespace_member_by_group if {
	authz.allow == {"pull"} with input as repo(password("carol", ["ci"]), "team/app")
		with data.registry.namespaces as namespaces
}

test_namespace_actions_add_up if {
	authz.allow == {"pull", "delete"} with input as repo(password("bob", ["ops"]), "team/app")
		with data.registry.namespaces as namespaces
}

test_namespace_any_depth if {
	authz.allow == {"pull"} with input as repo(password("bob", []), "team/a/b")
		with data.registry.namespaces as namespaces
}

test_namespace_not_the_bare_name if {
	count(authz.allow) == 0 with input as repo(password("bob", []), "team")
		with data.registry.namespaces as namespaces
}

test_namespace_not_an_empty_rest if {
	count(authz.allow) == 0 with input as repo(password("bob", []), "team/")
		with data.registry.namespaces as namespaces
}

test_namespace_not_a_longer_name if {
	count(authz.allow) == 0 with input as repo(password("bob", []), "teamx/app")
		with data.registry.namespaces as namespaces
}

test_namespace_non_member if {
	count(authz.allow) == 0 with input as repo(password("dave", ["other"]), "team/app")
		with data.registry.namespaces as namespaces
}

# "group:ci" names a group, not a user called "ci" ...
test_namespace_group_entry_is_not_a_subject if {
	count(authz.allow) == 0 with input as repo(password("ci", []), "team/app")
		with data.registry.namespaces as namespaces
}

# ... and a plain entry names a user, not a group.
test_namespace_subject_entry_is_not_a_group if {
	count(authz.allow) == 0 with input as repo(password("dave", ["bob"]), "team/app")
		with data.registry.namespaces as namespaces
}

# A user literally named "group:ci" (htpasswd and Sourcehut forbid it, but the
# policy must not depend on that) is not a member of group ci.
test_namespace_group_entry_never_matches_subject if {
	count(authz.allow) == 0 with input as repo(password("group:ci", []), "team/app")
		with data.registry.namespaces as namespaces
}

test_namespace_star_member_any_authenticated if {
	authz.allow == {"pull"} with input as repo(password("dave", []), "open/app")
		with data.registry.namespaces as namespaces
}

test_namespace_star_member_needs_a_subject if {
	count(authz.allow) == 0 with input as repo({"method": "password", "subject": null}, "open/app")
		with data.registry.namespaces as namespaces
	count(authz.allow) == 0 with input as repo({"method": "password"}, "open/app")
		with data.registry.namespaces as namespaces
}

test_namespace_star_member_never_anonymous if {
	count(authz.allow) == 0 with input as repo(anonymous, "open/app")
		with data.registry.namespaces as namespaces
}

test_namespace_star_action if {
	authz.allow == {"*"} with input as repo(password("erin", ["ops"]), "ops/app")
		with data.registry.namespaces as namespaces
}

test_namespace_and_own_namespace_combine if {
	authz.allow == all_actions with input as repo(password("team", []), "team/app")
		with data.registry.namespaces as namespaces
}

test_namespace_only_repositories if {
	count(authz.allow) == 0 with input as input_for(password("bob", []), "registry", "team/app", ["pull"])
		with data.registry.namespaces as namespaces
}

# ---------------------------------------------------------------------------
# Admins.

test_admin_any_repository if {
	authz.allow == {"*"} with input as repo(password("root", ["admins"]), "bob/app")
}

test_admin_own_namespace_too if {
	authz.allow == all_actions | {"*"} with input as repo(password("root", ["admins"]), "root/app")
}

test_admin_catalog if {
	authz.allow == {"*"} with input as catalog(password("root", ["ci", "admins"]))
}

test_non_admin_no_catalog if {
	count(authz.allow) == 0 with input as catalog(password("alice", ["ci"]))
		with data.registry.public as public
		with data.registry.namespaces as namespaces
}

test_anonymous_no_catalog if {
	count(authz.allow) == 0 with input as catalog(anonymous)
}

test_admin_other_registry_resource_nothing if {
	count(authz.allow) == 0 with input as input_for(password("root", ["admins"]), "registry", "other", ["*"])
}

test_admin_catalog_only_as_registry_type if {
	count(authz.allow) == 0 with input as input_for(password("root", ["admins"]), "foo", "catalog", ["*"])
}

test_anonymous_in_admins_is_not_admin if {
	count(authz.allow) == 0 with input as repo({"method": "anonymous", "subject": "", "groups": ["admins"]}, "bob/app")
}

# ---------------------------------------------------------------------------
# Other resource types get nothing, whoever asks.

test_unknown_type_with_class_nothing if {
	count(authz.allow) == 0 with input as input_for(password("root", ["admins"]), "repository(plugin)", "root/app", ["pull"])
		with data.registry.public as ["**"]
}

test_unknown_type_nothing if {
	count(authz.allow) == 0 with input as input_for(password("alice", ["admins"]), "foo", "alice/app", ["pull"])
		with data.registry.public as ["**"]
		with data.registry.namespaces as {"alice": {"pull": ["*"]}}
}

# ---------------------------------------------------------------------------
# The Sourcehut read-only cap.

test_sourcehut_ro_own_namespace_pull_only if {
	authz.allow == {"pull"} with input as repo(sourcehut("alice", [], ro), "alice/app")
}

test_sourcehut_ro_admin_pull_only if {
	authz.allow == {"pull"} with input as repo(sourcehut("root", ["admins"], ro), "bob/app")
}

test_sourcehut_ro_admin_no_catalog if {
	count(authz.allow) == 0 with input as catalog(sourcehut("root", ["admins"], ro))
}

test_sourcehut_ro_namespace_star_becomes_pull if {
	authz.allow == {"pull"} with input as repo(sourcehut("erin", ["ops"], ro), "ops/app")
		with data.registry.namespaces as namespaces
}

test_sourcehut_ro_push_only_member_gets_nothing if {
	count(authz.allow) == 0 with input as repo(sourcehut("alice", [], ro), "team/app")
		with data.registry.namespaces as namespaces
}

test_sourcehut_ro_public_pull if {
	authz.allow == {"pull"} with input as repo(sourcehut("alice", [], ro), "library/alpine")
		with data.registry.public as public
}

test_sourcehut_ro_nothing_where_nothing_granted if {
	count(authz.allow) == 0 with input as repo(sourcehut("alice", [], ro), "bob/app")
}

test_sourcehut_rw_for_other_service_is_read_only if {
	authz.allow == {"pull"} with input as repo(
		sourcehut("alice", [], [{"service": "other.example.com", "scope": "REGISTRY", "access": "RW"}]),
		"alice/app",
	)
}

test_sourcehut_rw_other_scope_is_read_only if {
	authz.allow == {"pull"} with input as repo(
		sourcehut("alice", [], [{"service": service, "scope": "PROFILE", "access": "RW"}]),
		"alice/app",
	)
}

test_sourcehut_no_grants_is_read_only if {
	authz.allow == {"pull"} with input as repo(sourcehut("alice", [], []), "alice/app")
}

test_sourcehut_missing_details_is_read_only if {
	authz.allow == {"pull"} with input as repo({"method": "sourcehut", "subject": "alice"}, "alice/app")
}

test_sourcehut_rw_among_others if {
	grants := [
		{"service": "meta.sr.ht", "scope": "PROFILE", "access": "RO"},
		{"service": service, "scope": "REGISTRY", "access": "RW"},
	]
	authz.allow == all_actions with input as repo(sourcehut("alice", [], grants), "alice/app")
}

test_sourcehut_rw_admin_full if {
	authz.allow == {"*"} with input as repo(sourcehut("root", ["admins"], rw), "bob/app")
}

test_sourcehut_all_grants_full if {
	authz.allow == all_actions with input as repo(sourcehut_all("alice", []), "alice/app")
}

test_sourcehut_all_grants_admin_catalog if {
	authz.allow == {"*"} with input as catalog(sourcehut_all("root", ["admins"]))
}

# The cap is about Sourcehut tokens only: a password user has no grants.
test_password_user_not_capped if {
	authz.allow == all_actions with input as repo(password("alice", []), "alice/app")
}

# ---------------------------------------------------------------------------
# Refresh tokens: the identity a refresh token stands for is judged as its
# login was. The read-only cap follows a Sourcehut token into its refresh
# tokens; a refreshed password user keeps the own-namespace rule.

test_refreshed_password_own_namespace if {
	authz.allow == all_actions with input as repo(refreshed(password("alice", [])), "alice/app")
}

test_refreshed_password_not_someone_else if {
	count(authz.allow) == 0 with input as repo(refreshed(password("alice", [])), "bob/app")
}

test_refreshed_password_admin_catalog if {
	authz.allow == {"*"} with input as catalog(refreshed(password("root", ["admins"])))
}

test_refreshed_password_namespace_member if {
	authz.allow == {"pull", "push"} with input as repo(refreshed(password("alice", [])), "team/app")
		with data.registry.namespaces as {"team": {"pull": ["alice"], "push": ["alice"]}}
}

test_refreshed_sourcehut_ro_own_namespace_pull_only if {
	authz.allow == {"pull"} with input as repo(refreshed(sourcehut("alice", [], ro)), "alice/app")
}

test_refreshed_sourcehut_ro_admin_pull_only if {
	authz.allow == {"pull"} with input as repo(refreshed(sourcehut("root", ["admins"], ro)), "bob/app")
}

test_refreshed_sourcehut_ro_admin_no_catalog if {
	count(authz.allow) == 0 with input as catalog(refreshed(sourcehut("root", ["admins"], ro)))
}

test_refreshed_sourcehut_rw_own_namespace if {
	authz.allow == all_actions with input as repo(refreshed(sourcehut("alice", [], rw)), "alice/app")
}

test_refreshed_sourcehut_all_grants_full if {
	authz.allow == all_actions with input as repo(refreshed(sourcehut_all("alice", [])), "alice/app")
}

test_refreshed_anonymous_public_pull_only if {
	authz.allow == {"pull"} with input as repo(refreshed(password("alice", [])), "library/alpine")
		with data.registry.public as public
}

# Fail closed: a refresh identity that does not say what it came from, or
# names something else, is capped to pull.
test_refresh_without_refreshed_from_is_read_only if {
	authz.allow == {"pull"} with input as repo({"method": "refresh", "subject": "alice", "groups": []}, "alice/app")
}

test_refresh_from_unknown_method_is_read_only if {
	authz.allow == {"pull"} with input as repo(
		{"method": "refresh", "refreshed_from": "refresh", "subject": "alice", "groups": []},
		"alice/app",
	)
}

# refreshed_from means nothing without method refresh: a password login
# that claims it is still a password login.
test_refreshed_from_ignored_without_refresh if {
	authz.allow == all_actions with input as repo(object.union(password("alice", []), {"refreshed_from": "sourcehut"}), "alice/app")
}

test_effective_method if {
	authz.effective_method == "sourcehut" with input as repo(refreshed(sourcehut("alice", [], rw)), "alice/app")
	authz.effective_method == "password" with input as repo(refreshed(password("alice", [])), "alice/app")
	authz.effective_method == "password" with input as repo(password("alice", []), "alice/app")
	authz.effective_method == "refresh" with input as repo({"method": "refresh", "subject": "alice"}, "alice/app")
}

# ---------------------------------------------------------------------------
# deny.

test_deny_empty_for_version_1 if {
	count(authz.deny) == 0 with input as repo(anonymous, "library/alpine")
}

test_deny_version_2 if {
	authz.deny == {"unsupported input version"} with input as object.union(repo(anonymous, "library/alpine"), {"version": 2})
}

test_deny_missing_version if {
	count(authz.deny) > 0 with input as object.remove(repo(anonymous, "library/alpine"), ["version"])
}
