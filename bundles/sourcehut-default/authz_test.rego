# Tests for the sourcehut-default bundle, run against the bundle's own
# data.json: `opa test -b bundles/sourcehut-default/`.
#
# data.json holds
#   public:     ["library/*"]
#   namespaces: team: pull ["*"], push ["alice", "group:ci"], delete ["alice"]
#               ops:  "*" ["group:ops"]
#
# Where a test needs other data it mocks one key at a time
# (with data.registry.public as ...): data.registry also holds this package,
# so mocking data.registry whole would replace the policy.
package registry.authz_test

import data.registry.authz

# ---------------------------------------------------------------------------
# Fixtures.

service := "registry.example.com"

anonymous := {"method": "anonymous", "subject": "", "groups": []}

password(subject, groups) := {"method": "password", "subject": subject, "groups": groups}

# A Sourcehut identity whose token holds the given grants.
sourcehut(username, groups, access, grants) := {
	"method": "sourcehut",
	"subject": username,
	"groups": groups,
	"sourcehut": {
		"username": username,
		"client_id": "",
		"expires": "2030-01-01T00:00:00Z",
		"all_grants": false,
		"access": access,
		"grants": grants,
	},
}

# A personal access token: empty grant string, all access.
personal(username, groups) := {
	"method": "sourcehut",
	"subject": username,
	"groups": groups,
	"sourcehut": {
		"username": username,
		"client_id": "",
		"expires": "2030-01-01T00:00:00Z",
		"all_grants": true,
		"access": "RW",
		"grants": [],
	},
}

build_rw(username, groups) := sourcehut(username, groups, "RW", [{"service": service, "scope": "REGISTRY", "access": "RW"}])

build_ro(username, groups) := sourcehut(username, groups, "RO", [{"service": service, "scope": "REGISTRY", "access": "RO"}])

# The identity a refresh token issued at the login `identity` stands for.
refreshed(identity) := object.union(identity, {"method": "refresh", "refreshed_from": identity.method})

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
# The bundle's data.json is what the tests see.

test_data_json_loaded if {
	data.registry.public == ["library/*"]
	data.registry.namespaces.team.push == ["alice", "group:ci"]
}

# ---------------------------------------------------------------------------
# public: ["library/*"].

test_public_anonymous_pull if {
	authz.allow == {"pull"} with input as repo(anonymous, "library/alpine")
}

test_public_authenticated_pull_only if {
	authz.allow == {"pull"} with input as repo(password("bob", []), "library/alpine")
}

test_public_one_level_only if {
	count(authz.allow) == 0 with input as repo(anonymous, "library/alpine/extra")
}

test_public_not_the_prefix_itself if {
	count(authz.allow) == 0 with input as repo(anonymous, "library")
}

test_public_other_names_nothing if {
	count(authz.allow) == 0 with input as repo(anonymous, "private/app")
}

test_public_only_repositories if {
	count(authz.allow) == 0 with input as input_for(anonymous, "registry", "library/alpine", ["pull"])
}

test_public_none_without_data if {
	count(authz.allow) == 0 with input as repo(anonymous, "library/alpine")
		with data.registry.public as []
}

test_public_double_star if {
	authz.allow == {"pull"} with input as repo(anonymous, "mirror/docker.io/library/alpine")
		with data.registry.public as ["mirror/**"]
}

# ---------------------------------------------------------------------------
# Own namespace.

test_own_namespace_password if {
	authz.allow == all_actions with input as repo(password("alice", []), "alice/app")
}

test_own_namespace_sourcehut_rw if {
	authz.allow == all_actions with input as repo(build_rw("alice", []), "alice/app")
}

test_own_namespace_any_depth if {
	authz.allow == all_actions with input as repo(password("alice", []), "alice/a/b")
}

test_own_namespace_not_the_bare_name if {
	count(authz.allow) == 0 with input as repo(password("alice", []), "alice")
}

test_own_namespace_not_a_longer_name if {
	count(authz.allow) == 0 with input as repo(password("alice", []), "alicex/app")
}

test_someone_elses_namespace_nothing if {
	count(authz.allow) == 0 with input as repo(password("alice", []), "bob/app")
}

test_anonymous_owns_nothing if {
	count(authz.allow) == 0 with input as repo(anonymous, "/app")
}

test_anonymous_with_a_subject_owns_nothing if {
	count(authz.allow) == 0 with input as repo({"method": "anonymous", "subject": "alice", "groups": []}, "alice/app")
}

# ---------------------------------------------------------------------------
# namespaces from data.json.

test_namespace_star_member_any_authenticated if {
	authz.allow == {"pull"} with input as repo(password("dave", []), "team/app")
}

test_namespace_star_member_not_anonymous if {
	count(authz.allow) == 0 with input as repo(anonymous, "team/app")
}

test_namespace_listed_subject if {
	authz.allow == all_actions with input as repo(password("alice", []), "team/app")
}

test_namespace_group_member if {
	authz.allow == {"pull", "push"} with input as repo(password("bot", ["ci"]), "team/app")
}

