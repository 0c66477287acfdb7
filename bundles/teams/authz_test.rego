# Tests for the teams bundle, run against the bundle's own data.json:
# `opa test -b bundles/teams/`.
#
# data.json holds
#   groups:     admins [htpasswd:root], backend [htpasswd:alice, sourcehut:bob],
#               frontend [sourcehut:carol], release [sourcehut:release-bot]
#   namespaces: backend:  pull [group:backend, group:frontend],
#                         push [group:backend], delete [htpasswd:alice]
#               frontend: pull ["*"], push [group:frontend, group:release],
#                         delete [group:frontend]
#               releases: pull ["*"], "*" [group:release]
#   public:     ["releases/*"]
#   reserved:   ["admin"]
#
# Other data is mocked one key at a time (with data.registry.groups as ...),
# never data.registry whole: that would replace this package too.
package registry.authz_test

import data.registry.authz

# ---------------------------------------------------------------------------
# Fixtures: input version 2. Each login's identity owns the namespace named
# like its subject, as the server says for an htpasswd user, and for a
# Sourcehut user no htpasswd user shares a name with.

service := "registry.example.com"

anonymous := {"method": "anonymous", "subject": "", "groups": []}

# groups here are the server's (input.identity.groups), not data.json's.
password(subject, groups) := {
	"method": "password",
	"provider": "htpasswd",
	"subject": subject,
	"namespace": subject,
	"groups": groups,
}

sourcehut(username, groups, access) := {
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
		"grants": [{"service": service, "scope": "REGISTRY", "access": access}],
	},
}

# A personal access token: all access.
personal(username, groups) := object.union(sourcehut(username, groups, "RW"), {"sourcehut": {"all_grants": true, "grants": []}})

# The identity a refresh token issued at the login `identity` stands for: it
# keeps the login's provider, namespace, groups and identity.sourcehut.
refreshed(identity) := object.union(identity, {"method": "refresh", "refreshed_from": identity.method})

# The same identity as the server sends it when it owns no namespace.
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
# data.json: every group member is a principal, every namespace member a
# principal, "group:<g>" or "*".

