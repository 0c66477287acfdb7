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

# Members are principals ("provider:subject"), "group:<g>", or "*".
namespaces := {
	"team": {"pull": ["htpasswd:bob", "group:ci"], "push": ["sourcehut:alice"], "delete": ["group:ops"]},
	"open": {"pull": ["*"]},
	"ops": {"*": ["group:ops"]},
}

reserved := ["admin", "v2"]

# Anonymous: no provider, no namespace, subject "".
anonymous := {"method": "anonymous", "subject": "", "groups": []}

# An htpasswd user: the server gives it its own name as its namespace.
password(subject, groups) := {
	"method": "password",
	"provider": "htpasswd",
	"subject": subject,
	"namespace": subject,
	"groups": groups,
}

# The token's level on this registry, as the server puts it in
# identity.sourcehut.access (the policy reads the grants, not this).
access(grants) := "RW" if {
	some grant in grants
	grant == {"service": service, "scope": "REGISTRY", "access": "RW"}
} else := "RO"

# A Sourcehut identity with the given grants (all_grants false), whose name
# no htpasswd user holds: it owns the namespace of its name.
sourcehut(username, groups, grants) := {
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
		"access": access(grants),
		"grants": grants,
	},
}

# A Sourcehut personal access token: empty grant string, all access.
sourcehut_all(username, groups) := {
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

# The identity as the server sends it when it owns no namespace: a Sourcehut
# user whose name an htpasswd user holds (local accounts reserve their
# names), or a subject that is no repository path component.
without_namespace(identity) := object.remove(identity, ["namespace"])

# The identity a refresh token issued at the login `identity` stands for:
# method "refresh", the login's method in refreshed_from, the rest (provider,
# subject, namespace, groups, identity.sourcehut) as at the login.
refreshed(identity) := object.union(identity, {"method": "refresh", "refreshed_from": identity.method})

rw := [{"service": service, "scope": "REGISTRY", "access": "RW"}]

ro := [{"service": service, "scope": "REGISTRY", "access": "RO"}]

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
# The fixtures themselves.

test_fixture_access if {
	access(rw) == "RW"
	access(ro) == "RO"
	access([]) == "RO"
	access([{"service": "other.example.com", "scope": "REGISTRY", "access": "RW"}]) == "RO"
}

test_fixture_refreshed_keeps_provider_and_namespace if {
	r := refreshed(sourcehut("alice", ["ci"], ro))
	r.method == "refresh"
	r.refreshed_from == "sourcehut"
	r.provider == "sourcehut"
	r.subject == "alice"
	r.namespace == "alice"
	r.groups == ["ci"]
	r.sourcehut.grants == ro
	refreshed(password("bob", [])).provider == "htpasswd"
	refreshed(password("bob", [])).namespace == "bob"
	not "namespace" in object.keys(refreshed(without_namespace(sourcehut("bob", [], rw))))
}

# ---------------------------------------------------------------------------
# No data at all: only the own-namespace and admin rules apply.

test_no_data_anonymous_gets_nothing if {
	count(authz.allow) == 0 with input as repo(anonymous, "library/alpine")
}

test_no_data_own_namespace if {
	authz.allow == all_actions with input as repo(password("alice", []), "alice/app")
}

test_no_data_own_namespace_sourcehut if {
	authz.allow == all_actions with input as repo(sourcehut("alice", [], rw), "alice/app")
}

test_no_data_admin if {
	authz.allow == {"*"} with input as repo(password("root", ["admins"]), "bob/app")
}

test_no_data_no_deny if {
	count(authz.deny) == 0 with input as repo(password("alice", []), "alice/app")
}

# An identity without a groups key at all.
test_no_groups_key if {
	identity := {"method": "password", "provider": "htpasswd", "subject": "alice", "namespace": "alice"}
	authz.allow == all_actions with input as repo(identity, "alice/app")
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
	authz.allow == {"pull"} with input as repo(sourcehut("bob", [], rw), "library/alpine")
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
# Own namespace: input.identity.namespace, as the server decided it.

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
	count(authz.allow) == 0 with input as repo(sourcehut("alice", [], rw), "bob/app")
}

test_anonymous_owns_nothing if {
	count(authz.allow) == 0 with input as repo(anonymous, "/app")
}

# A malformed anonymous identity claiming a provider, a subject and a
# namespace is not trusted.
test_anonymous_with_subject_owns_nothing if {
	identity := {"method": "anonymous", "provider": "htpasswd", "subject": "alice", "namespace": "alice", "groups": []}
	count(authz.allow) == 0 with input as repo(identity, "alice/app")
	count(authz.allow) == 0 with input as repo(object.union(anonymous, {"namespace": "alice"}), "alice/app")
}

test_empty_subject_owns_nothing if {
	count(authz.allow) == 0 with input as repo(password("", []), "/app")
	count(authz.allow) == 0 with input as repo(object.union(password("", []), {"namespace": "alice"}), "alice/app")
}

test_missing_identity_gets_nothing if {
	count(authz.allow) == 0 with input as {"version": 2, "scope": {"type": "repository", "name": "alice/app", "actions": ["pull"]}}
}

# Ownership is never derived from the subject: an identity the server gave
# no namespace (here a Sourcehut alice, as an htpasswd alice holds the name)
# owns nothing, not even the namespace of its subject.
test_no_namespace_owns_nothing if {
	count(authz.allow) == 0 with input as repo(without_namespace(sourcehut("alice", [], rw)), "alice/app")
	count(authz.allow) == 0 with input as repo(without_namespace(sourcehut_all("alice", [])), "alice/app")
	count(authz.allow) == 0 with input as repo(without_namespace(password("alice", [])), "alice/app")
	not authz.own_namespace with input as repo(without_namespace(sourcehut("alice", [], rw)), "alice/app")
}

# ... while the htpasswd alice, who does hold it, owns it.
test_same_name_other_provider if {
	authz.allow == all_actions with input as repo(password("alice", []), "alice/app")
	count(authz.allow) == 0 with input as repo(without_namespace(sourcehut("alice", [], rw)), "alice/app")
}

# The namespace, not the subject, says what is owned.
test_own_namespace_is_the_namespace_not_the_subject if {
	identity := object.union(sourcehut("alice", [], rw), {"namespace": "al"})
	authz.allow == all_actions with input as repo(identity, "al/app")
	count(authz.allow) == 0 with input as repo(identity, "alice/app")
	authz.own_namespace == "al" with input as repo(identity, "al/app")
}

test_empty_namespace_owns_nothing if {
	count(authz.allow) == 0 with input as repo(object.union(password("alice", []), {"namespace": ""}), "/app")
	count(authz.allow) == 0 with input as repo(object.union(password("alice", []), {"namespace": ""}), "alice/app")
}

# A malformed namespace owns nothing, and is no built-in error either.
test_non_string_namespace_owns_nothing if {
	count(authz.allow) == 0 with input as repo(object.union(password("alice", []), {"namespace": ["alice"]}), "alice/app")
	count(authz.allow) == 0 with input as repo(object.union(password("alice", []), {"namespace": null}), "alice/app")
	count(authz.allow) == 0 with input as repo(object.union(password("alice", []), {"namespace": 1}), "1/app")
	not authz.own_namespace with input as repo(object.union(password("alice", []), {"namespace": ["alice"]}), "alice/app")
	not authz.own_namespace with input as repo(object.union(password("alice", []), {"namespace": null}), "alice/app")
}

# An identity without a provider is not authenticated, whatever its method:
# it gets what anonymous gets (public pulls) and nothing else.
test_password_without_provider_is_unauthenticated if {
	identity := object.remove(password("alice", ["admins", "ci"]), ["provider"])
	not authz.authenticated with input as repo(identity, "alice/app")
	count(authz.allow) == 0 with input as repo(identity, "alice/app")
		with data.registry.public as public
		with data.registry.namespaces as namespaces
	count(authz.allow) == 0 with input as repo(identity, "bob/app")
	count(authz.allow) == 0 with input as catalog(identity)
	count(authz.allow) == 0 with input as repo(identity, "open/app")
		with data.registry.namespaces as namespaces
	count(authz.allow) == 0 with input as repo(identity, "team/app")
		with data.registry.namespaces as {"team": {"pull": ["htpasswd:alice", ":alice", "alice"]}}
	authz.allow == {"pull"} with input as repo(identity, "library/alpine")
		with data.registry.public as public
		with data.registry.namespaces as namespaces
}

test_empty_or_malformed_provider_is_unauthenticated if {
	count(authz.allow) == 0 with input as repo(object.union(password("alice", []), {"provider": ""}), "alice/app")
	count(authz.allow) == 0 with input as repo(object.union(password("alice", []), {"provider": null}), "alice/app")
	count(authz.allow) == 0 with input as repo(object.union(password("alice", []), {"provider": ["htpasswd"]}), "alice/app")
	count(authz.allow) == 0 with input as repo(object.union(password("alice", []), {"provider": ""}), "open/app")
		with data.registry.namespaces as namespaces
}

# ---------------------------------------------------------------------------
# Site configuration beats ownership: a shared namespace, a reserved name, or
# the namespace of a public "<ns>/*" or "<ns>/**" pattern is nobody's.

# A Sourcehut account named after a shared namespace gets nothing there ...
test_shared_namespace_name_sourcehut_owns_nothing if {
	count(authz.allow) == 0 with input as repo(sourcehut("team", [], rw), "team/app")
		with data.registry.namespaces as namespaces
	count(authz.allow) == 0 with input as repo(sourcehut_all("team", []), "team/a/b")
		with data.registry.namespaces as namespaces
	not authz.own_namespace with input as repo(sourcehut("team", [], rw), "team/app")
		with data.registry.namespaces as namespaces
}

# ... nor does an htpasswd user of that name ...
test_shared_namespace_name_htpasswd_owns_nothing if {
	count(authz.allow) == 0 with input as repo(password("team", []), "team/app")
		with data.registry.namespaces as namespaces
}

# ... but what the ACL gives its principal.
test_shared_namespace_name_gets_its_acl_only if {
	authz.allow == {"pull"} with input as repo(sourcehut("team", [], rw), "team/app")
		with data.registry.namespaces as {"team": {"pull": ["sourcehut:team"], "push": ["htpasswd:team"]}}
	authz.allow == {"push"} with input as repo(password("team", []), "team/app")
		with data.registry.namespaces as {"team": {"pull": ["sourcehut:team"], "push": ["htpasswd:team"]}}
}

# An ACL with no actions at all still takes the name.
test_shared_namespace_empty_acl_takes_the_name if {
	count(authz.allow) == 0 with input as repo(password("team", []), "team/app")
		with data.registry.namespaces as {"team": {}}
}

# A Sourcehut account named after a public namespace only pulls there.
test_public_namespace_sourcehut_pull_only if {
	authz.allow == {"pull"} with input as repo(sourcehut("library", [], rw), "library/alpine")
		with data.registry.public as public
	authz.allow == {"pull"} with input as repo(sourcehut_all("mirror", []), "mirror/app")
		with data.registry.public as public
	authz.allow == {"pull"} with input as repo(sourcehut_all("mirror", []), "mirror/docker.io/library/alpine")
		with data.registry.public as public
}

test_public_namespace_htpasswd_pull_only if {
	authz.allow == {"pull"} with input as repo(password("library", []), "library/alpine")
		with data.registry.public as public
	authz.allow == {"pull"} with input as repo(password("mirror", []), "mirror/a/b")
		with data.registry.public as public
}

# "library/*" takes the whole namespace, not only the level it makes public.
test_public_namespace_deeper_not_owned if {
	count(authz.allow) == 0 with input as repo(sourcehut("library", [], rw), "library/alpine/extra")
		with data.registry.public as public
}

test_public_namespace_only_its_own if {
	authz.allow == all_actions with input as repo(sourcehut("alice", [], rw), "alice/app")
		with data.registry.public as public
}

test_reserved_name_owns_nothing if {
	count(authz.allow) == 0 with input as repo(password("admin", []), "admin/app")
		with data.registry.reserved as reserved
	count(authz.allow) == 0 with input as repo(sourcehut("v2", [], rw), "v2/app")
		with data.registry.reserved as reserved
	not authz.own_namespace with input as repo(password("admin", []), "admin/app")
		with data.registry.reserved as reserved
}

test_reserved_others_keep_theirs if {
	authz.allow == all_actions with input as repo(password("alice", []), "alice/app")
		with data.registry.reserved as reserved
}

# Reserving a name takes ownership only: public pulls still apply there.
test_reserved_public_still_pulls if {
	authz.allow == {"pull"} with input as repo(password("admin", []), "admin/app")
		with data.registry.reserved as reserved
		with data.registry.public as ["admin/*"]
}

# Reserving a name keeps an admin of that name an admin.
test_reserved_admin_still_admin if {
	authz.allow == {"*"} with input as repo(password("admin", ["admins"]), "admin/app")
		with data.registry.reserved as reserved
}

# Patterns that do not cover one plain namespace whole reserve nothing.
test_public_exact_repository_reserves_nothing if {
	authz.allow == all_actions with input as repo(password("alice", []), "alice/app")
		with data.registry.public as ["alice/app"]
	authz.allow == all_actions with input as repo(password("alice", []), "alice/other")
		with data.registry.public as ["alice/app"]
	authz.allow == {"pull"} with input as repo(anonymous, "alice/app")
		with data.registry.public as ["alice/app"]
}

test_public_everything_reserves_nothing if {
	authz.allow == all_actions with input as repo(password("alice", []), "alice/app")
		with data.registry.public as ["**"]
	authz.allow == {"pull"} with input as repo(password("bob", []), "alice/app")
		with data.registry.public as ["**"]
}

test_public_star_slash_name_reserves_nothing if {
	authz.allow == all_actions with input as repo(password("alice", []), "alice/app")
		with data.registry.public as ["*/x"]
	authz.allow == all_actions with input as repo(password("alice", []), "alice/x")
		with data.registry.public as ["*/x"]
}

test_public_star_slash_star_reserves_nothing if {
	authz.allow == all_actions with input as repo(password("alice", []), "alice/app")
		with data.registry.public as ["*/*", "*/**"]
}

test_public_deeper_pattern_reserves_nothing if {
	every pattern in ["alice/sub/*", "alice/*/x", "alice/**/x", "alice/*/*"] {
		authz.allow == all_actions with input as repo(password("alice", []), "alice/sub/app")
			with data.registry.public as [pattern]
	}
}

# Only a plain name reserves: a namespace part with glob characters does not.
test_public_glob_namespace_reserves_nothing if {
	every pattern in ["{alice,bob}/*", "al?ce/*", "[a]lice/**", "alic*/*", `alic\e/*`] {
		authz.allow == all_actions with input as repo(password("alice", []), "alice/app")
			with data.registry.public as [pattern]
	}
}

test_pattern_namespace if {
	authz.pattern_namespace("library/*") == "library"
	authz.pattern_namespace("mirror/**") == "mirror"
	not authz.pattern_namespace("alice/app")
	not authz.pattern_namespace("*/x")
	not authz.pattern_namespace("*/*")
	not authz.pattern_namespace("**")
	not authz.pattern_namespace("a/b/*")
	not authz.pattern_namespace("a/*/x")
	not authz.pattern_namespace("a/**/*")
	not authz.pattern_namespace("library")
	not authz.pattern_namespace("library/")
	not authz.pattern_namespace("{a,b}/*")
	not authz.pattern_namespace("lib?/*")
	not authz.pattern_namespace("[l]ib/*")
	not authz.pattern_namespace(`lib\rary/*`)
}

test_site_namespace if {
	authz.site_namespace("team") with data.registry.namespaces as namespaces
	authz.site_namespace("library") with data.registry.public as public
	authz.site_namespace("mirror") with data.registry.public as public
	authz.site_namespace("admin") with data.registry.reserved as reserved
	not authz.site_namespace("alice") with data.registry.namespaces as namespaces
		with data.registry.public as ["alice/app", "**", "*/x", "alice/sub/*"]
		with data.registry.reserved as reserved
	not authz.site_namespace("team")
}

# A shared namespace nested under a personal one: its repositories are
# governed by its ACL alone, while the owner keeps the rest.
nested := {"alice/shared": {"pull": ["htpasswd:bob"], "push": ["sourcehut:carol"]}}

test_nested_shared_namespace_not_the_owners if {
	count(authz.allow) == 0 with input as repo(password("alice", []), "alice/shared/app")
		with data.registry.namespaces as nested
	count(authz.allow) == 0 with input as repo(password("alice", []), "alice/shared/a/b")
		with data.registry.namespaces as nested
}

test_nested_shared_namespace_owner_keeps_the_rest if {
	authz.allow == all_actions with input as repo(password("alice", []), "alice/other")
		with data.registry.namespaces as nested
	authz.allow == all_actions with input as repo(password("alice", []), "alice/sharedx/app")
		with data.registry.namespaces as nested
	authz.own_namespace == "alice" with input as repo(password("alice", []), "alice/other")
		with data.registry.namespaces as nested
}

# The repository named exactly as the nested namespace is not inside it.
test_nested_shared_namespace_bare_name_stays_the_owners if {
	authz.allow == all_actions with input as repo(password("alice", []), "alice/shared")
		with data.registry.namespaces as nested
}

test_nested_shared_namespace_acl if {
	authz.allow == {"pull"} with input as repo(password("bob", []), "alice/shared/app")
		with data.registry.namespaces as nested
	authz.allow == {"push"} with input as repo(sourcehut("carol", [], rw), "alice/shared/app")
		with data.registry.namespaces as nested
	count(authz.allow) == 0 with input as repo(password("bob", []), "alice/other")
		with data.registry.namespaces as nested
}

# The owner listed in the nested ACL gets what the ACL says, no more.
test_nested_shared_namespace_owner_as_member if {
	authz.allow == {"pull"} with input as repo(password("alice", []), "alice/shared/app")
		with data.registry.namespaces as {"alice/shared": {"pull": ["htpasswd:alice"]}}
}

test_outside_shared_namespaces if {
	not authz.outside_shared_namespaces("alice/shared/app") with data.registry.namespaces as nested
	authz.outside_shared_namespaces("alice/shared") with data.registry.namespaces as nested
	authz.outside_shared_namespaces("alice/sharedx/app") with data.registry.namespaces as nested
	authz.outside_shared_namespaces("alice/app") with data.registry.namespaces as nested
	authz.outside_shared_namespaces("team/app")
}

# A name that is itself a namespace's prefix is in the namespace a shorter
# prefix holds it in, if any: "a/b/" is in "a", "a/" in none.
test_outside_shared_namespaces_prefix_names if {
	within := {"a": {"pull": ["*"]}, "a/b": {"pull": ["*"]}, "a/b/c": {"pull": ["*"]}, "ab": {"pull": ["*"]}}
	authz.outside_shared_namespaces("a/") with data.registry.namespaces as within
	authz.outside_shared_namespaces("ab/") with data.registry.namespaces as within
	authz.outside_shared_namespaces("a") with data.registry.namespaces as within
	not authz.outside_shared_namespaces("a/b") with data.registry.namespaces as within
	not authz.outside_shared_namespaces("a/b/") with data.registry.namespaces as within
	not authz.outside_shared_namespaces("a/b/c/") with data.registry.namespaces as within
	not authz.outside_shared_namespaces("a/x") with data.registry.namespaces as within
	not authz.outside_shared_namespaces("ab/x") with data.registry.namespaces as within
	not authz.outside_shared_namespaces("a//") with data.registry.namespaces as within
	authz.outside_shared_namespaces("a/")
}

test_top_shared_prefixes if {
	authz.top_shared_prefixes == {"a/", "ab/", "x/y/"} with data.registry.namespaces as {
		"a": {}, "a/b": {}, "a/b/c": {}, "ab": {}, "x/y": {}, "x/y/z": {},
	}
	authz.top_shared_prefixes == set()
}

# Only a site namespace without "/" can be a repository's first segment.
test_site_segments if {
	authz.site_segments == {"team", "admin", "v2", "library"} with data.registry.namespaces as object.union(nested, {"team": {}})
		with data.registry.reserved as reserved
		with data.registry.public as ["library/*", "*/public"]
	authz.site_segment_prefixes == {"team/", "admin/", "v2/", "library/"} with data.registry.namespaces as object.union(nested, {"team": {}})
		with data.registry.reserved as reserved
		with data.registry.public as ["library/*", "*/public"]
	authz.site_segment_prefixes == set()
}

# ---------------------------------------------------------------------------
# Shared namespaces: members are principals, groups, or "*".

test_principal if {
	authz.principal == "htpasswd:alice" with input as repo(password("alice", []), "x/y")
	authz.principal == "sourcehut:alice" with input as repo(sourcehut("alice", [], rw), "x/y")
	authz.principal == "sourcehut:alice" with input as repo(refreshed(without_namespace(sourcehut("alice", [], rw))), "x/y")
	not authz.principal with input as repo(anonymous, "x/y")
	not authz.principal with input as repo(object.remove(password("alice", []), ["provider"]), "x/y")
}

test_namespace_member_by_principal if {
	authz.allow == {"pull"} with input as repo(password("bob", []), "team/app")
		with data.registry.namespaces as namespaces
}

# htpasswd:bob is not sourcehut:bob.
test_namespace_principal_is_per_provider if {
	count(authz.allow) == 0 with input as repo(sourcehut("bob", [], rw), "team/app")
		with data.registry.namespaces as namespaces
	count(authz.allow) == 0 with input as repo(sourcehut_all("bob", []), "team/app")
		with data.registry.namespaces as namespaces
	count(authz.allow) == 0 with input as repo(password("alice", []), "team/app")
		with data.registry.namespaces as namespaces
}

test_namespace_push_without_pull if {
	authz.allow == {"push"} with input as repo(sourcehut("alice", [], rw), "team/app")
		with data.registry.namespaces as namespaces
}

# A bare name does not say which provider's bob: it matches nobody.
test_namespace_bare_name_matches_nobody if {
	acl := {"team": {"pull": ["bob"], "push": ["alice"], "delete": ["ci"]}}
	count(authz.allow) == 0 with input as repo(password("bob", []), "team/app")
		with data.registry.namespaces as acl
	count(authz.allow) == 0 with input as repo(sourcehut("bob", [], rw), "team/app")
		with data.registry.namespaces as acl
	count(authz.allow) == 0 with input as repo(password("alice", []), "team/app")
		with data.registry.namespaces as acl
	count(authz.allow) == 0 with input as repo(sourcehut_all("alice", []), "team/app")
		with data.registry.namespaces as acl
	count(authz.allow) == 0 with input as repo(password("carol", ["ci"]), "team/app")
		with data.registry.namespaces as acl
}

# A principal needs both halves exactly.
test_namespace_principal_exact if {
	acl := {"team": {"pull": [":bob", "htpasswd:", "htpasswd:bo", "htpasswd:bobby", "HTPASSWD:bob", "htpasswd/bob"]}}
	count(authz.allow) == 0 with input as repo(password("bob", []), "team/app")
		with data.registry.namespaces as acl
}

test_namespace_member_by_group if {
	authz.allow == {"pull"} with input as repo(password("carol", ["ci"]), "team/app")
		with data.registry.namespaces as namespaces
	authz.allow == {"pull"} with input as repo(sourcehut("carol", ["ci"], rw), "team/app")
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
	count(authz.allow) == 0 with input as repo(sourcehut("ci", [], rw), "team/app")
		with data.registry.namespaces as namespaces
}

# ... and a principal entry names a user, not a group.
test_namespace_principal_entry_is_not_a_group if {
	count(authz.allow) == 0 with input as repo(password("dave", ["htpasswd:bob", "bob"]), "team/app")
		with data.registry.namespaces as namespaces
}

# A user literally named "group:ci" (htpasswd and Sourcehut forbid it, but the
# policy must not depend on that) is not a member of group ci.
test_namespace_group_entry_never_matches_subject if {
	count(authz.allow) == 0 with input as repo(password("group:ci", []), "team/app")
		with data.registry.namespaces as namespaces
}

# Groups match as given: "group:ci" is not "group:ci2", and a group named
# after a principal is not that principal's.
test_namespace_group_exact if {
	count(authz.allow) == 0 with input as repo(password("dave", ["ci2", "c", "group:ci"]), "team/app")
		with data.registry.namespaces as namespaces
	count(authz.allow) == 0 with input as repo(password("carol", ["ci"]), "team/app")
		with data.registry.namespaces as {"team": {"pull": ["Group:ci", "group-ci", "groups:ci", "group:", "group:ci2"]}}
}

# "*" is every authenticated identity, whatever its provider.
test_namespace_star_member_any_authenticated if {
	authz.allow == {"pull"} with input as repo(password("dave", []), "open/app")
		with data.registry.namespaces as namespaces
	authz.allow == {"pull"} with input as repo(sourcehut("dave", [], rw), "open/app")
		with data.registry.namespaces as namespaces
	authz.allow == {"pull"} with input as repo(without_namespace(sourcehut("dave", [], rw)), "open/app")
		with data.registry.namespaces as namespaces
	authz.allow == {"pull"} with input as repo(refreshed(password("dave", [])), "open/app")
		with data.registry.namespaces as namespaces
}

test_namespace_star_member_needs_a_subject if {
	count(authz.allow) == 0 with input as repo(object.union(password("dave", []), {"subject": null}), "open/app")
		with data.registry.namespaces as namespaces
	count(authz.allow) == 0 with input as repo(object.remove(password("dave", []), ["subject"]), "open/app")
		with data.registry.namespaces as namespaces
}

test_namespace_star_member_needs_a_provider if {
	count(authz.allow) == 0 with input as repo(object.remove(password("dave", []), ["provider"]), "open/app")
		with data.registry.namespaces as namespaces
	count(authz.allow) == 0 with input as repo(object.remove(sourcehut("dave", [], rw), ["provider"]), "open/app")
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

# Owning the name of a shared namespace gives nothing there (v1 gave the
# htpasswd or Sourcehut user "team" everything on team/*).
test_namespace_and_own_namespace_do_not_combine if {
	count(authz.allow) == 0 with input as repo(password("team", []), "team/app")
		with data.registry.namespaces as namespaces
	authz.allow == {"push"} with input as repo(sourcehut("team", [], rw), "team/app")
		with data.registry.namespaces as {"team": {"push": ["sourcehut:team"]}}
}

# A member's own namespace and its shared namespaces are separate grants.
test_namespace_member_keeps_own_namespace if {
	authz.allow == all_actions with input as repo(password("bob", []), "bob/app")
		with data.registry.namespaces as namespaces
}

test_namespace_only_repositories if {
	count(authz.allow) == 0 with input as input_for(password("bob", []), "registry", "team/app", ["pull"])
		with data.registry.namespaces as namespaces
}

# ---------------------------------------------------------------------------
# Admins: "admins" in identity.groups, which the server computes by
# principal. The policy never makes anyone admin by name.

test_admin_any_repository if {
	authz.allow == {"*"} with input as repo(password("root", ["admins"]), "bob/app")
}

test_admin_own_namespace_too if {
	authz.allow == all_actions | {"*"} with input as repo(password("root", ["admins"]), "root/app")
}

test_admin_inside_shared_namespace if {
	authz.allow == {"*"} with input as repo(password("root", ["admins"]), "ops/app")
		with data.registry.namespaces as namespaces
	authz.allow == {"*"} with input as repo(password("root", ["admins"]), "alice/shared/app")
		with data.registry.namespaces as nested
}

test_admin_catalog if {
	authz.allow == {"*"} with input as catalog(password("root", ["ci", "admins"]))
}

# A Sourcehut admin is one by its groups, like anyone else.
test_admin_sourcehut_by_group if {
	authz.allow == {"*"} with input as repo(sourcehut_all("root", ["admins"]), "bob/app")
	authz.allow == {"*"} with input as catalog(sourcehut_all("root", ["admins"]))
	authz.allow == {"*"} with input as repo(without_namespace(sourcehut("root", ["admins"], rw)), "bob/app")
}

# A Sourcehut "root" that the server did not put in admins (groups say
# htpasswd:root) gets nothing of the admin's: not other repositories, not the
# catalog, and not root/*, which the htpasswd root holds.
test_sourcehut_root_without_admins_is_not_admin if {
	identity := without_namespace(sourcehut_all("root", []))
	count(authz.allow) == 0 with input as repo(identity, "bob/app")
	count(authz.allow) == 0 with input as catalog(identity)
	count(authz.allow) == 0 with input as repo(identity, "root/app")
	count(authz.allow) == 0 with input as repo(without_namespace(sourcehut_all("root", ["ci"])), "bob/app")
	not authz.admin with input as repo(identity, "bob/app")
}

# Being named after a group, or listed in a group by a string that is not
# the group's name, is not being in it.
test_admin_only_by_group_name if {
	count(authz.allow) == 0 with input as repo(password("admins", []), "bob/app")
	count(authz.allow) == 0 with input as repo(password("root", ["group:admins", "Admins", "admin"]), "bob/app")
	count(authz.allow) == 0 with input as catalog(password("root", ["htpasswd:root"]))
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
	count(authz.allow) == 0 with input as repo(object.union(anonymous, {"groups": ["admins"]}), "bob/app")
	count(authz.allow) == 0 with input as catalog(object.union(anonymous, {"groups": ["admins"]}))
}

test_no_provider_in_admins_is_not_admin if {
	identity := object.remove(password("root", ["admins"]), ["provider"])
	count(authz.allow) == 0 with input as repo(identity, "bob/app")
	count(authz.allow) == 0 with input as catalog(identity)
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
	identity := {"method": "sourcehut", "provider": "sourcehut", "subject": "alice", "namespace": "alice", "groups": []}
	authz.allow == {"pull"} with input as repo(identity, "alice/app")
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

# The cap is keyed on the provider: an identity of provider sourcehut is
# capped whatever its method says ...
test_sourcehut_ro_cap_by_provider if {
	# a refresh identity whose refreshed_from alone would not cap it
	identity := object.union(refreshed(sourcehut("alice", [], ro)), {"refreshed_from": "password"})
	authz.allow == {"pull"} with input as repo(identity, "alice/app")
	authz.read_only with input as repo(identity, "alice/app")
	authz.effective_method == "password" with input as repo(identity, "alice/app")

	# a password-method identity of provider sourcehut, without token details
	other := object.union(password("alice", []), {"provider": "sourcehut"})
	authz.allow == {"pull"} with input as repo(other, "alice/app")
}

# ... and on the method, should an identity say sourcehut there but name
# another provider.
test_sourcehut_ro_cap_by_method if {
	identity := object.union(sourcehut("alice", [], ro), {"provider": "htpasswd"})
	authz.allow == {"pull"} with input as repo(identity, "alice/app")
	identity_refreshed := object.union(refreshed(sourcehut("alice", [], ro)), {"provider": "htpasswd"})
	authz.allow == {"pull"} with input as repo(identity_refreshed, "alice/app")
}

# The cap is about Sourcehut tokens only: a password user has no grants.
test_password_user_not_capped if {
	authz.allow == all_actions with input as repo(password("alice", []), "alice/app")
	not authz.read_only with input as repo(password("alice", []), "alice/app")
}

# ---------------------------------------------------------------------------
# Refresh tokens: the identity a refresh token stands for is judged as its
# login was, provider and namespace included. The read-only cap follows a
# Sourcehut token into its refresh tokens; a refreshed password user keeps
# the own-namespace rule.

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
		with data.registry.namespaces as {"team": {"pull": ["htpasswd:alice"], "push": ["htpasswd:alice"]}}
}

# A refresh token keeps its login's provider: the refreshed Sourcehut alice
# is still not htpasswd:alice.
test_refreshed_sourcehut_keeps_provider if {
	count(authz.allow) == 0 with input as repo(refreshed(sourcehut("alice", [], rw)), "team/app")
		with data.registry.namespaces as {"team": {"pull": ["htpasswd:alice"], "push": ["htpasswd:alice"]}}
	authz.allow == {"push"} with input as repo(refreshed(sourcehut("alice", [], rw)), "team/app")
		with data.registry.namespaces as namespaces
}

# ... and its login's namespace, or lack of one.
test_refreshed_sourcehut_without_namespace_owns_nothing if {
	count(authz.allow) == 0 with input as repo(refreshed(without_namespace(sourcehut("alice", [], rw))), "alice/app")
}

test_refreshed_site_namespace_owns_nothing if {
	count(authz.allow) == 0 with input as repo(refreshed(sourcehut("team", [], rw)), "team/app")
		with data.registry.namespaces as namespaces
	authz.allow == {"pull"} with input as repo(refreshed(password("library", [])), "library/alpine")
		with data.registry.public as public
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
	identity := object.union(password("alice", []), {"method": "refresh"})
	authz.allow == {"pull"} with input as repo(identity, "alice/app")
}

test_refresh_from_unknown_method_is_read_only if {
	authz.allow == {"pull"} with input as repo(
		object.union(password("alice", []), {"method": "refresh", "refreshed_from": "refresh"}),
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
	authz.effective_method == "refresh" with input as repo(object.union(password("alice", []), {"method": "refresh"}), "alice/app")
}

# ---------------------------------------------------------------------------
# deny: only input version 2 is understood.

test_deny_empty_for_version_2 if {
	count(authz.deny) == 0 with input as repo(anonymous, "library/alpine")
	count(authz.deny) == 0 with input as repo(password("alice", []), "alice/app")
}

test_deny_version_1 if {
	authz.deny == {"unsupported input version"} with input as object.union(repo(password("alice", []), "alice/app"), {"version": 1})
}

test_deny_version_3 if {
	authz.deny == {"unsupported input version"} with input as object.union(repo(anonymous, "library/alpine"), {"version": 3})
}

test_deny_version_as_string if {
	authz.deny == {"unsupported input version"} with input as object.union(repo(anonymous, "library/alpine"), {"version": "2"})
}

test_deny_missing_version if {
	count(authz.deny) > 0 with input as object.remove(repo(anonymous, "library/alpine"), ["version"])
}

# "group" is no provider: an identity claiming it does not match the
# member "group:ci" by its principal.
test_provider_named_group_is_not_a_group if {
	count(authz.allow) == 0 with input as repo({"method": "password", "provider": "group", "subject": "ci", "namespace": "ci", "groups": []}, "team/app")
		with data.registry.namespaces as namespaces
}

# ---------------------------------------------------------------------------
# OIDC identities and claim rules (data.registry.oidc).

# An OIDC identity as the server sends it: the provider of its authn.oidc
# entry, the subject claim as subject, no namespace, and every claim.
oidc(provider, issuer, claims) := {
	"method": "oidc",
	"provider": provider,
	"subject": claims.sub,
	"groups": [],
	"oidc": {"issuer": issuer, "claims": claims},
}

# Claims shaped as GitHub Actions sends them (every custom claim a string).
github_claims := {
	"iss": "https://token.actions.githubusercontent.com",
	"aud": "registry.example.com",
	"sub": "repo:octo-org/app:ref:refs/heads/main",
	"jti": "6f4d1b1e-0000-4000-8000-000000000001",
	"iat": 1764504000,
	"exp": 1764504300,
	"repository": "octo-org/app",
	"repository_id": "690000001",
	"repository_owner": "octo-org",
	"repository_owner_id": "123456",
	"repository_visibility": "private",
	"ref": "refs/heads/main",
	"ref_type": "branch",
	"sha": "0123456789abcdef0123456789abcdef01234567",
	"event_name": "push",
	"actor": "octocat",
	"workflow": "release",
	"job_workflow_ref": "octo-org/app/.github/workflows/release.yml@refs/heads/main",
	"runner_environment": "github-hosted",
}

github(claims) := oidc("github", "https://token.actions.githubusercontent.com", object.union(github_claims, claims))

# Claims shaped as GitLab CI sends them (ref_protected is a string).
gitlab(claims) := oidc("gitlab", "https://gitlab.com", object.union(
	{
		"sub": "project_path:group/app:ref_type:branch:ref:main",
		"namespace_path": "group",
		"project_path": "group/app",
		"ref": "main",
		"ref_type": "branch",
		"ref_protected": "true",
		"pipeline_source": "push",
		"user_login": "alice",
	},
	claims,
))

# A projected Kubernetes service-account token.
k8s(namespace, account) := oidc("k8s", "https://kubernetes.default.svc.cluster.local", {
	"sub": concat(":", ["system:serviceaccount", namespace, account]),
	"aud": ["registry.example.com"],
	"kubernetes.io": {
		"namespace": namespace,
		"serviceaccount": {"name": account, "uid": "00000000-0000-4000-8000-000000000002"},
		"pod": {"name": "builder-7d9f", "uid": "00000000-0000-4000-8000-000000000003"},
	},
})

oidc_rules := [
	{
		"provider": "github",
		"claims": {"repository_owner": "octo-org", "ref": ["refs/heads/main", "refs/tags/v*"]},
		"repositories": ["{repository}", "{repository}/*"],
		"actions": ["pull", "push"],
	},
	{
		"provider": "gitlab",
		"claims": {"project_path": "group/*", "ref_protected": "true"},
		"repositories": ["gl/{project_path}/**"],
		"actions": ["pull", "push"],
	},
	{
		"provider": "k8s",
		"claims": {"kubernetes.io": {"namespace": ["ci", "build-*"]}},
		"repositories": ["apps/**"],
		"actions": ["pull"],
	},
]

# One rule for provider "github" with the given claims and patterns,
# granting pull and push.
github_rule(claims, repositories) := [{"provider": "github", "claims": claims, "repositories": repositories, "actions": ["pull", "push"]}]

test_fixture_oidc if {
	i := github({"ref": "refs/tags/v1"})
	i.method == "oidc"
	i.provider == "github"
	i.subject == "repo:octo-org/app:ref:refs/heads/main"
	i.oidc.claims.ref == "refs/tags/v1"
	i.oidc.claims.repository == "octo-org/app"
	not "namespace" in object.keys(i)
	k8s("ci", "builder").subject == "system:serviceaccount:ci:builder"
	refreshed(i).refreshed_from == "oidc"
	refreshed(i).oidc == i.oidc
}

# Nothing by default: no rules, no personal namespace, no "*" membership.
test_oidc_nothing_without_rules if {
	count(authz.allow) == 0 with input as repo(github({}), "octo-org/app")
	count(authz.allow) == 0 with input as repo(github({}), "octo-org/app")
		with data.registry.namespaces as namespaces
		with data.registry.reserved as reserved
}

test_oidc_no_personal_namespace if {
	# Should the server ever send a namespace for an OIDC identity, it
	# owns nothing by it.
	identity := object.union(github({}), {"namespace": "octo-org"})
	count(authz.allow) == 0 with input as repo(identity, "octo-org/app")
	not authz.own_namespace with input as repo(identity, "octo-org/app")
}

test_oidc_star_member_is_not_oidc if {
	count(authz.allow) == 0 with input as repo(github({}), "open/app")
		with data.registry.namespaces as namespaces
	count(authz.allow) == 0 with input as repo(k8s("ci", "builder"), "open/app")
		with data.registry.namespaces as namespaces
	count(authz.allow) == 0 with input as repo(refreshed(github({})), "open/app")
		with data.registry.namespaces as namespaces

	# accounts still are "*"
	authz.allow == {"pull"} with input as repo(password("bob", []), "open/app")
		with data.registry.namespaces as namespaces
}

# The site may still name an OIDC principal, or put it in a group.
test_oidc_named_principal_and_group if {
	acl := {"team": {"push": ["github:repo:octo-org/app:ref:refs/heads/main"], "pull": ["group:ci"]}}
	authz.allow == {"push"} with input as repo(github({}), "team/app")
		with data.registry.namespaces as acl
	authz.allow == {"pull"} with input as repo(object.union(k8s("ci", "builder"), {"groups": ["ci"]}), "team/app")
		with data.registry.namespaces as acl
}

test_oidc_public_pull if {
	authz.allow == {"pull"} with input as repo(github({}), "library/alpine")
		with data.registry.public as public
}

test_oidc_rule_match if {
	authz.allow == {"pull", "push"} with input as repo(github({}), "octo-org/app")
		with data.registry.oidc as oidc_rules
	authz.allow == {"pull", "push"} with input as repo(github({}), "octo-org/app/cache")
		with data.registry.oidc as oidc_rules
}

test_oidc_rule_only_its_repositories if {
	# "{repository}/*" is one level below, and another repository of the
	# owner is not the token's.
	count(authz.allow) == 0 with input as repo(github({}), "octo-org/app/a/b")
		with data.registry.oidc as oidc_rules
	count(authz.allow) == 0 with input as repo(github({}), "octo-org/other")
		with data.registry.oidc as oidc_rules
	count(authz.allow) == 0 with input as repo(github({}), "octo-org/app2")
		with data.registry.oidc as oidc_rules
	count(authz.allow) == 0 with input as repo(github({}), "octo-org")
		with data.registry.oidc as oidc_rules
}

test_oidc_rule_list_of_globs if {
	authz.allow == {"pull", "push"} with input as repo(github({"ref": "refs/tags/v1.2.3"}), "octo-org/app")
		with data.registry.oidc as oidc_rules

	# no delimiters: * spans "/" and "."
	authz.allow == {"pull", "push"} with input as repo(github({"ref": "refs/tags/v2/rc.1"}), "octo-org/app")
		with data.registry.oidc as oidc_rules
	count(authz.allow) == 0 with input as repo(github({"ref": "refs/tags/release-1"}), "octo-org/app")
		with data.registry.oidc as oidc_rules
	count(authz.allow) == 0 with input as repo(github({"ref": "refs/heads/feature"}), "octo-org/app")
		with data.registry.oidc as oidc_rules
	count(authz.allow) == 0 with input as repo(github({"ref": "refs/pull/7/merge", "event_name": "pull_request"}), "octo-org/app")
		with data.registry.oidc as oidc_rules

	# a glob matches the whole value
	count(authz.allow) == 0 with input as repo(github({"ref": "refs/heads/main2"}), "octo-org/app")
		with data.registry.oidc as oidc_rules
}

test_oidc_rule_claim_mismatch if {
	other := github({"repository_owner": "evil-org", "repository": "evil-org/app", "sub": "repo:evil-org/app:ref:refs/heads/main"})
	count(authz.allow) == 0 with input as repo(other, "evil-org/app")
		with data.registry.oidc as oidc_rules
	count(authz.allow) == 0 with input as repo(other, "octo-org/app")
		with data.registry.oidc as oidc_rules
}

# The owner claim says octo-org, the repository claim names another owner:
# the grant follows the repository claim, so the rule's owner pattern and
# the substituted repository must be consistent in the rule itself.
test_oidc_rule_substitution_uses_the_claim if {
	identity := github({"repository": "octo-org/other"})
	authz.allow == {"pull", "push"} with input as repo(identity, "octo-org/other")
		with data.registry.oidc as oidc_rules
	count(authz.allow) == 0 with input as repo(identity, "octo-org/app")
		with data.registry.oidc as oidc_rules
}

test_oidc_rule_missing_claim if {
	identity := github({})
	no_ref := oidc("github", "https://token.actions.githubusercontent.com", object.remove(github_claims, ["ref"]))
	count(authz.allow) == 0 with input as repo(no_ref, "octo-org/app")
		with data.registry.oidc as oidc_rules

	# "*" needs the claim to be there, and a string
	count(authz.allow) == 0 with input as repo(no_ref, "ci/app")
		with data.registry.oidc as github_rule({"ref": "*"}, ["ci/*"])
	authz.allow == {"pull", "push"} with input as repo(identity, "ci/app")
		with data.registry.oidc as github_rule({"ref": "*"}, ["ci/*"])
	count(authz.allow) == 0 with input as repo(github({"ref": 7}), "ci/app")
		with data.registry.oidc as github_rule({"ref": "*"}, ["ci/*"])
}

test_oidc_rule_provider_mismatch if {
	# GitHub's claims, another provider's token (another issuer whose
	# users may pick any claim values)
	other := object.union(github({}), {"provider": "forgejo"})
	count(authz.allow) == 0 with input as repo(other, "octo-org/app")
		with data.registry.oidc as oidc_rules
	count(authz.allow) == 0 with input as repo(object.remove(github({}), ["provider"]), "octo-org/app")
		with data.registry.oidc as oidc_rules
}

test_oidc_rule_nested_object if {
	authz.allow == {"pull"} with input as repo(k8s("ci", "builder"), "apps/web/frontend")
		with data.registry.oidc as oidc_rules
	authz.allow == {"pull"} with input as repo(k8s("build-42", "default"), "apps/web")
		with data.registry.oidc as oidc_rules
	count(authz.allow) == 0 with input as repo(k8s("prod", "builder"), "apps/web")
		with data.registry.oidc as oidc_rules
	not "push" in authz.allow with input as input_for(k8s("ci", "builder"), "repository", "apps/web", ["push"])
		with data.registry.oidc as oidc_rules
}

test_oidc_rule_nested_object_deeper if {
	rules := [{"provider": "k8s", "claims": {"kubernetes.io": {"namespace": "ci", "serviceaccount": {"name": "pusher"}}}, "repositories": ["apps/**"], "actions": ["pull", "push"]}]
	authz.allow == {"pull", "push"} with input as repo(k8s("ci", "pusher"), "apps/web")
		with data.registry.oidc as rules
	count(authz.allow) == 0 with input as repo(k8s("ci", "builder"), "apps/web")
		with data.registry.oidc as rules
	count(authz.allow) == 0 with input as repo(k8s("prod", "pusher"), "apps/web")
		with data.registry.oidc as rules
}

test_oidc_rule_nested_claim_not_an_object if {
	flat := oidc("k8s", "https://k8s", {"sub": "system:serviceaccount:ci:builder", "kubernetes.io": "ci"})
	count(authz.allow) == 0 with input as repo(flat, "apps/web")
		with data.registry.oidc as oidc_rules

	# a claim named with a dot is not a path
	dotted := oidc("k8s", "https://k8s", {"sub": "system:serviceaccount:ci:builder", "kubernetes.io.namespace": "ci"})
	count(authz.allow) == 0 with input as repo(dotted, "apps/web")
		with data.registry.oidc as oidc_rules
}

test_oidc_rule_booleans_and_numbers if {
	rules := [{"provider": "ci", "claims": {"protected": true, "project_id": 42}, "repositories": ["ci/*"], "actions": ["push"]}]
	ok := oidc("ci", "https://ci", {"sub": "x", "protected": true, "project_id": 42})
	authz.allow == {"push"} with input as repo(ok, "ci/app")
		with data.registry.oidc as rules
	authz.allow == {"push"} with input as repo(oidc("ci", "https://ci", {"sub": "x", "protected": true, "project_id": 42.0}), "ci/app")
		with data.registry.oidc as rules

	# of their type: not the strings, nor the other boolean
	count(authz.allow) == 0 with input as repo(oidc("ci", "https://ci", {"sub": "x", "protected": "true", "project_id": 42}), "ci/app")
		with data.registry.oidc as rules
	count(authz.allow) == 0 with input as repo(oidc("ci", "https://ci", {"sub": "x", "protected": true, "project_id": "42"}), "ci/app")
		with data.registry.oidc as rules
	count(authz.allow) == 0 with input as repo(oidc("ci", "https://ci", {"sub": "x", "protected": false, "project_id": 42}), "ci/app")
		with data.registry.oidc as rules

	# and a string pattern matches no boolean
	count(authz.allow) == 0 with input as repo(oidc("ci", "https://ci", {"sub": "x", "protected": true, "project_id": 42}), "ci/app")
		with data.registry.oidc as [{"provider": "ci", "claims": {"protected": "true"}, "repositories": ["ci/*"], "actions": ["push"]}]
}

test_oidc_rule_gitlab_ref_protected_string if {
	authz.allow == {"pull", "push"} with input as repo(gitlab({}), "gl/group/app/image")
		with data.registry.oidc as oidc_rules
	count(authz.allow) == 0 with input as repo(gitlab({"ref_protected": "false"}), "gl/group/app/image")
		with data.registry.oidc as oidc_rules
	count(authz.allow) == 0 with input as repo(gitlab({"ref_protected": true}), "gl/group/app/image")
		with data.registry.oidc as oidc_rules
}

test_oidc_rule_array_claim_matches_nothing if {
	rules := github_rule({"aud": "registry.example.com"}, ["ci/*"])
	count(authz.allow) == 0 with input as repo(github({"aud": ["registry.example.com"]}), "ci/app")
		with data.registry.oidc as rules
	authz.allow == {"pull", "push"} with input as repo(github({}), "ci/app")
		with data.registry.oidc as rules
}

test_oidc_rule_actions if {
	star := [{"provider": "github", "claims": {"repository_owner": "octo-org"}, "repositories": ["{repository}"], "actions": ["*"]}]
	authz.allow == {"*"} with input as repo(github({}), "octo-org/app")
		with data.registry.oidc as star

	# no catalog, whatever the rule says
	count(authz.allow) == 0 with input as catalog(github({}))
		with data.registry.oidc as star
	delete_only := [{"provider": "github", "claims": {"repository_owner": "octo-org"}, "repositories": ["{repository}"], "actions": ["delete"]}]
	authz.allow == {"delete"} with input as repo(github({}), "octo-org/app")
		with data.registry.oidc as delete_only
}

test_oidc_rules_add_up if {
	rules := [
		{"provider": "github", "claims": {"repository_owner": "octo-org"}, "repositories": ["shared/*"], "actions": ["pull"]},
		{"provider": "github", "claims": {"repository": "octo-org/app"}, "repositories": ["shared/*"], "actions": ["push"]},
	]
	authz.allow == {"pull", "push"} with input as repo(github({}), "shared/base")
		with data.registry.oidc as rules
	authz.allow == {"pull"} with input as repo(github({"repository": "octo-org/lib"}), "shared/base")
		with data.registry.oidc as rules
}

test_oidc_rule_without_claims_matches_nothing if {
	count(authz.allow) == 0 with input as repo(github({}), "ci/app")
		with data.registry.oidc as github_rule({}, ["ci/*"])
	count(authz.allow) == 0 with input as repo(k8s("ci", "builder"), "apps/x")
		with data.registry.oidc as [{"provider": "k8s", "claims": {"kubernetes.io": {}}, "repositories": ["apps/**"], "actions": ["pull"]}]
	count(authz.allow) == 0 with input as repo(k8s("ci", "builder"), "apps/x")
		with data.registry.oidc as [{"provider": "k8s", "claims": {"kubernetes.io": {"namespace": "ci", "pod": {}}}, "repositories": ["apps/**"], "actions": ["pull"]}]
}

# Only OIDC logins: an account's identity never matches a claim rule, not
# even with claims of its own.
test_oidc_rules_not_for_accounts if {
	rules := [{"provider": "htpasswd", "claims": {"repository_owner": "*"}, "repositories": ["**"], "actions": ["*"]}]
	with_claims := object.union(password("alice", []), {"oidc": {"issuer": "x", "claims": {"repository_owner": "octo-org"}}})
	count(authz.allow) == 0 with input as repo(with_claims, "bob/app")
		with data.registry.oidc as rules

	# and identity.oidc alone makes it an OIDC identity: no namespace
	count(authz.allow) == 0 with input as repo(with_claims, "alice/app")
		with data.registry.oidc as rules
	authz.allow == all_actions with input as repo(password("alice", []), "alice/app")
		with data.registry.oidc as rules
}

test_oidc_rules_need_the_claims if {
	identity := object.remove(github({}), ["oidc"])
	count(authz.allow) == 0 with input as repo(identity, "octo-org/app")
		with data.registry.oidc as oidc_rules
	bad := object.union(github({}), {"oidc": {"issuer": "x", "claims": "repository_owner=octo-org"}})
	count(authz.allow) == 0 with input as repo(bad, "octo-org/app")
		with data.registry.oidc as oidc_rules
	anonymous_with_claims := object.union(anonymous, {"oidc": github({}).oidc})
	count(authz.allow) == 0 with input as repo(anonymous_with_claims, "octo-org/app")
		with data.registry.oidc as oidc_rules
	no_subject := object.union(github({}), {"subject": ""})
	count(authz.allow) == 0 with input as repo(no_subject, "octo-org/app")
		with data.registry.oidc as oidc_rules
}

# A refresh token of an OIDC login carries the claims: the rules keep
# deciding, with no read-only cap, and no more than at the login.
test_oidc_refresh if {
	authz.allow == {"pull", "push"} with input as repo(refreshed(github({})), "octo-org/app")
		with data.registry.oidc as oidc_rules
	count(authz.allow) == 0 with input as repo(refreshed(github({"ref": "refs/heads/dev"})), "octo-org/app")
		with data.registry.oidc as oidc_rules
	authz.allow == {"pull"} with input as repo(refreshed(k8s("ci", "builder")), "apps/web")
		with data.registry.oidc as oidc_rules
	not authz.read_only with input as repo(refreshed(github({})), "octo-org/app")
	authz.effective_method == "oidc" with input as repo(refreshed(github({})), "octo-org/app")
}

# A refresh identity that says oidc but is no OIDC login of the provider
# the rule names gets nothing from the rules.
test_oidc_refresh_of_another_login if {
	pw := object.union(refreshed(password("alice", [])), {"oidc": github({}).oidc})
	count(authz.allow) == 0 with input as repo(pw, "octo-org/app")
		with data.registry.oidc as oidc_rules
	liar := object.union(refreshed(password("alice", [])), {"refreshed_from": "oidc"})
	count(authz.allow) == 0 with input as repo(liar, "alice/app")
		with data.registry.oidc as oidc_rules
}

# The Sourcehut read-only cap is untouched by the rules.
test_oidc_rules_and_sourcehut_cap if {
	authz.allow == {"pull"} with input as repo(sourcehut("alice", [], ro), "alice/app")
		with data.registry.oidc as oidc_rules
	authz.allow == {"pull"} with input as repo(refreshed(sourcehut("alice", [], ro)), "alice/app")
		with data.registry.oidc as oidc_rules
}

# {claim}: the value is lowercased, and must be a repository path.
test_oidc_substitution_lowercased if {
	identity := github({"repository": "Octo-Org/My_App", "repository_owner": "Octo-Org"})
	rules := github_rule({"repository_owner": "Octo-Org"}, ["{repository}"])
	authz.allow == {"pull", "push"} with input as repo(identity, "octo-org/my_app")
		with data.registry.oidc as rules
}

test_claim_value if {
	authz.claim_value("repository") == "octo-org/app" with input as repo(github({}), "x/y")
	authz.claim_value("repository") == "a.b/c__d/e--f/g_h/1" with input as repo(github({"repository": "A.b/C__d/e--f/g_h/1"}), "x/y")
	authz.claim_value("ref_type") == "branch" with input as repo(github({}), "x/y")
	authz.claim_value("ref") == "refs/heads/main" with input as repo(github({}), "x/y")
	not authz.claim_value("sub") with input as repo(github({}), "x/y")
	not authz.claim_value("job_workflow_ref") with input as repo(github({}), "x/y")
	not authz.claim_value("iat") with input as repo(github({}), "x/y")
	not authz.claim_value("missing") with input as repo(github({}), "x/y")
	not authz.claim_value("kubernetes.io") with input as repo(k8s("ci", "b"), "x/y")
	not authz.claim_value("sub") with input as repo(k8s("ci", "b"), "x/y")
	every bad in injections {
		not authz.claim_value("repository") with input as repo(github({"repository": bad}), "x/y")
	}
}

# Claim values that must never become (part of) a pattern.
injections := [
	"*", "**", "?", "octo-org/*", "octo-org/**", "*/*", "octo-org/[a-z]*", "octo-org/{app,other}",
	"{repository}", "octo-org/app/../victim", "../victim", "octo-org//app", "/octo-org/app", "octo-org/app/",
	"", " ", "octo-org/app ", "octo-org\\app", "host:5000/octo-org/app", "octo-org/app:latest",
	"octo-org/app@sha256", "-octo", "octo-", "octo..org", "octo_/app", "\u212aorg/app", "ünïcode/app",
	"octo-org/app\n", "octo-org\u0000/app",
]

test_oidc_substitution_injection_never_widens if {
	patterns := ["{repository}", "{repository}/*", "ci/{repository}/*", "{repository_owner}/{repository}"]

	# no pattern is made of any of them
	every bad in injections {
		every pattern in patterns {
			not authz.expand(pattern) with input as repo(github({"repository": bad}), "x/y")
		}
	}

	# and end to end, for the widest of them
	rules := github_rule({"repository_owner": "octo-org"}, patterns)
	every bad in ["*", "**", "octo-org/*", "octo-org/**", "\u212aorg/app", "octo-org/app/../victim"] {
		every victim in ["octo-org/victim", "korg/app", "ci/octo-org/victim/x", "octo-org/octo-org/victim"] {
			count(authz.allow) == 0 with input as repo(github({"repository": bad}), victim)
				with data.registry.oidc as rules
		}
	}
}

test_oidc_substitution_missing_or_not_a_string if {
	rules := github_rule({"repository_owner": "octo-org"}, ["ci/{repository_id}/*", "{nope}/*"])
	count(authz.allow) == 0 with input as repo(github({"repository_id": 690000001}), "ci/690000001/app")
		with data.registry.oidc as rules
	count(authz.allow) == 0 with input as repo(github({"repository_id": ["a"]}), "ci/a/app")
		with data.registry.oidc as rules
	count(authz.allow) == 0 with input as repo(github({"repository_id": {"a": "b"}}), "ci/a/app")
		with data.registry.oidc as rules
	authz.allow == {"pull", "push"} with input as repo(github({}), "ci/690000001/app")
		with data.registry.oidc as rules
}

# A pattern with braces that are no claim reference matches nothing (the
# schema refuses it too).
test_oidc_substitution_stray_braces if {
	every pattern in ["{repository", "repository}", "{}/x", "{a,b}/x", "{{repository}}"] {
		count(authz.allow) == 0 with input as repo(github({"a,b": "x"}), "octo-org/app")
			with data.registry.oidc as github_rule({"repository_owner": "octo-org"}, [pattern])
	}
}

test_pattern_braces if {
	authz.compile_pattern("static/*").braces == "none"
	authz.compile_pattern("{repository}").braces == "first"
	authz.compile_pattern("{repository_owner}/*").braces == "first"
	authz.compile_pattern("x{ref_type}/*").braces == "first"
	authz.compile_pattern("gh/{repository}").braces == "later"
	authz.compile_pattern("gh/x/{ref_type}").braces == "later"
	authz.compile_pattern("gh/{").braces == "later"
}

test_expand if {
	authz.expand("{repository}/*") == "octo-org/app/*" with input as repo(github({}), "x/y")
	authz.expand("gh/{repository_owner}/{ref_type}") == "gh/octo-org/branch" with input as repo(github({}), "x/y")
	authz.expand("static/*") == "static/*" with input as repo(github({}), "x/y")
	not authz.expand("{sub}") with input as repo(github({}), "x/y")
	not authz.expand("{repository}/{sub}") with input as repo(github({}), "x/y")
	not authz.expand("{repository}/{iat}") with input as repo(github({}), "x/y")
}

# Site configuration beats claims: a claim that names the first segment
# never lands in a namespace the site took, nor any claim inside a shared
# namespace. A pattern without a claim is the site's word.
test_oidc_substitution_site_namespaces if {
	rules := github_rule({"repository_owner": "*"}, ["{repository}", "{repository_owner}/*"])

	# a public pattern's namespace: what anyone gets, no more
	authz.allow == {"pull"} with input as repo(github({"repository": "library/alpine", "repository_owner": "library"}), "library/alpine")
		with data.registry.oidc as rules
		with data.registry.public as public
	count(authz.allow) == 0 with input as repo(github({"repository": "library/alpine", "repository_owner": "library"}), "library/x/y")
		with data.registry.oidc as rules
		with data.registry.public as public

	# a shared namespace
	count(authz.allow) == 0 with input as repo(github({"repository": "team/app", "repository_owner": "team"}), "team/app")
		with data.registry.oidc as rules
		with data.registry.namespaces as namespaces

	# a reserved name
	count(authz.allow) == 0 with input as repo(github({"repository": "admin/app", "repository_owner": "admin"}), "admin/app")
		with data.registry.oidc as rules
		with data.registry.reserved as reserved

	# elsewhere the same rule applies
	authz.allow == {"pull", "push"} with input as repo(github({"repository": "someone/app", "repository_owner": "someone"}), "someone/app")
		with data.registry.oidc as rules
		with data.registry.namespaces as namespaces
		with data.registry.reserved as reserved
		with data.registry.public as public
}

# A claim may name a repository that is a nested shared namespace's own
# name ("alice/shared": no namespace holds it, and its first segment is no
# site namespace), though nothing inside it.
test_oidc_substitution_names_a_nested_namespace if {
	rules := github_rule({"repository_owner": "*"}, ["{repository}", "{repository}/*"])
	authz.allow == {"pull", "push"} with input as repo(github({"repository": "alice/shared"}), "alice/shared")
		with data.registry.oidc as rules
		with data.registry.namespaces as nested
	count(authz.allow) == 0 with input as repo(github({"repository": "alice/shared"}), "alice/shared/app")
		with data.registry.oidc as rules
		with data.registry.namespaces as nested
}

test_oidc_substitution_after_a_site_prefix if {
	rules := github_rule({"repository_owner": "*"}, ["gh/{repository}"])

	# the site reserved "gh" for this: the claim names what is below it
	authz.allow == {"pull", "push"} with input as repo(github({"repository": "admin/app"}), "gh/admin/app")
		with data.registry.oidc as rules
		with data.registry.reserved as ["gh", "admin"]

	# but never a repository inside a shared namespace
	count(authz.allow) == 0 with input as repo(github({"repository": "team/app"}), "gh/team/app")
		with data.registry.oidc as rules
		with data.registry.namespaces as {"gh/team": {"pull": ["htpasswd:bob"]}}
}

test_oidc_static_pattern_is_the_sites_word if {
	rules := github_rule({"repository_owner": "octo-org"}, ["team/*", "library/*"])
	authz.allow == {"pull", "push"} with input as repo(github({}), "team/app")
		with data.registry.oidc as rules
		with data.registry.namespaces as namespaces
	authz.allow == {"pull", "push"} with input as repo(github({}), "library/alpine")
		with data.registry.oidc as rules
		with data.registry.public as public
}

# Anyone else's requests are decided as before with rules in the data.
test_oidc_rules_leave_others_alone if {
	authz.allow == all_actions with input as repo(password("alice", []), "alice/app")
		with data.registry.oidc as oidc_rules
	count(authz.allow) == 0 with input as repo(anonymous, "octo-org/app")
		with data.registry.oidc as oidc_rules
	authz.allow == {"*"} with input as catalog(password("root", ["admins"]))
		with data.registry.oidc as oidc_rules
}

# ---------------------------------------------------------------------------
# The caller's grants, as allow tests them (worked out once per caller by
# the server).

test_pull_only if {
	authz.pull_only(["pull", "push"]) == ["pull"]
	authz.pull_only(["*"]) == ["pull"]
	authz.pull_only({"push", "delete"}) == []
	authz.pull_only([]) == []
}

test_grant_actions if {
	authz.grant_actions == "actions" with input as repo(password("alice", []), "x/y")
	authz.grant_actions == "actions" with input as repo(anonymous, "x/y")
	authz.grant_actions == "actions" with input as repo(sourcehut("alice", [], rw), "x/y")
	authz.grant_actions == "pull_only" with input as repo(sourcehut("alice", [], ro), "x/y")
	authz.grant_actions == "pull_only" with input as repo(refreshed(sourcehut("alice", [], ro)), "x/y")
	authz.grant_actions == "pull_only" with input as repo(object.union(password("alice", []), {"method": "refresh"}), "x/y")

	# A caller that names no method: nothing, unless it is capped.
	not authz.grant_actions with input as repo(object.remove(password("alice", []), ["method"]), "x/y")
	authz.grant_actions == "pull_only" with input as repo(object.remove(sourcehut("alice", [], ro), ["method"]), "x/y")
}

test_no_method_public_only_when_capped if {
	count(authz.allow) == 0 with input as repo(object.remove(password("alice", []), ["method"]), "library/base")
		with data.registry.public as public
	count(authz.allow) == 0 with input as repo(object.remove(password("alice", []), ["method"]), "alice/app")
	authz.allow == {"pull"} with input as repo(object.remove(sourcehut("alice", [], ro), ["method"]), "library/base")
		with data.registry.public as public
}

test_member_grants if {
	authz.member_grants["group:ci"] == [{"prefix": "team/", "actions": {"pull"}, "pull_only": ["pull"]}] with data.registry.namespaces as namespaces
	authz.member_grants["*"] == [{"prefix": "open/", "actions": {"pull"}, "pull_only": ["pull"]}] with data.registry.namespaces as namespaces
	{grant | some grant in authz.member_grants["group:ops"]} == {
		{"prefix": "team/", "actions": {"delete"}, "pull_only": []},
		{"prefix": "ops/", "actions": {"*"}, "pull_only": ["pull"]},
	} with data.registry.namespaces as namespaces
	not authz.member_grants["htpasswd:nobody"] with data.registry.namespaces as namespaces
}

test_caller_shared_grants if {
	{grant | some grant in authz.caller_shared_grants} == {
		{"prefix": "team/", "actions": {"pull"}},
		{"prefix": "open/", "actions": {"pull"}},
		{"prefix": "team/", "actions": {"delete"}},
		{"prefix": "ops/", "actions": {"*"}},
	} with input as repo(password("bob", ["ops"]), "x/y")
		with data.registry.namespaces as namespaces

	# Capped: pull where the grant gives pull or "*", nothing elsewhere.
	{grant | some grant in authz.caller_shared_grants} == {
		{"prefix": "open/", "actions": ["pull"]},
		{"prefix": "team/", "actions": []},
		{"prefix": "ops/", "actions": ["pull"]},
	} with input as repo(sourcehut("carol", ["ops"], ro), "x/y")
		with data.registry.namespaces as namespaces

	# OIDC identities are not "*".
	authz.caller_shared_grants == [] with input as repo(github({}), "x/y")
		with data.registry.namespaces as namespaces
	authz.caller_shared_grants == [] with input as repo(anonymous, "x/y")
		with data.registry.namespaces as namespaces
}

# The own namespace is checked against the shared namespaces per repository
# only when one may be inside it (or it inside one).
test_own_guarded if {
	authz.own_guarded with input as repo(password("alice", []), "x/y")
		with data.registry.namespaces as nested
	not authz.own_guarded with input as repo(password("bob", []), "x/y")
		with data.registry.namespaces as nested
	not authz.own_guarded with input as repo(password("alice", []), "x/y")
		with data.registry.namespaces as {"alicex": {"pull": ["*"]}}
	authz.own_guarded with input as repo(object.union(password("alice", []), {"namespace": "ali"}), "x/y")
		with data.registry.namespaces as {"ali/ce": {"pull": ["*"]}}
	authz.caller_guarded_grants == [{"prefix": "alice/", "actions": ["pull", "push", "delete"]}] with input as repo(password("alice", []), "x/y")
		with data.registry.namespaces as nested
	not authz.caller_own_grants with input as repo(password("alice", []), "x/y")
		with data.registry.namespaces as nested
	authz.caller_own_grants == [{"prefix": "bob/", "actions": ["pull"]}] with input as repo(sourcehut("bob", [], ro), "x/y")
		with data.registry.namespaces as nested
	not authz.caller_guarded_grants with input as repo(sourcehut("bob", [], ro), "x/y")
		with data.registry.namespaces as nested
}

test_may_enter_shared_namespace if {
	authz.may_enter_shared_namespace("team/") with data.registry.namespaces as namespaces
	authz.may_enter_shared_namespace("team/app/") with data.registry.namespaces as namespaces
	authz.may_enter_shared_namespace("te") with data.registry.namespaces as namespaces
	authz.may_enter_shared_namespace("") with data.registry.namespaces as namespaces
	not authz.may_enter_shared_namespace("teams/") with data.registry.namespaces as namespaces
	not authz.may_enter_shared_namespace("octo-org/app") with data.registry.namespaces as namespaces
	not authz.may_enter_shared_namespace("") with data.registry.namespaces as {}
}

test_caller_patterns if {
	public_grants := [
		{"pattern": "library/*", "actions": ["pull"], "pull_only": ["pull"]},
		{"pattern": "mirror/**", "actions": ["pull"], "pull_only": ["pull"]},
	]
	authz.caller_patterns == public_grants with input as repo(anonymous, "x/y") with data.registry.public as public
	authz.caller_patterns == public_grants with input as repo(password("alice", []), "x/y") with data.registry.public as public
	authz.caller_patterns == public_grants with input as repo(sourcehut("alice", [], ro), "x/y") with data.registry.public as public
	authz.caller_patterns == [] with input as repo(object.remove(password("alice", []), ["method"]), "x/y")
		with data.registry.public as public

	# Admins: every repository, pull only when capped.
	authz.caller_patterns == [
		{"pattern": "library/*", "actions": ["pull"]},
		{"pattern": "**", "actions": ["*"]},
	] with input as repo(password("root", ["admins"]), "x/y")
		with data.registry.public as ["library/*"]
	authz.caller_patterns == [
		{"pattern": "library/*", "actions": ["pull"]},
		{"pattern": "**", "actions": ["pull"]},
	] with input as repo(sourcehut("root", ["admins"], ro), "x/y")
		with data.registry.public as ["library/*"]
}

# An OIDC caller's claim rules are no grants of the caller: its patterns
# are the public ones, and the claim rules are tested per repository.
test_caller_patterns_oidc if {
	rules := github_rule({"repository_owner": "octo-org"}, ["{repository}", "{repository}/*", "team/{repository}", "ci/*"])
	authz.caller_patterns == [{"pattern": "library/*", "actions": ["pull"], "pull_only": ["pull"]}] with input as repo(github({}), "x/y")
		with data.registry.oidc as rules
		with data.registry.public as ["library/*"]
	not authz.caller_guarded_grants with input as repo(github({}), "x/y")
		with data.registry.oidc as rules
	every name in ["ci/x", "octo-org/app", "octo-org/app/x", "team/octo-org/app"] {
		authz.allow == {"pull", "push"} with input as repo(github({}), name)
			with data.registry.oidc as rules
	}

	# Inside a shared namespace, a pattern with a claim does not apply.
	count(authz.allow) == 0 with input as repo(github({}), "team/octo-org/app")
		with data.registry.oidc as rules
		with data.registry.namespaces as namespaces
}
