# Tests for the public-mirror bundle, run against the bundle's own data.json:
# `opa test -b bundles/public-mirror/`.
#
# data.json holds
#   mirror:         ["mirror/**"]
#   mirror_pushers: ["mirror-bot"]
#
# Other data is mocked one key at a time (with data.registry.mirror as ...),
# never data.registry whole: that would replace this package too.
package registry.authz_test

import data.registry.authz

# ---------------------------------------------------------------------------
# Fixtures.

service := "registry.example.com"

anonymous := {"method": "anonymous", "subject": "", "groups": []}

password(subject, groups) := {"method": "password", "subject": subject, "groups": groups}

sourcehut_token(username, groups, all_grants, access, grants) := {
	"method": "sourcehut",
	"subject": username,
	"groups": groups,
	"sourcehut": {
		"username": username,
		"client_id": "",
		"expires": "2030-01-01T00:00:00Z",
		"all_grants": all_grants,
		"access": access,
		"grants": grants,
	},
}

# A builds.sr.ht job token: oauth: registry.example.com/REGISTRY:RW.
build_rw(username) := sourcehut_token(username, [], false, "RW", [{"service": service, "scope": "REGISTRY", "access": "RW"}])

build_ro(username) := sourcehut_token(username, [], false, "RO", [{"service": service, "scope": "REGISTRY", "access": "RO"}])

# A personal access token with every grant.
personal(username, groups) := sourcehut_token(username, groups, true, "RW", [])

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

mirrored := "mirror/docker.io/library/alpine"

# ---------------------------------------------------------------------------
# Pulling the mirror.

test_mirror_anonymous_pull if {
	authz.allow == {"pull"} with input as repo(anonymous, mirrored)
}

test_mirror_any_depth if {
	authz.allow == {"pull"} with input as repo(anonymous, "mirror/alpine")
}

test_mirror_not_the_prefix_itself if {
	count(authz.allow) == 0 with input as repo(anonymous, "mirror")
}

test_mirror_not_a_longer_name if {
	count(authz.allow) == 0 with input as repo(anonymous, "mirrors/alpine")
}

test_mirror_only_repositories if {
	count(authz.allow) == 0 with input as input_for(anonymous, "registry", mirrored, ["pull"])
}

test_no_mirror_without_data if {
	count(authz.allow) == 0 with input as repo(anonymous, mirrored)
		with data.registry.mirror as []
}

test_mirror_patterns_configurable if {
	authz.allow == {"pull"} with input as repo(anonymous, "cache/alpine")
		with data.registry.mirror as ["cache/*"]
	count(authz.allow) == 0 with input as repo(anonymous, "cache/a/b")
		with data.registry.mirror as ["cache/*"]
	count(authz.allow) == 0 with input as repo(anonymous, mirrored)
		with data.registry.mirror as ["cache/*"]
}

# ---------------------------------------------------------------------------
# Pushing to the mirror: listed CI identities only.

test_listed_build_token_pushes if {
	authz.allow == {"pull", "push"} with input as repo(build_rw("mirror-bot"), mirrored)
}

test_unlisted_build_token_does_not_push if {
	authz.allow == {"pull"} with input as repo(build_rw("alice"), mirrored)
}

test_star_lets_any_build_token_push if {
	authz.allow == {"pull", "push"} with input as repo(build_rw("alice"), mirrored)
		with data.registry.mirror_pushers as ["*"]
}

test_empty_pushers_nobody_pushes if {
	authz.allow == {"pull"} with input as repo(build_rw("mirror-bot"), mirrored)
		with data.registry.mirror_pushers as []
}

test_read_only_build_token_does_not_push if {
	authz.allow == {"pull"} with input as repo(build_ro("mirror-bot"), mirrored)
}

test_personal_token_is_not_ci if {
	authz.allow == {"pull"} with input as repo(personal("mirror-bot", []), mirrored)
}

test_password_user_is_not_ci if {
	authz.allow == {"pull"} with input as repo(password("mirror-bot", []), mirrored)
}

test_anonymous_does_not_push if {
	authz.allow == {"pull"} with input as repo(anonymous, mirrored)
}

test_sourcehut_without_details_is_not_ci if {
	authz.allow == {"pull"} with input as repo({"method": "sourcehut", "subject": "mirror-bot", "groups": []}, mirrored)
}

test_build_token_with_empty_name_is_not_ci if {
	authz.allow == {"pull"} with input as repo(build_rw(""), mirrored)
		with data.registry.mirror_pushers as ["*"]
}