test_data_json_members_are_qualified if {
	every _, members in data.registry.groups {
		every m in members {
			qualified(m)
			not startswith(m, "group:")
		}
	}
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
# Group membership: data.json (by principal) OR the server.

test_groups_from_data if {
	authz.groups == {"backend"} with input as repo(password("alice", []), "x/y")
	authz.groups == {"backend"} with input as repo(sourcehut("bob", [], "RW"), "x/y")
}

test_groups_from_server_and_data_add_up if {
	authz.groups == {"backend", "ci"} with input as repo(sourcehut("bob", ["ci"], "RW"), "x/y")
}

test_groups_from_server_only if {
	authz.groups == {"frontend"} with input as repo(password("dave", ["frontend"]), "x/y")
}

# data.json lists htpasswd:alice and sourcehut:bob: the other providers'
# alice and bob are not in the group.
test_groups_from_data_match_by_principal if {
	count(authz.groups) == 0 with input as repo(sourcehut("alice", [], "RW"), "x/y")
	count(authz.groups) == 0 with input as repo(password("bob", []), "x/y")
	count(authz.groups) == 0 with input as repo(password("carol", []), "x/y")
}

# A bare name in a group does not say which provider's bob: nobody.
test_group_bare_name_matches_nobody if {
	count(authz.groups) == 0 with input as repo(password("bob", []), "x/y")
		with data.registry.groups as {"backend": ["bob"]}
	count(authz.groups) == 0 with input as repo(sourcehut("bob", [], "RW"), "x/y")
		with data.registry.groups as {"backend": ["bob"]}
}

test_anonymous_has_no_groups if {
	count(authz.groups) == 0 with input as repo({"method": "anonymous", "subject": "", "groups": ["admins"]}, "x/y")
}

# An anonymous identity carrying a name listed in data.json is still nobody.
test_anonymous_named_like_a_member_has_no_groups if {
	count(authz.groups) == 0 with input as repo({"method": "anonymous", "provider": "htpasswd", "subject": "root", "groups": []}, "x/y")
}

# So is a login that names no provider.
test_no_provider_has_no_groups if {
	id := object.remove(password("root", ["admins"]), ["provider"])
	count(authz.groups) == 0 with input as repo(id, "x/y")
	count(authz.allow) == 0 with input as catalog(id)
	count(authz.allow) == 0 with input as repo(id, "root/app")
}

test_no_group_data if {
	count(authz.groups) == 0 with input as repo(password("alice", []), "x/y")
		with data.registry.groups as {}
}

# A malformed group (not a list) gives nobody membership, and no error.
test_malformed_group_ignored if {
	count(authz.groups) == 0 with input as repo(password("alice", []), "x/y")
		with data.registry.groups as {"backend": "htpasswd:alice"}
}

# ---------------------------------------------------------------------------
# Namespaces with data.json's groups.

test_backend_member_with_delete if {
	authz.allow == all_actions with input as repo(password("alice", []), "backend/api")
}

test_backend_member if {
	authz.allow == {"pull", "push"} with input as repo(sourcehut("bob", [], "RW"), "backend/api")
}

test_frontend_member_pulls_backend if {
	authz.allow == {"pull"} with input as repo(sourcehut("carol", [], "RW"), "backend/api")
}

test_outsider_nothing_on_backend if {
	count(authz.allow) == 0 with input as repo(password("dave", []), "backend/api")
}

# htpasswd:alice is a member and may delete; the Sourcehut account alice is
# someone else, and so is htpasswd:bob.
test_member_of_other_provider_nothing_on_backend if {
	count(authz.allow) == 0 with input as repo(sourcehut("alice", [], "RW"), "backend/api")
	count(authz.allow) == 0 with input as repo(password("bob", []), "backend/api")
}

test_htpasswd_bob_listed_does_not_let_sourcehut_bob_in if {
	acl := {"x": {"push": ["htpasswd:bob"]}}
	authz.allow == {"push"} with input as repo(password("bob", []), "x/app")
		with data.registry.namespaces as acl
	count(authz.allow) == 0 with input as repo(sourcehut("bob", [], "RW"), "x/app")
		with data.registry.namespaces as acl
}

test_namespace_bare_name_matches_nobody if {
	acl := {"x": {"push": ["bob"]}}
	count(authz.allow) == 0 with input as repo(password("bob", []), "x/app")
		with data.registry.namespaces as acl
	count(authz.allow) == 0 with input as repo(sourcehut("bob", [], "RW"), "x/app")
		with data.registry.namespaces as acl
}

test_server_group_counts_too if {
	authz.allow == {"pull", "push"} with input as repo(password("dave", ["backend"]), "backend/api")
}

test_membership_gone_without_group_data if {
	count(authz.allow) == 0 with input as repo(sourcehut("carol", [], "RW"), "backend/api")
		with data.registry.groups as {}
}

test_frontend_open_pull if {
	authz.allow == {"pull"} with input as repo(password("dave", []), "frontend/web")
	authz.allow == {"pull"} with input as repo(sourcehut("dave", [], "RW"), "frontend/web")
}

test_frontend_open_pull_not_anonymous if {
	count(authz.allow) == 0 with input as repo(anonymous, "frontend/web")
}

test_frontend_member if {
	authz.allow == all_actions with input as repo(sourcehut("carol", [], "RW"), "frontend/web")
}

test_release_bot_pushes_frontend if {
	authz.allow == {"pull", "push"} with input as repo(sourcehut("release-bot", [], "RW"), "frontend/web")
}

test_release_group_star_action if {
	authz.allow == {"pull", "*"} with input as repo(sourcehut("release-bot", [], "RW"), "releases/app")
}

test_namespace_any_depth if {
	authz.allow == {"pull", "push"} with input as repo(sourcehut("bob", [], "RW"), "backend/a/b/c")
}

test_namespace_not_the_bare_name if {
	count(authz.allow) == 0 with input as repo(sourcehut("bob", [], "RW"), "backend")
}

test_namespace_not_a_longer_name if {
	count(authz.allow) == 0 with input as repo(sourcehut("bob", [], "RW"), "backendx/api")
}

# "group:backend" is a group entry: it never matches a user of that name.
test_group_entry_is_not_a_user if {
	count(authz.allow) == 0 with input as repo(password("group:backend", []), "backend/api")
	count(authz.allow) == 0 with input as repo(password("backend", []), "backend/api")
}

# A principal entry names a user, not a group.
test_user_entry_is_not_a_group if {
	count(authz.allow) == 0 with input as repo(password("dave", ["htpasswd:alice", "alice"]), "backend/api")
		with data.registry.namespaces as {"backend": {"delete": ["htpasswd:alice"]}}
}

test_namespaces_only_repositories if {
	count(authz.allow) == 0 with input as input_for(password("alice", []), "registry", "backend/api", ["pull"])
}

# ---------------------------------------------------------------------------
# Site configuration beats ownership.

# An account named like a team gets the team's ACL, no more: nothing on
# backend/*, pull on frontend/* (open to all).
test_sourcehut_named_like_a_team_owns_nothing if {
	count(authz.allow) == 0 with input as repo(sourcehut("backend", [], "RW"), "backend/api")
	count(authz.allow) == 0 with input as repo(personal("backend", []), "backend/api")
	count(authz.allow) == 0 with input as repo(refreshed(personal("backend", [])), "backend/api")
	authz.allow == {"pull"} with input as repo(personal("frontend", []), "frontend/web")
	count(authz.allow) == 0 with input as repo(password("backend", []), "backend/api")
	not authz.own_namespace with input as repo(personal("backend", []), "backend/api")
}

# releases is a team and the namespace of the public pattern releases/*;
# any public "<ns>/*" reserves ns even when it is no team.
test_sourcehut_named_like_public_prefix_no_push if {
	authz.allow == {"pull"} with input as repo(personal("releases", []), "releases/app")
	authz.allow == {"pull"} with input as repo(personal("library", []), "library/alpine")
		with data.registry.public as ["library/*"]
	count(authz.allow) == 0 with input as repo(personal("library", []), "library/a/b")
		with data.registry.public as ["library/*"]
}

test_other_public_patterns_reserve_nothing if {
	authz.allow == all_actions with input as repo(personal("dave", []), "dave/app")
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
	count(authz.allow) == 0 with input as repo(personal("admin", []), "admin/app")
	count(authz.allow) == 0 with input as repo(password("admin", []), "admin/app")
	authz.allow == all_actions with input as repo(personal("admin", []), "admin/app")
		with data.registry.reserved as []
}

test_team_inside_own_namespace_acl_alone if {
	acl := {"dave/shared": {"pull": ["sourcehut:erin"]}}
	count(authz.allow) == 0 with input as repo(password("dave", []), "dave/shared/app")
		with data.registry.namespaces as acl
	authz.allow == {"pull"} with input as repo(sourcehut("erin", [], "RW"), "dave/shared/app")
		with data.registry.namespaces as acl
	authz.allow == all_actions with input as repo(password("dave", []), "dave/app")
		with data.registry.namespaces as acl
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
	authz.allow == all_actions with input as repo(sourcehut("erin", [], "RW"), "erin/app")
}

test_own_namespace_not_someone_elses if {
	count(authz.allow) == 0 with input as repo(password("dave", []), "erin/app")
}

# Ownership comes from identity.namespace: a subject without one owns
# nothing, and the namespace, not the subject, is what is owned.
test_subject_without_namespace_owns_nothing if {
	count(authz.allow) == 0 with input as repo(no_namespace(sourcehut("dave", [], "RW")), "dave/app")
	count(authz.allow) == 0 with input as repo(no_namespace(password("dave", [])), "dave/app")
}

test_namespace_not_subject_decides if {
	id := object.union(password("dave", []), {"namespace": "dv"})
	authz.allow == all_actions with input as repo(id, "dv/app")
	count(authz.allow) == 0 with input as repo(id, "dave/app")
}

test_anonymous_owns_nothing if {
	count(authz.allow) == 0 with input as repo(anonymous, "/app")
	count(authz.allow) == 0 with input as repo({"method": "anonymous", "subject": "dave", "namespace": "dave", "groups": []}, "dave/app")
}

# ---------------------------------------------------------------------------
# Admins, from data.json (htpasswd:root) or from the server.

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

# The Sourcehut account root is not htpasswd:root.
test_sourcehut_named_root_is_not_admin if {
	not authz.admin with input as catalog(personal("root", []))
	count(authz.allow) == 0 with input as catalog(personal("root", []))
	count(authz.allow) == 0 with input as repo(personal("root", []), "bob/app")
	count(authz.allow) == 0 with input as catalog(refreshed(personal("root", [])))
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
	authz.allow == {"pull"} with input as repo(sourcehut("bob", [], "RO"), "backend/api")
}

test_sourcehut_ro_push_only_member_nothing if {
	count(authz.allow) == 0 with input as repo(sourcehut("bob", [], "RO"), "x/app")
		with data.registry.namespaces as {"x": {"push": ["sourcehut:bob"]}}
}

test_sourcehut_ro_star_action_becomes_pull if {
	authz.allow == {"pull"} with input as repo(sourcehut("release-bot", [], "RO"), "releases/app")
}

test_sourcehut_ro_admin_pull_only if {
	authz.allow == {"pull"} with input as repo(sourcehut("root", ["admins"], "RO"), "bob/app")
}

test_sourcehut_ro_admin_no_catalog if {
	count(authz.allow) == 0 with input as catalog(sourcehut("root", ["admins"], "RO"))
}

test_sourcehut_rw_admin_catalog if {
	authz.allow == {"*"} with input as catalog(sourcehut("root", ["admins"], "RW"))
}

test_sourcehut_without_details_is_read_only if {
	id := {"method": "sourcehut", "provider": "sourcehut", "subject": "dave", "namespace": "dave", "groups": []}
	authz.allow == {"pull"} with input as repo(id, "dave/app")
}

# The cap follows the provider, whatever the method says.
test_sourcehut_provider_capped_by_provider if {
	id := object.union(sourcehut("dave", [], "RO"), {"method": "password"})
	authz.allow == {"pull"} with input as repo(id, "dave/app")
}

test_password_user_not_capped if {
	authz.allow == all_actions with input as repo(password("alice", []), "alice/app")
}

# ---------------------------------------------------------------------------
# Refresh tokens are judged as the login they were issued at.

test_refreshed_password_member if {
	authz.allow == all_actions with input as repo(refreshed(password("alice", [])), "backend/api")
}

test_refreshed_password_own_namespace if {
	authz.allow == all_actions with input as repo(refreshed(password("alice", [])), "alice/app")
}

test_refreshed_sourcehut_rw_member if {
	authz.allow == {"pull", "push"} with input as repo(refreshed(sourcehut("bob", [], "RW")), "backend/api")
}

test_refreshed_keeps_principal if {
	count(authz.allow) == 0 with input as repo(refreshed(sourcehut("alice", [], "RW")), "backend/api")
	count(authz.allow) == 0 with input as repo(refreshed(password("bob", [])), "backend/api")
}

test_refreshed_sourcehut_ro_member_pull_only if {
	authz.allow == {"pull"} with input as repo(refreshed(sourcehut("bob", [], "RO")), "backend/api")
}

test_refreshed_sourcehut_ro_own_namespace_pull_only if {
	authz.allow == {"pull"} with input as repo(refreshed(sourcehut("dave", [], "RO")), "dave/app")
}

test_refreshed_sourcehut_ro_admin_no_catalog if {
	count(authz.allow) == 0 with input as catalog(refreshed(sourcehut("root", ["admins"], "RO")))
}

test_refresh_without_refreshed_from_is_read_only if {
	id := {"method": "refresh", "provider": "htpasswd", "subject": "dave", "namespace": "dave", "groups": []}
	authz.allow == {"pull"} with input as repo(id, "dave/app")
}

# ---------------------------------------------------------------------------
# deny.

test_no_deny_for_version_2 if {
	count(authz.deny) == 0 with input as repo(password("alice", []), "backend/api")
}

test_deny_version_1 if {
	authz.deny == {"unsupported input version"} with input as object.union(repo(password("alice", []), "backend/api"), {"version": 1})
}

test_deny_other_versions if {
	authz.deny == {"unsupported input version"} with input as object.union(repo(anonymous, "releases/app"), {"version": 3})
	count(authz.deny) > 0 with input as object.remove(repo(anonymous, "releases/app"), ["version"])
}

# ---------------------------------------------------------------------------
# OIDC identities: no namespace, not in "*", only what names them.

ci_job := {
	"method": "oidc",
	"provider": "github",
	"subject": "repo:octo-org/app:ref:refs/heads/main",
	"groups": [],
	"oidc": {"issuer": "https://token.actions.githubusercontent.com", "claims": {"sub": "repo:octo-org/app:ref:refs/heads/main", "repository": "octo-org/app"}},
}

test_oidc_not_a_member_of_star if {
	count(authz.allow) == 0 with input as repo(ci_job, "frontend/web")
	count(authz.allow) == 0 with input as repo(refreshed(ci_job), "frontend/web")
	authz.allow == {"pull"} with input as repo(password("dave", []), "frontend/web")
}

test_oidc_owns_no_namespace if {
	count(authz.allow) == 0 with input as repo(object.union(ci_job, {"namespace": "octo-org"}), "octo-org/app")
}

# frontend's pull is "*": its members who are OIDC identities must be given
# pull by name (here they are not).
test_oidc_by_principal_in_a_group if {
	authz.allow == {"push", "delete"} with input as repo(ci_job, "frontend/web")
		with data.registry.groups as {"frontend": ["github:repo:octo-org/app:ref:refs/heads/main"]}
}

test_oidc_public_pull if {
	authz.allow == {"pull"} with input as repo(ci_job, "releases/v1")
}

test_oidc_refresh_not_capped if {
	authz.allow == {"pull", "push"} with input as repo(refreshed(ci_job), "backend/api")
		with data.registry.groups as {"backend": ["github:repo:octo-org/app:ref:refs/heads/main"]}
}

# ---------------------------------------------------------------------------
# Directory (authn.ldap) identities: provider the directory's name, groups
# from the server qualified by it ("corp:devs"), named in ACLs as
# "group:corp:devs"; data.json may also list a directory user by
# principal ("corp:lena").

directory_user(subject, groups) := {"method": "password", "provider": "corp", "subject": subject, "groups": groups}

directory_namespaces := {"platform": {"pull": ["group:corp:devs"], "push": ["group:corp:ops", "group:platform"]}}

directory_groups := {"admins": ["htpasswd:root"], "platform": ["corp:lena"]}

directory_allow(identity, name) := allowed if {
	allowed := authz.allow with input as repo(identity, name)
		with data.registry.namespaces as directory_namespaces
		with data.registry.groups as directory_groups
}

test_directory_groups_from_the_server if {
	directory_allow(directory_user("mika", ["corp:devs"]), "platform/app") == {"pull"}
	directory_allow(directory_user("mika", ["corp:devs", "corp:ops"]), "platform/app") == {"pull", "push"}
	directory_allow(directory_user("mika", []), "platform/app") == set()
}

test_directory_user_in_a_data_json_group if {
	directory_allow(directory_user("lena", []), "platform/app") == {"push"}
	directory_allow(password("lena", []), "platform/app") == set()
}

test_directory_user_owns_no_namespace if {
	directory_allow(directory_user("mika", ["corp:devs"]), "mika/app") == set()
}
