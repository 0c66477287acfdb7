# Tests for the public-mirror bundle, run against the bundle's own data.json:
# `opa test -b bundles/public-mirror/`.
#
# data.json holds
#   mirror:         ["mirror/**"]
#   mirror_pushers: ["sourcehut:mirror-bot"]
#   reserved:       ["admin"]
#
# Other data is mocked one key at a time (with data.registry.mirror as ...),
# never data.registry whole: that would replace this package too.
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

sourcehut_token(username, groups, all_grants, access, grants) := {
	"method": "sourcehut",
	"provider": "sourcehut",
	"subject": username,
	"namespace": username,
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

mirrored := "mirror/docker.io/library/alpine"

# ---------------------------------------------------------------------------
# data.json: every pusher is a principal or "*".

test_data_json_pushers_are_qualified if {
	every m in data.registry.mirror_pushers {
		qualified(m)
	}
}

qualified(m) if m == "*"

qualified(m) if {
	[kind, name] := split(m, ":")
	kind != ""
	name != ""
}

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
# Pushing to the mirror: listed CI identities only, by principal.

test_listed_build_token_pushes if {
	authz.allow == {"pull", "push"} with input as repo(build_rw("mirror-bot"), mirrored)
}

test_unlisted_build_token_does_not_push if {
	authz.allow == {"pull"} with input as repo(build_rw("alice"), mirrored)
}

# A bare name does not say which provider's mirror-bot: it matches nobody.
test_bare_name_pusher_matches_nobody if {
	authz.allow == {"pull"} with input as repo(build_rw("mirror-bot"), mirrored)
		with data.registry.mirror_pushers as ["mirror-bot"]
}

# Listing htpasswd:mirror-bot does not let the Sourcehut account of that
# name in (and an htpasswd user is never CI anyway).
test_other_provider_principal_does_not_push if {
	authz.allow == {"pull"} with input as repo(build_rw("mirror-bot"), mirrored)
		with data.registry.mirror_pushers as ["htpasswd:mirror-bot"]
	authz.allow == {"pull"} with input as repo(password("mirror-bot", []), mirrored)
		with data.registry.mirror_pushers as ["htpasswd:mirror-bot"]
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
		with data.registry.mirror_pushers as ["*"]
}

# CI needs the Sourcehut provider as well as the Sourcehut login method.
test_ci_needs_sourcehut_provider if {
	not authz.ci with input as repo(object.union(build_rw("mirror-bot"), {"provider": "htpasswd"}), mirrored)
	authz.allow == {"pull"} with input as repo(object.union(build_rw("mirror-bot"), {"provider": "htpasswd"}), mirrored)
		with data.registry.mirror_pushers as ["*"]
	authz.allow == {"pull"} with input as repo(object.remove(build_rw("mirror-bot"), ["provider"]), mirrored)
		with data.registry.mirror_pushers as ["*"]
}

test_anonymous_does_not_push if {
	authz.allow == {"pull"} with input as repo(anonymous, mirrored)
}

test_sourcehut_without_details_is_not_ci if {
	id := {"method": "sourcehut", "provider": "sourcehut", "subject": "mirror-bot", "namespace": "mirror-bot", "groups": []}
	authz.allow == {"pull"} with input as repo(id, mirrored)
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

# ---------------------------------------------------------------------------
# Site configuration beats ownership.

# No one owns the mirror as a namespace, not even an account named "mirror".
test_account_named_mirror_does_not_own_it if {
	authz.allow == {"pull"} with input as repo(personal("mirror", []), mirrored)
	authz.allow == {"pull"} with input as repo(build_rw("mirror"), mirrored)
	authz.allow == {"pull"} with input as repo(password("mirror", []), mirrored)
	not authz.own_namespace with input as repo(personal("mirror", []), mirrored)
}

# With mirror/* only mirror/x is the mirror; mirror/x/y is outside it, and
# still nobody's: the name mirror is the site's.
test_account_named_mirror_owns_nothing_below_the_pattern if {
	count(authz.allow) == 0 with input as repo(personal("mirror", []), "mirror/a/b")
		with data.registry.mirror as ["mirror/*"]
	count(authz.allow) == 0 with input as repo(password("mirror", []), "mirror/a/b")
		with data.registry.mirror as ["mirror/*"]
}

test_other_mirror_patterns_reserve_nothing if {
	authz.allow == all_actions with input as repo(personal("dave", []), "dave/app")
		with data.registry.mirror as ["dave/mirror", "*/mirror", "dave/*/x"]
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

# ---------------------------------------------------------------------------
# Outside the mirror: owners and admins, as in the default policy.

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

# Ownership comes from identity.namespace, never from the subject.
test_subject_without_namespace_owns_nothing if {
	count(authz.allow) == 0 with input as repo(no_namespace(personal("alice", [])), "alice/app")
	count(authz.allow) == 0 with input as repo(no_namespace(password("alice", [])), "alice/app")
	count(authz.allow) == 0 with input as repo(no_namespace(refreshed(build_rw("alice"))), "alice/app")
}

test_namespace_not_subject_decides if {
	id := object.union(password("alice", []), {"namespace": "al"})
	authz.allow == all_actions with input as repo(id, "al/app")
	count(authz.allow) == 0 with input as repo(id, "alice/app")
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
	count(authz.allow) == 0 with input as repo({"method": "anonymous", "subject": "alice", "namespace": "alice", "groups": []}, "alice/app")
}

test_no_provider_is_nobody if {
	id := object.remove(password("root", ["admins"]), ["provider"])
	count(authz.allow) == 0 with input as repo(id, "root/app")
	count(authz.allow) == 0 with input as catalog(id)
	authz.allow == {"pull"} with input as repo(id, mirrored)
}

test_admin_any_other_repository if {
	authz.allow == {"*"} with input as repo(password("root", ["admins"]), "bob/app")
}

test_admin_catalog if {
	authz.allow == {"*"} with input as catalog(password("root", ["admins"]))
}

# The Sourcehut account root is not htpasswd:root: without "admins" in
# its groups it is nobody special.
test_sourcehut_named_root_is_not_admin if {
	not authz.admin with input as catalog(personal("root", []))
	count(authz.allow) == 0 with input as catalog(personal("root", []))
	count(authz.allow) == 0 with input as repo(personal("root", []), "bob/app")
	authz.allow == {"pull"} with input as repo(personal("root", []), mirrored)
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

# The cap follows the provider, whatever the method says.
test_sourcehut_provider_capped_by_provider if {
	id := object.union(build_ro("alice"), {"method": "password"})
	authz.allow == {"pull"} with input as repo(id, "alice/app")
}

# ---------------------------------------------------------------------------
# Refresh tokens are judged as the login they were issued at: a CI token's
# refresh token is still CI (it keeps its provider), a read-only one still
# read-only.

test_refreshed_build_token_pushes if {
	authz.allow == {"pull", "push"} with input as repo(refreshed(build_rw("mirror-bot")), mirrored)
}

test_refreshed_build_token_of_other_account_does_not_push if {
	authz.allow == {"pull"} with input as repo(refreshed(build_rw("alice")), mirrored)
}

test_refreshed_read_only_build_token_does_not_push if {
	authz.allow == {"pull"} with input as repo(refreshed(build_ro("mirror-bot")), mirrored)
}

test_refreshed_read_only_build_token_own_namespace_pull_only if {
	authz.allow == {"pull"} with input as repo(refreshed(build_ro("alice")), "alice/app")
}

test_refreshed_password_user_is_not_ci if {
	authz.allow == {"pull"} with input as repo(refreshed(password("mirror-bot", [])), mirrored)
		with data.registry.mirror_pushers as ["*"]
}

test_refreshed_password_own_namespace if {
	authz.allow == all_actions with input as repo(refreshed(password("alice", [])), "alice/app")
}

test_refresh_without_refreshed_from_is_read_only if {
	id := {"method": "refresh", "provider": "htpasswd", "subject": "alice", "namespace": "alice", "groups": []}
	authz.allow == {"pull"} with input as repo(id, "alice/app")
}

# ---------------------------------------------------------------------------
# deny.

test_no_deny_for_version_2 if {
	count(authz.deny) == 0 with input as repo(build_rw("mirror-bot"), mirrored)
}

test_deny_version_1 if {
	authz.deny == {"unsupported input version"} with input as object.union(repo(build_rw("mirror-bot"), mirrored), {"version": 1})
}

test_deny_other_versions if {
	authz.deny == {"unsupported input version"} with input as object.union(repo(anonymous, mirrored), {"version": 3})
	authz.deny == {"unsupported input version"} with input as object.remove(repo(anonymous, mirrored), ["version"])
}

# ---------------------------------------------------------------------------
# OIDC identities: never CI here, no namespace; the mirror's pulls only.

ci_job := {
	"method": "oidc",
	"provider": "github",
	"subject": "repo:octo-org/app:ref:refs/heads/main",
	"groups": [],
	"oidc": {"issuer": "https://token.actions.githubusercontent.com", "claims": {"sub": "repo:octo-org/app:ref:refs/heads/main"}},
}

test_oidc_pulls_the_mirror_only if {
	authz.allow == {"pull"} with input as repo(ci_job, mirrored)
	authz.allow == {"pull"} with input as repo(ci_job, mirrored)
		with data.registry.mirror_pushers as ["*", "github:repo:octo-org/app:ref:refs/heads/main"]
	authz.allow == {"pull"} with input as repo(refreshed(ci_job), mirrored)
	not authz.ci with input as repo(ci_job, mirrored)
}

test_oidc_owns_no_namespace if {
	count(authz.allow) == 0 with input as repo(object.union(ci_job, {"namespace": "octo-org"}), "octo-org/app")
}