test_admins_do_not_push_but_delete if {
	authz.allow == {"pull", "delete"} with input as repo(password("root", ["admins"]), mirrored)
	authz.allow == {"pull", "delete"} with input as repo(personal("root", ["admins"]), mirrored)
}

test_read_only_admin_only_pulls_mirror if {
	id := sourcehut_token("root", ["admins"], false, "RO", [{"service": service, "scope": "REGISTRY", "access": "RO"}])
	authz.allow == {"pull"} with input as repo(id, mirrored)
}

# No one owns the mirror as a namespace, not even a user named "mirror".
test_user_named_mirror_does_not_own_it if {
	authz.allow == {"pull"} with input as repo(password("mirror", []), mirrored)
	authz.allow == {"pull"} with input as repo(personal("mirror", []), mirrored)
}

# ---------------------------------------------------------------------------
# Outside the mirror: the default rules.

test_own_namespace if {
	authz.allow == all_actions with input as repo(password("alice", []), "alice/app")
}

test_own_namespace_build_token if {
	authz.allow == all_actions with input as repo(build_rw("alice"), "alice/app")
}

test_own_namespace_personal_token if {
	authz.allow == all_actions with input as repo(personal("alice", []), "alice/app")
}

test_own_namespace_read_only_token if {
	authz.allow == {"pull"} with input as repo(build_ro("alice"), "alice/app")
}

test_own_namespace_not_the_bare_name if {
	count(authz.allow) == 0 with input as repo(password("alice", []), "alice")
}

test_mirror_pusher_has_no_rights_elsewhere if {
	count(authz.allow) == 0 with input as repo(build_rw("mirror-bot"), "alice/app")
}

test_someone_elses_namespace_nothing if {
	count(authz.allow) == 0 with input as repo(password("alice", []), "bob/app")
}

test_anonymous_nothing_outside_the_mirror if {
	count(authz.allow) == 0 with input as repo(anonymous, "alice/app")
	count(authz.allow) == 0 with input as repo(anonymous, "/app")
}

test_admin_any_other_repository if {
	authz.allow == {"*"} with input as repo(password("root", ["admins"]), "bob/app")
}

test_admin_catalog if {
	authz.allow == {"*"} with input as catalog(password("root", ["admins"]))
}

test_non_admin_no_catalog if {
	count(authz.allow) == 0 with input as catalog(build_rw("mirror-bot"))
	count(authz.allow) == 0 with input as catalog(anonymous)
}

test_read_only_admin_no_catalog if {
	id := sourcehut_token("root", ["admins"], false, "RO", [{"service": service, "scope": "REGISTRY", "access": "RO"}])
	count(authz.allow) == 0 with input as catalog(id)
}

test_anonymous_in_admins_is_not_admin if {
	count(authz.allow) == 0 with input as repo({"method": "anonymous", "subject": "", "groups": ["admins"]}, "bob/app")
}

test_other_resource_types_nothing if {
	count(authz.allow) == 0 with input as input_for(password("root", ["admins"]), "foo", "bob/app", ["pull"])
}

# ---------------------------------------------------------------------------
# Refresh tokens are judged as the login they were issued at: a CI token's
# refresh token is still CI, a read-only one still read-only.

test_refreshed_build_token_pushes if {
	authz.allow == {"pull", "push"} with input as repo(refreshed(build_rw("mirror-bot")), mirrored)
		with data.registry.mirror_pushers as ["mirror-bot"]
}

test_refreshed_read_only_build_token_does_not_push if {
	authz.allow == {"pull"} with input as repo(refreshed(build_ro("mirror-bot")), mirrored)
}

test_refreshed_read_only_build_token_own_namespace_pull_only if {
	authz.allow == {"pull"} with input as repo(refreshed(build_ro("alice")), "alice/app")
}

test_refreshed_password_user_is_not_ci if {
	authz.allow == {"pull"} with input as repo(refreshed(password("mirror-bot", [])), mirrored)
}

test_refreshed_password_own_namespace if {
	authz.allow == all_actions with input as repo(refreshed(password("alice", [])), "alice/app")
}

test_refresh_without_refreshed_from_is_read_only if {
	authz.allow == {"pull"} with input as repo({"method": "refresh", "subject": "alice", "groups": []}, "alice/app")
}

# ---------------------------------------------------------------------------
# deny.

test_no_deny_for_version_1 if {
	count(authz.deny) == 0 with input as repo(build_rw("mirror-bot"), mirrored)
}

test_deny_other_versions if {
	authz.deny == {"unsupported input version"} with input as object.union(repo(anonymous, mirrored), {"version": 2})
}
