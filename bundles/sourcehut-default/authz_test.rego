# Tests for the sourcehut-default bundle, run against the bundle's own
# data.json: `opa test -b bundles/sourcehut-default/`.
#
# data.json holds
#   public:     ["library/*"]
#   namespaces: team: pull ["*"],
#                     push ["htpasswd:alice", "sourcehut:carol", "group:ci"],
#                     delete ["htpasswd:alice"]
#               ops:  "*" ["group:ops"]
#   reserved:   ["admin", "v2"]
#   oidc:       github, repository_owner octo-org, ref refs/heads/main or
#               refs/tags/v*: pull, push on {repository} and {repository}/*;
#               github, repository_owner octo-org, event_name pull_request:
#               pull there
#
# Where a test needs other data it mocks one key at a time
# (with data.registry.public as ...): data.registry also holds this package,
# so mocking data.registry whole would replace the policy.
package registry.authz_test

import data.registry.authz

# ---------------------------------------------------------------------------
# Fixtures: input version 2. Each login's identity owns the namespace named
# like its subject, as the server says for an htpasswd user, and for a
# Sourcehut user no htpasswd user shares a name with.

service := "registry.example.com"

anonymous := {"method": "anonymous", "subject": "", "groups": []}

password(subject, groups) := {
	"method": "password",
	"provider": "htpasswd",
	"subject": subject,
	"namespace": subject,
	"groups": groups,
}

