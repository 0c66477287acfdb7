# Tests for the teams bundle, run against the bundle's own data.json:
# `opa test -b bundles/teams/`.
#
# data.json holds
#   groups:     admins [root], backend [alice, bob], frontend [carol],
#               release [release-bot]
#   namespaces: backend:  pull [group:backend, group:frontend],
#                         push [group:backend], delete [alice]
#               frontend: pull ["*"], push [group:frontend, group:release],
#                         delete [group:frontend]
#               releases: pull ["*"], "*" [group:release]
#   public:     ["releases/*"]
#
# Other data is mocked one key at a time (with data.registry.groups as ...),
# never data.registry whole: that would replace this package too.
package registry.authz_test

import data.registry.authz

# ---------------------------------------------------------------------------
# Fixtures.

service := "registry.example.com"

anonymous := {"method": "anonymous", "subject": "", "groups": []}

# groups here are the server's (input.identity.groups), not data.json's.
password(subject, groups) := {"method": "password", "subject": subject, "groups": groups}

sourcehut(username, groups, access) := {
	"method": "sourcehut",
	"subject": username,
	"groups": groups,
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
# Group membership: data.json OR the server.

test_groups_from_data if {
	authz.groups == {"backend"} with input as repo(password("alice", []), "x/y")
}

test_groups_from_server_and_data_add_up if {
	authz.groups == {"backend", "ci"} with input as repo(password("bob", ["ci"]), "x/y")
}

test_groups_from_server_only if {
	authz.groups == {"frontend"} with input as repo(password("dave", ["frontend"]), "x/y")
}

test_anonymous_has_no_groups if {
	count(authz.groups) == 0 with input as repo({"method": "anonymous", "subject": "", "groups": ["admins"]}, "x/y")
}

# An anonymous identity carrying a name listed in data.json is still nobody.
test_anonymous_named_like_a_member_has_no_groups if {
	count(authz.groups) == 0 with input as repo({"method": "anonymous", "subject": "root", "groups": []}, "x/y")
}

test_no_group_data if {
	count(authz.groups) == 0 with input as repo(password("alice", []), "x/y")
		with data.registry.groups as {}
}

# A malformed group (not a list) gives nobody membership, and no error.
test_malformed_group_ignored if {
	count(authz.groups) == 0 with input as repo(password("alice", []), "x/y")
		with data.registry.groups as {"backend": "alice"}
}

# ---------------------------------------------------------------------------
# Namespaces with data.json's groups.

test_backend_member_with_delete if {
	authz.allow == all_actions with input as repo(password("alice", []), "backend/api")
}

test_backend_member if {
	authz.allow == {"pull", "push"} with input as repo(password("bob", []), "backend/api")
}

test_frontend_member_pulls_backend if {
	authz.allow == {"pull"} with input as repo(password("carol", []), "backend/api")
}

test_outsider_nothing_on_backend if {
	count(authz.allow) == 0 with input as repo(password("dave", []), "backend/api")
}

test_server_group_counts_too if {
	authz.allow == {"pull", "push"} with input as repo(password("dave", ["backend"]), "backend/api")
}

test_membership_gone_without_group_data if {
	count(authz.allow) == 0 with input as repo(password("carol", []), "backend/api")
		with data.registry.groups as {}
}

test_frontend_open_pull if {
	authz.allow == {"pull"} with input as repo(password("dave", []), "frontend/web")
}

test_frontend_open_pull_not_anonymous if {
	count(authz.allow) == 0 with input as repo(anonymous, "frontend/web")
}

test_frontend_member if {
	authz.allow == all_actions with input as repo(password("carol", []), "frontend/web")
}

test_release_bot_pushes_frontend if {
	authz.allow == {"pull", "push"} with input as repo(password("release-bot", []), "frontend/web")
}

test_release_group_star_action if {
	authz.allow == {"pull", "*"} with input as repo(password("release-bot", []), "releases/app")
}

test_namespace_any_depth if {
	authz.allow == {"pull", "push"} with input as repo(password("bob", []), "backend/a/b/c")
}

test_namespace_not_the_bare_name if {
	count(authz.allow) == 0 with input as repo(password("bob", []), "backend")
}

test_namespace_not_a_longer_name if {
	count(authz.allow) == 0 with input as repo(password("bob", []), "backendx/api")
}

# "group:backend" is a group entry: it never matches a user of that name.
test_group_entry_is_not_a_user if {
	count(authz.allow) == 0 with input as repo(password("group:backend", []), "backend/api")
}

# A plain entry names a user, not a group.
test_user_entry_is_not_a_group if {
	count(authz.allow) == 0 with input as repo(password("dave", ["alice"]), "backend/api")
		with data.registry.namespaces as {"backend": {"delete": ["alice"]}}
}

# As in the default policy, a user whose name is a namespace owns it: do not
# let anyone register a user named after a team.
test_user_named_like_a_team_owns_it if {
	authz.allow == all_actions with input as repo(password("backend", []), "backend/api")
}

test_namespaces_only_repositories if {
	count(authz.allow) == 0 with input as input_for(password("alice", []), "registry", "backend/api", ["pull"])
}

# ---------------------------------------------------------------------------
# Public and own namespaces.

test_public_anonymous_pull if {
	authz.allow == {"pull"} with input as repo(anonymous, "releases/app")
}

test_public_one_level if {
	count(authz.allow) == 0 with input as repo(anonymous, "releases/app/extra")
}

test_public_none_without_data if {
	count(authz.allow) == 0 with input as repo(anonymous, "releases/app")
		with data.registry.public as []
}

test_own_namespace if {
	authz.allow == all_actions with input as repo(password("dave", []), "dave/app")
}

test_own_namespace_not_someone_elses if {
	count(authz.allow) == 0 with input as repo(password("dave", []), "erin/app")
}

test_anonymous_owns_nothing if {
	count(authz.allow) == 0 with input as repo(anonymous, "/app")
}

# ---------------------------------------------------------------------------
# Admins, from data.json or from the server.

test_admin_from_data if {
	authz.allow == {"*"} with input as repo(password("root", []), "bob/app")
}

test_admin_from_data_catalog if {
	authz.allow == {"*"} with input as catalog(password("root", []))
}

test_admin_from_server if {
	authz.allow == {"*"} with input as catalog(password("dave", ["admins"]))
}

test_non_admin_no_catalog if {
	count(authz.allow) == 0 with input as catalog(password("alice", ["ci"]))
}

test_anonymous_named_root_is_not_admin if {
	count(authz.allow) == 0 with input as catalog({"method": "anonymous", "subject": "root", "groups": []})
	count(authz.allow) == 0 with input as repo({"method": "anonymous", "subject": "root", "groups": []}, "bob/app")
}

test_admin_not_other_resource_types if {
	count(authz.allow) == 0 with input as input_for(password("root", []), "foo", "bob/app", ["pull"])
	count(authz.allow) == 0 with input as input_for(password("root", []), "registry", "other", ["*"])
}

# ---------------------------------------------------------------------------
# The Sourcehut read-only cap.

test_sourcehut_rw_member if {
	authz.allow == {"pull", "push"} with input as repo(sourcehut("bob", [], "RW"), "backend/api")
}

test_sourcehut_ro_member_pull_only if {
	authz.allow == {"pull"} with input as repo(sourcehut("alice", [], "RO"), "backend/api")
}

test_sourcehut_ro_push_only_member_nothing if {
	count(authz.allow) == 0 with input as repo(sourcehut("bob", [], "RO"), "x/app")
		with data.registry.namespaces as {"x": {"push": ["bob"]}}
}

test_sourcehut_ro_star_action_becomes_pull if {
	authz.allow == {"pull"} with input as repo(sourcehut("release-bot", [], "RO"), "releases/app")
}

test_sourcehut_ro_admin_pull_only if {
	authz.allow == {"pull"} with input as repo(sourcehut("root", [], "RO"), "bob/app")
}

test_sourcehut_ro_admin_no_catalog if {
	count(authz.allow) == 0 with input as catalog(sourcehut("root", [], "RO"))
}

test_sourcehut_rw_admin_catalog if {
	authz.allow == {"*"} with input as catalog(sourcehut("root", [], "RW"))
}

test_sourcehut_without_details_is_read_only if {
	authz.allow == {"pull"} with input as repo({"method": "sourcehut", "subject": "alice", "groups": []}, "alice/app")
}

test_password_user_not_capped if {
	authz.allow == all_actions with input as repo(password("alice", []), "alice/app")
}

# ---------------------------------------------------------------------------
# Refresh tokens are judged as the login they were issued at.

test_refreshed_password_member if {
	authz.allow == {"pull", "push"} with input as repo(refreshed(password("bob", [])), "backend/api")
}

test_refreshed_password_own_namespace if {
	authz.allow == all_actions with input as repo(refreshed(password("alice", [])), "alice/app")
}

test_refreshed_sourcehut_rw_member if {
	authz.allow == {"pull", "push"} with input as repo(refreshed(sourcehut("bob", [], "RW")), "backend/api")
}

test_refreshed_sourcehut_ro_member_pull_only if {
	authz.allow == {"pull"} with input as repo(refreshed(sourcehut("alice", [], "RO")), "backend/api")
}

test_refreshed_sourcehut_ro_own_namespace_pull_only if {
	authz.allow == {"pull"} with input as repo(refreshed(sourcehut("alice", [], "RO")), "alice/app")
}

test_refreshed_sourcehut_ro_admin_no_catalog if {
	count(authz.allow) == 0 with input as catalog(refreshed(sourcehut("root", [], "RO")))
}

test_refresh_without_refreshed_from_is_read_only if {
	authz.allow == {"pull"} with input as repo({"method": "refresh", "subject": "alice", "groups": []}, "alice/app")
}

# ---------------------------------------------------------------------------
# deny.

test_no_deny_for_version_1 if {
	count(authz.deny) == 0 with input as repo(password("alice", []), "backend/api")
}

test_deny_other_versions if {
	authz.deny == {"unsupported input version"} with input as object.union(repo(anonymous, "releases/app"), {"version": 2})
	count(authz.deny) > 0 with input as object.remove(repo(anonymous, "releases/app"), ["version"])
}
