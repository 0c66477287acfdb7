# Tests for the github-actions bundle, run against the bundle's own
# data.json: `opa test -b bundles/github-actions/`.
#
# data.json holds
#   provider:     "github"
#   repositories: ["octo-org/*", "octo-tools/ci"]
#   owner_ids:    {"octo-org": "123456"}
#   push_refs:    ["refs/heads/main", "refs/tags/v*"]
#   push_events:  ["push", "release", "workflow_dispatch"]
#   reserved:     ["admin", "v2"]
#
# Where a test needs other data it mocks one key at a time
# (with data.registry.push_refs as ...): data.registry also holds this
# package, so mocking data.registry whole would replace the policy.
package registry.authz_test

import data.registry.authz

# ---------------------------------------------------------------------------
# Fixtures: input version 2.

service := "registry.example.com"

anonymous := {"method": "anonymous", "subject": "", "groups": []}

password(subject, groups) := {
	"method": "password",
	"provider": "htpasswd",
	"subject": subject,
	"namespace": subject,
	"groups": groups,
}

sourcehut_ro(username) := {
	"method": "sourcehut",
	"provider": "sourcehut",
	"subject": username,
	"namespace": username,
	"groups": [],
	"sourcehut": {
		"username": username, "client_id": "", "expires": "2030-01-01T00:00:00Z", "all_grants": false, "access": "RO",
		"grants": [{"service": service, "scope": "REGISTRY", "access": "RO"}],
	},
}

# The claims of a push to main of octo-org/app, as GitHub sends them.
claims := {
	"iss": "https://token.actions.githubusercontent.com",
	"aud": service,
	"sub": "repo:octo-org/app:ref:refs/heads/main",
	"jti": "6f4d1b1e-0000-4000-8000-000000000001",
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
	"runner_environment": "github-hosted",
}

# A job's identity: the claims above, changed by changes.
job(changes) := {
	"method": "oidc",
	"provider": "github",
	"subject": c.sub,
	"groups": [],
	"oidc": {"issuer": "https://token.actions.githubusercontent.com", "claims": c},
} if {
	c := object.union(claims, changes)
}

refreshed(identity) := object.union(identity, {"method": "refresh", "refreshed_from": identity.method})

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

# ---------------------------------------------------------------------------
# The bundle's data.json is what the tests see.

test_data_json_loaded if {
	data.registry.repositories == ["octo-org/*", "octo-tools/ci"]
	data.registry.owner_ids == {"octo-org": "123456"}
}

# ---------------------------------------------------------------------------
# Jobs of allowed repositories.

test_push_from_main if {
	authz.allow == {"pull", "push"} with input as repo(job({}), "octo-org/app")
}

test_push_below_the_repository if {
	authz.allow == {"pull", "push"} with input as repo(job({}), "octo-org/app/cache")
	authz.allow == {"pull", "push"} with input as repo(job({}), "octo-org/app/a/b")
}

test_push_from_a_version_tag if {
	tag := job({"ref": "refs/tags/v1.2.0", "ref_type": "tag"})
	authz.allow == {"pull", "push"} with input as repo(tag, "octo-org/app")
	authz.allow == {"pull", "push"} with input as repo(object.union(tag, {"oidc": {"claims": {"event_name": "release"}}}), "octo-org/app")
}

test_other_refs_pull_only if {
	authz.allow == {"pull"} with input as repo(job({"ref": "refs/heads/feature"}), "octo-org/app")
	authz.allow == {"pull"} with input as repo(job({"ref": "refs/tags/nightly"}), "octo-org/app")
	authz.allow == {"pull"} with input as repo(job({"ref": "refs/heads/main2"}), "octo-org/app")
}

test_pull_requests_pull_only if {
	pr := job({"ref": "refs/pull/7/merge", "event_name": "pull_request", "head_ref": "feature", "base_ref": "main"})
	authz.allow == {"pull"} with input as repo(pr, "octo-org/app")

	# pull_request_target runs with the base branch's ref: still no push,
	# even where push_events lists it
	target := job({"event_name": "pull_request_target"})
	authz.allow == {"pull"} with input as repo(target, "octo-org/app")
	authz.allow == {"pull"} with input as repo(target, "octo-org/app")
		with data.registry.push_events as ["push", "pull_request_target"]
}

test_other_events_pull_only if {
	authz.allow == {"pull"} with input as repo(job({"event_name": "issue_comment"}), "octo-org/app")
	authz.allow == {"pull"} with input as repo(job({"event_name": "schedule"}), "octo-org/app")
	authz.allow == {"pull", "push"} with input as repo(job({"event_name": "schedule"}), "octo-org/app")
		with data.registry.push_events as ["schedule"]
}

test_only_its_own_repository if {
	count(authz.allow) == 0 with input as repo(job({}), "octo-org/other")
	count(authz.allow) == 0 with input as repo(job({}), "octo-org/app2")
	count(authz.allow) == 0 with input as repo(job({}), "octo-org")
	count(authz.allow) == 0 with input as repo(job({}), "octo-tools/ci")
}

test_repository_lowercased if {
	authz.allow == {"pull", "push"} with input as repo(job({"repository": "Octo-Org/App", "repository_owner": "Octo-Org"}), "octo-org/app")
}