# A Sourcehut identity whose token holds the given grants.
sourcehut(username, groups, access, grants) := {
	"method": "sourcehut",
	"provider": "sourcehut",
	"subject": username,
	"namespace": username,
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
	"provider": "sourcehut",
	"subject": username,
	"namespace": username,
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

# The identity a refresh token issued at the login `identity` stands for: it
# keeps the login's provider, namespace, groups and identity.sourcehut.
refreshed(identity) := object.union(identity, {"method": "refresh", "refreshed_from": identity.method})

# The same identity as the server sends it when it owns no namespace (a
# Sourcehut user whose name an htpasswd user holds, say).
no_namespace(identity) := object.remove(identity, ["namespace"])

input_for(identity, type, name, actions) := {
	"version": 2,
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
	data.registry.namespaces.team.push == ["htpasswd:alice", "sourcehut:carol", "group:ci"]
	data.registry.reserved == ["admin", "v2"]
	count(data.registry.oidc) == 2
}

# Every member in data.json is a principal, "group:<g>" or "*": a bare name
# would match nobody.
test_data_json_members_are_qualified if {
	every _, acl in data.registry.namespaces {
		every _, members in acl {
			every m in members {
				qualified(m)
			}
		}
	}
}

qualified(m) if m == "*"

qualified(m) if {
	[kind, name] := split(m, ":")
	kind != ""
	name != ""
}

# ---------------------------------------------------------------------------
# Who is authenticated, and as whom.

test_principal_is_provider_and_subject if {
	authz.principal == "htpasswd:alice" with input as repo(password("alice", []), "x/y")
	authz.principal == "sourcehut:alice" with input as repo(personal("alice", []), "x/y")
	authz.principal == "sourcehut:alice" with input as repo(refreshed(build_rw("alice", [])), "x/y")
}

test_anonymous_has_no_principal if {
	not authz.principal with input as repo(anonymous, "x/y")
}

# A login without a provider is nobody, whatever else it says.
test_no_provider_is_not_authenticated if {
	id := object.remove(password("root", ["admins"]), ["provider"])
	not authz.authenticated with input as repo(id, "root/app")
	count(authz.allow) == 0 with input as repo(id, "root/app")
	count(authz.allow) == 0 with input as catalog(id)
	count(authz.allow) == 0 with input as repo(object.union(id, {"provider": ""}), "root/app")
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
# Own namespace: identity.namespace, never identity.subject.

test_own_namespace_password if {
	authz.allow == all_actions with input as repo(password("alice", []), "alice/app")
}

test_own_namespace_sourcehut_rw if {
	authz.allow == all_actions with input as repo(build_rw("dave", []), "dave/app")
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

# A subject without a namespace owns nothing: the Sourcehut user alice,
# when the htpasswd user alice holds that name, gets nothing on alice/*.
test_subject_without_namespace_owns_nothing if {
	count(authz.allow) == 0 with input as repo(no_namespace(personal("alice", [])), "alice/app")
	count(authz.allow) == 0 with input as repo(no_namespace(password("alice", [])), "alice/app")
	count(authz.allow) == 0 with input as repo(no_namespace(refreshed(build_rw("alice", []))), "alice/app")
}

# The namespace is what the server says, not the subject.
test_namespace_not_subject_decides if {
	id := object.union(password("alice", []), {"namespace": "al"})
	authz.allow == all_actions with input as repo(id, "al/app")
	count(authz.allow) == 0 with input as repo(id, "alice/app")
}

test_empty_namespace_owns_nothing if {
	id := object.union(password("alice", []), {"namespace": ""})
	count(authz.allow) == 0 with input as repo(id, "/app")
	count(authz.allow) == 0 with input as repo(id, "alice/app")
}

test_anonymous_owns_nothing if {
	count(authz.allow) == 0 with input as repo(anonymous, "/app")
}

test_anonymous_with_a_subject_owns_nothing if {
	id := {"method": "anonymous", "subject": "alice", "namespace": "alice", "groups": []}
	count(authz.allow) == 0 with input as repo(id, "alice/app")
}

# ---------------------------------------------------------------------------
# Site configuration beats ownership.

# A Sourcehut account named like a shared namespace gets the namespace's ACL
# ("*" may pull), no more; nor does an htpasswd user of that name.
test_sourcehut_named_like_shared_namespace_no_push if {
	authz.allow == {"pull"} with input as repo(personal("team", []), "team/app")
	authz.allow == {"pull"} with input as repo(build_rw("team", []), "team/app")
	authz.allow == {"pull"} with input as repo(refreshed(personal("team", [])), "team/app")
	authz.allow == {"pull"} with input as repo(password("team", []), "team/app")
	count(authz.allow) == 0 with input as repo(personal("ops", []), "ops/app")
}

test_shared_namespace_is_nobodys_own if {
	not authz.own_namespace with input as repo(personal("team", []), "team/app")
}

# Named like the namespace of a public pattern: pull as anyone, nothing more,
# not even deeper than the pattern reaches.
test_sourcehut_named_like_public_prefix_no_push if {
	authz.allow == {"pull"} with input as repo(personal("library", []), "library/alpine")
	count(authz.allow) == 0 with input as repo(personal("library", []), "library/alpine/extra")
	authz.allow == {"pull"} with input as repo(password("library", []), "library/alpine")
}

test_public_double_star_prefix_reserved if {
	authz.allow == {"pull"} with input as repo(personal("mirror", []), "mirror/alpine")
		with data.registry.public as ["mirror/**"]
}

# Patterns that do not cover a whole plain namespace reserve nothing.
test_other_public_patterns_reserve_nothing if {
	authz.allow == all_actions with input as repo(personal("dave", []), "dave/app")
		with data.registry.public as ["dave/app", "*/public", "**", "dav?/*", "dave/*/x"]
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
	count(authz.allow) == 0 with input as repo(personal("admin", []), "admin/app")
	count(authz.allow) == 0 with input as repo(build_rw("v2", []), "v2/app")
	count(authz.allow) == 0 with input as repo(password("admin", []), "admin/app")
}

test_reserved_none_without_data if {
	authz.allow == all_actions with input as repo(personal("admin", []), "admin/app")
		with data.registry.reserved as []
}

# A repository inside a shared namespace is governed by its ACL alone, even
# when it is inside the caller's own namespace too.
test_shared_namespace_inside_own_namespace if {
	acl := {"alice/shared": {"pull": ["htpasswd:bob"]}}
	count(authz.allow) == 0 with input as repo(password("alice", []), "alice/shared/app")
		with data.registry.namespaces as acl
	authz.allow == {"pull"} with input as repo(password("bob", []), "alice/shared/app")
		with data.registry.namespaces as acl
	authz.allow == all_actions with input as repo(password("alice", []), "alice/app")
		with data.registry.namespaces as acl
	authz.allow == all_actions with input as repo(password("alice", []), "alice/shared")
		with data.registry.namespaces as acl
}

# ---------------------------------------------------------------------------
# namespaces from data.json: members are principals.

test_namespace_star_member_any_authenticated if {
	authz.allow == {"pull"} with input as repo(password("dave", []), "team/app")
	authz.allow == {"pull"} with input as repo(personal("dave", []), "team/app")
}

test_namespace_star_member_not_anonymous if {
	count(authz.allow) == 0 with input as repo(anonymous, "team/app")
}

test_namespace_listed_principal if {
	authz.allow == all_actions with input as repo(password("alice", []), "team/app")
	authz.allow == {"pull", "push"} with input as repo(personal("carol", []), "team/app")
}

# htpasswd:alice is listed; the Sourcehut account alice is someone else.
test_namespace_principal_other_provider_not_member if {
	authz.allow == {"pull"} with input as repo(personal("alice", []), "team/app")
	authz.allow == {"pull"} with input as repo(password("carol", []), "team/app")
}

test_namespace_htpasswd_bob_does_not_let_sourcehut_bob_in if {
	acl := {"x": {"push": ["htpasswd:bob"]}}
	authz.allow == {"push"} with input as repo(password("bob", []), "x/app")
		with data.registry.namespaces as acl
	count(authz.allow) == 0 with input as repo(personal("bob", []), "x/app")
		with data.registry.namespaces as acl
}

# A bare name does not say which provider's bob: it matches nobody.
test_namespace_bare_name_matches_nobody if {
	acl := {"x": {"push": ["bob"]}}
	count(authz.allow) == 0 with input as repo(password("bob", []), "x/app")
		with data.registry.namespaces as acl
	count(authz.allow) == 0 with input as repo(personal("bob", []), "x/app")
		with data.registry.namespaces as acl
}

test_namespace_group_member if {
	authz.allow == {"pull", "push"} with input as repo(password("bot", ["ci"]), "team/app")
	authz.allow == {"pull", "push"} with input as repo(build_rw("bot", ["ci"]), "team/app")
}

test_namespace_group_entry_is_not_a_user if {
	authz.allow == {"pull"} with input as repo(password("ci", []), "team/app")
	authz.allow == {"pull"} with input as repo(password("group:ci", []), "team/app")
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
# Admins: "admins" in identity.groups, which the server fills by principal.

test_admin_any_repository if {
	authz.allow == {"*"} with input as repo(password("root", ["admins"]), "bob/app")
}

test_admin_catalog if {
	authz.allow == {"*"} with input as catalog(password("root", ["admins"]))
}

test_non_admin_no_catalog if {
	count(authz.allow) == 0 with input as catalog(password("alice", ["ci", "ops"]))
}

# The Sourcehut account root is not htpasswd:root: without "admins" in its
# groups it is nobody special.
test_sourcehut_named_root_is_not_admin if {
	not authz.admin with input as catalog(personal("root", []))
	count(authz.allow) == 0 with input as catalog(personal("root", []))
	count(authz.allow) == 0 with input as repo(personal("root", []), "bob/app")
	count(authz.allow) == 0 with input as catalog(refreshed(personal("root", [])))
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
	authz.allow == {"pull"} with input as repo(build_ro("dave", []), "dave/app")
}

test_sourcehut_ro_namespace_push_member_gets_pull if {
	authz.allow == {"pull"} with input as repo(build_ro("carol", []), "team/app")
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
	id := sourcehut("dave", [], "RO", [{"service": "other.example.com", "scope": "REGISTRY", "access": "RW"}])
	authz.allow == {"pull"} with input as repo(id, "dave/app")
}

# The cap follows the provider, whatever the method says.
test_sourcehut_provider_capped_by_provider if {
	id := object.union(build_ro("dave", []), {"method": "password"})
	authz.allow == {"pull"} with input as repo(id, "dave/app")
}

test_sourcehut_personal_token_full if {
	authz.allow == all_actions with input as repo(personal("dave", []), "dave/app")
}

test_sourcehut_personal_token_admin_catalog if {
	authz.allow == {"*"} with input as catalog(personal("root", ["admins"]))
}

test_sourcehut_rw_ci_group_pushes_to_team if {
	authz.allow == {"pull", "push"} with input as repo(build_rw("bot", ["ci"]), "team/app")
}

test_password_user_not_capped if {
	authz.allow == all_actions with input as repo(password("alice", []), "alice/app")
}

# ---------------------------------------------------------------------------
# Refresh tokens are judged as the login they were issued at.

test_refreshed_password_own_namespace if {
	authz.allow == all_actions with input as repo(refreshed(password("alice", [])), "alice/app")
}

test_refreshed_password_not_someone_else if {
	count(authz.allow) == 0 with input as repo(refreshed(password("alice", [])), "bob/app")
}

test_refreshed_keeps_principal_for_acls if {
	authz.allow == all_actions with input as repo(refreshed(password("alice", [])), "team/app")
	authz.allow == {"pull"} with input as repo(refreshed(personal("alice", [])), "team/app")
}

test_refreshed_sourcehut_ro_own_namespace_pull_only if {
	authz.allow == {"pull"} with input as repo(refreshed(build_ro("dave", [])), "dave/app")
}

test_refreshed_sourcehut_ro_admin_pull_only if {
	authz.allow == {"pull"} with input as repo(refreshed(build_ro("root", ["admins"])), "bob/app")
}

test_refreshed_sourcehut_ro_admin_no_catalog if {
	count(authz.allow) == 0 with input as catalog(refreshed(build_ro("root", ["admins"])))
}

test_refreshed_sourcehut_rw_own_namespace if {
	authz.allow == all_actions with input as repo(refreshed(build_rw("dave", [])), "dave/app")
}

test_refresh_without_refreshed_from_is_read_only if {
	id := {"method": "refresh", "provider": "htpasswd", "subject": "alice", "namespace": "alice", "groups": []}
	authz.allow == {"pull"} with input as repo(id, "alice/app")
}

# ---------------------------------------------------------------------------
# deny.

test_no_deny_for_version_2 if {
	count(authz.deny) == 0 with input as repo(password("alice", []), "alice/app")
}

test_deny_version_1 if {
	authz.deny == {"unsupported input version"} with input as object.union(repo(password("alice", []), "alice/app"), {"version": 1})
}

test_deny_other_versions if {
	authz.deny == {"unsupported input version"} with input as object.union(repo(anonymous, "library/alpine"), {"version": 3})
	authz.deny == {"unsupported input version"} with input as object.union(repo(anonymous, "library/alpine"), {"version": "2"})
	authz.deny == {"unsupported input version"} with input as object.remove(repo(anonymous, "library/alpine"), ["version"])
}

# ---------------------------------------------------------------------------
# OIDC identities: data.json's oidc rules, and nothing else.

# A GitHub Actions job's identity, with the claims GitHub sends (changed
# by claims).
github(claims) := {
	"method": "oidc",
	"provider": "github",
	"subject": c.sub,
	"groups": [],
	"oidc": {"issuer": "https://token.actions.githubusercontent.com", "claims": c},
} if {
	c := object.union(
		{
			"sub": "repo:octo-org/app:ref:refs/heads/main",
			"repository": "octo-org/app",
			"repository_owner": "octo-org",
			"repository_owner_id": "123456",
			"ref": "refs/heads/main",
			"ref_type": "branch",
			"event_name": "push",
		},
		claims,
	)
}

test_oidc_push_from_main_and_version_tags if {
	authz.allow == {"pull", "push"} with input as repo(github({}), "octo-org/app")
	authz.allow == {"pull", "push"} with input as repo(github({"ref": "refs/tags/v1.0.0", "ref_type": "tag"}), "octo-org/app/debug")
	authz.allow == {"pull", "push"} with input as repo(refreshed(github({})), "octo-org/app")
}

test_oidc_pull_request_pulls_only if {
	authz.allow == {"pull"} with input as repo(github({"ref": "refs/pull/1/merge", "event_name": "pull_request"}), "octo-org/app")
}

test_oidc_other_refs_and_owners_nothing if {
	count(authz.allow) == 0 with input as repo(github({"ref": "refs/heads/dev"}), "octo-org/app")
	count(authz.allow) == 0 with input as repo(github({"repository_owner": "evil", "repository": "evil/app"}), "evil/app")
	count(authz.allow) == 0 with input as repo(github({}), "octo-org/other")
	count(authz.allow) == 0 with input as repo(object.union(github({}), {"provider": "gitea"}), "octo-org/app")
}

test_oidc_not_a_member_of_star if {
	count(authz.allow) == 0 with input as repo(github({}), "team/app")
	authz.allow == {"pull"} with input as repo(password("bob", []), "team/app")
}

test_oidc_public_pull if {
	authz.allow == {"pull"} with input as repo(github({}), "library/alpine")
}

test_oidc_claim_never_widens if {
	every bad in ["*", "octo-org/*", "octo-org/**", "**", "team/*", "octo-org/app/../x"] {
		count(authz.allow) == 0 with input as repo(github({"repository": bad}), "octo-org/x")
	}
}

test_oidc_no_catalog if {
	count(authz.allow) == 0 with input as catalog(github({}))
}