test_namespace_group_entry_is_not_a_user if {
	authz.allow == {"pull"} with input as repo(password("ci", []), "team/app")
}

test_namespace_not_the_bare_name if {
	count(authz.allow) == 0 with input as repo(password("alice", []), "team")
}

test_namespace_not_a_longer_name if {
	count(authz.allow) == 0 with input as repo(password("alice", []), "teamx/app")
}

test_namespace_star_action if {
	authz.allow == {"*"} with input as repo(password("erin", ["ops"]), "ops/app")
}

test_namespace_star_action_non_member if {
	count(authz.allow) == 0 with input as repo(password("erin", ["ci"]), "ops/app")
}

test_namespace_only_repositories if {
	count(authz.allow) == 0 with input as input_for(password("alice", []), "registry", "team/app", ["pull"])
}

test_namespaces_none_without_data if {
	count(authz.allow) == 0 with input as repo(password("dave", []), "team/app")
		with data.registry.namespaces as {}
}

# ---------------------------------------------------------------------------
# Admins.

test_admin_any_repository if {
	authz.allow == {"*"} with input as repo(password("root", ["admins"]), "bob/app")
}

test_admin_catalog if {
	authz.allow == {"*"} with input as catalog(password("root", ["admins"]))
}

test_non_admin_no_catalog if {
	count(authz.allow) == 0 with input as catalog(password("alice", ["ci", "ops"]))
}

test_anonymous_in_admins_is_not_admin if {
	count(authz.allow) == 0 with input as repo({"method": "anonymous", "subject": "", "groups": ["admins"]}, "bob/app")
}

test_admin_not_other_registry_resources if {
	count(authz.allow) == 0 with input as input_for(password("root", ["admins"]), "registry", "other", ["*"])
}

test_unknown_type_nothing if {
	count(authz.allow) == 0 with input as input_for(password("root", ["admins"]), "foo", "root/app", ["pull"])
}

# ---------------------------------------------------------------------------
# The Sourcehut read-only cap.

test_sourcehut_ro_own_namespace_pull_only if {
	authz.allow == {"pull"} with input as repo(build_ro("alice", []), "alice/app")
}

test_sourcehut_ro_namespace_push_member_gets_pull if {
	authz.allow == {"pull"} with input as repo(build_ro("alice", []), "team/app")
}

test_sourcehut_ro_admin_pull_only if {
	authz.allow == {"pull"} with input as repo(build_ro("root", ["admins"]), "bob/app")
}

test_sourcehut_ro_admin_no_catalog if {
	count(authz.allow) == 0 with input as catalog(build_ro("root", ["admins"]))
}

test_sourcehut_ro_public_pull if {
	authz.allow == {"pull"} with input as repo(build_ro("bob", []), "library/alpine")
}

test_sourcehut_rw_for_another_registry_is_read_only if {
	id := sourcehut("alice", [], "RO", [{"service": "other.example.com", "scope": "REGISTRY", "access": "RW"}])
	authz.allow == {"pull"} with input as repo(id, "alice/app")
}

test_sourcehut_personal_token_full if {
	authz.allow == all_actions with input as repo(personal("alice", []), "alice/app")
}

test_sourcehut_personal_token_admin_catalog if {
	authz.allow == {"*"} with input as catalog(personal("root", ["admins"]))
}

test_sourcehut_rw_ci_group_pushes_to_team if {
	authz.allow == {"pull", "push"} with input as repo(build_rw("bot", ["ci"]), "team/app")
}

# ---------------------------------------------------------------------------
# Refresh tokens are judged as the login they were issued at.

test_refreshed_password_own_namespace if {
	authz.allow == all_actions with input as repo(refreshed(password("alice", [])), "alice/app")
}

test_refreshed_password_not_someone_else if {
	count(authz.allow) == 0 with input as repo(refreshed(password("alice", [])), "bob/app")
}

test_refreshed_sourcehut_ro_own_namespace_pull_only if {
	authz.allow == {"pull"} with input as repo(refreshed(build_ro("alice", [])), "alice/app")
}

test_refreshed_sourcehut_ro_admin_pull_only if {
	authz.allow == {"pull"} with input as repo(refreshed(build_ro("root", ["admins"])), "bob/app")
}

test_refreshed_sourcehut_ro_admin_no_catalog if {
	count(authz.allow) == 0 with input as catalog(refreshed(build_ro("root", ["admins"])))
}

test_refreshed_sourcehut_rw_own_namespace if {
	authz.allow == all_actions with input as repo(refreshed(build_rw("alice", [])), "alice/app")
}

test_refresh_without_refreshed_from_is_read_only if {
	authz.allow == {"pull"} with input as repo({"method": "refresh", "subject": "alice", "groups": []}, "alice/app")
}

# ---------------------------------------------------------------------------
# deny.

test_no_deny_for_version_1 if {
	count(authz.deny) == 0 with input as repo(password("alice", []), "alice/app")
}

test_deny_other_versions if {
	authz.deny == {"unsupported input version"} with input as object.union(repo(anonymous, "library/alpine"), {"version": 2})
}