test_single_repository_pattern if {
	ci := job({"repository": "octo-tools/ci", "repository_owner": "octo-tools", "repository_owner_id": "999"})
	authz.allow == {"pull", "push"} with input as repo(ci, "octo-tools/ci")
	lib := job({"repository": "octo-tools/lib", "repository_owner": "octo-tools", "repository_owner_id": "999"})
	count(authz.allow) == 0 with input as repo(lib, "octo-tools/lib")
}

test_no_repositories_nobody if {
	count(authz.allow) == 0 with input as repo(job({}), "octo-org/app")
		with data.registry.repositories as []
}

# ---------------------------------------------------------------------------
# Everyone else on GitHub gets nothing.

test_other_owner_nothing if {
	evil := job({"repository": "evil-org/app", "repository_owner": "evil-org", "repository_owner_id": "666", "sub": "repo:evil-org/app:ref:refs/heads/main"})
	count(authz.allow) == 0 with input as repo(evil, "evil-org/app")
	count(authz.allow) == 0 with input as repo(evil, "octo-org/app")
}

# octo-org deleted and registered again by someone else: its id differs.
test_owner_id_pinned if {
	count(authz.allow) == 0 with input as repo(job({"repository_owner_id": "666"}), "octo-org/app")
	count(authz.allow) == 0 with input as repo(job({"repository_owner_id": 123456}), "octo-org/app")
	count(authz.allow) == 0 with input as repo(job({"repository": "OCTO-ORG/app", "repository_owner_id": "666"}), "octo-org/app")
	count(authz.allow) == 0 with input as repo(object.union(job({}), {"oidc": {"claims": {"repository_owner_id": null}}}), "octo-org/app")
}

test_repository_claim_never_a_pattern if {
	every bad in ["octo-org/*", "octo-org/**", "*/*", "octo-org/app/extra", "octo-org", "octo-org/ap?", "octo-org/[a]pp", "octo-org/../x", "", 42, "octo-org/\u212aapp", "octo-org/ap p"] {
		every name in ["octo-org/app", "octo-org/x", "octo-org/app/extra", "octo-org/kapp"] {
			count(authz.allow) == 0 with input as repo(job({"repository": bad}), name)
		}
	}
}

test_other_provider_nothing if {
	# the same claims from another issuer (a Forgejo instance, say)
	forgejo := object.union(job({}), {"provider": "forgejo", "oidc": {"issuer": "https://code.example.com/api/actions"}})
	count(authz.allow) == 0 with input as repo(forgejo, "octo-org/app")
	authz.allow == {"pull", "push"} with input as repo(forgejo, "octo-org/app")
		with data.registry.provider as "forgejo"
}

test_oidc_login_only if {
	# a password login carrying identity.oidc gets nothing from it
	pw := object.union(password("alice", []), {"oidc": job({}).oidc})
	count(authz.allow) == 0 with input as repo(pw, "octo-org/app")
	count(authz.allow) == 0 with input as repo(object.union(anonymous, {"oidc": job({}).oidc}), "octo-org/app")

	# a login of another kind said to be GitHub's
	count(authz.allow) == 0 with input as repo(object.union(job({}), {"method": "password"}), "octo-org/app")
	count(authz.allow) == 0 with input as repo(object.union(job({}), {"method": "refresh", "refreshed_from": "password"}), "octo-org/app")
}

test_no_catalog if {
	count(authz.allow) == 0 with input as catalog(job({}))
}

# ---------------------------------------------------------------------------
# Refresh tokens of a job's login keep its claims, and its limits.

test_refresh if {
	authz.allow == {"pull", "push"} with input as repo(refreshed(job({})), "octo-org/app")
	authz.allow == {"pull"} with input as repo(refreshed(job({"event_name": "pull_request"})), "octo-org/app")
	count(authz.allow) == 0 with input as repo(refreshed(job({})), "octo-org/other")
}

# ---------------------------------------------------------------------------
# Accounts.

test_account_own_namespace if {
	authz.allow == {"pull", "push", "delete"} with input as repo(password("alice", []), "alice/app")
	count(authz.allow) == 0 with input as repo(password("alice", []), "octo-org/app")
}

test_github_owner_is_no_account_namespace if {
	count(authz.allow) == 0 with input as repo(password("octo-org", []), "octo-org/app")
	count(authz.allow) == 0 with input as repo(password("admin", []), "admin/app")
}

test_job_owns_no_namespace if {
	count(authz.allow) == 0 with input as repo(object.union(job({}), {"namespace": "someone"}), "someone/x")
}

test_admins if {
	authz.allow == {"*"} with input as repo(password("root", ["admins"]), "octo-org/app")
	authz.allow == {"*"} with input as catalog(password("root", ["admins"]))
}

test_sourcehut_read_only if {
	authz.allow == {"pull"} with input as repo(sourcehut_ro("carol"), "carol/app")
	authz.allow == {"pull"} with input as repo(refreshed(sourcehut_ro("carol")), "carol/app")
}

test_anonymous_nothing if {
	count(authz.allow) == 0 with input as repo(anonymous, "octo-org/app")
}

test_refresh_from_unknown_is_read_only if {
	authz.allow == {"pull"} with input as repo(object.union(password("alice", []), {"method": "refresh", "refreshed_from": "x"}), "alice/app")
}

# ---------------------------------------------------------------------------
# deny.

test_deny_other_versions if {
	count(authz.deny) == 0 with input as repo(job({}), "octo-org/app")
	authz.deny == {"unsupported input version"} with input as object.union(repo(job({}), "octo-org/app"), {"version": 1})
}
