# Tests for the gitlab-ci bundle, run against the bundle's own data.json:
# `opa test -b bundles/gitlab-ci/`.
#
# data.json holds
#   provider:      "gitlab"
#   projects:      ["my-group/*", "my-group/platform/**"]
#   namespace_ids: {"my-group": "72", "my-group/platform": "73"}
#   reserved:      ["admin", "v2"]
#
# Where a test needs other data it mocks one key at a time
# (with data.registry.projects as ...): data.registry also holds this
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

# The claims of a pipeline for a push to main of my-group/app, as GitLab
# sends them (ids and ref_protected are strings).
claims := {
	"iss": "https://gitlab.com",
	"aud": service,
	"sub": "project_path:my-group/app:ref_type:branch:ref:main",
	"jti": "235b3a54-b797-45c7-ae9a-f72d7bc6ef5b",
	"namespace_id": "72",
	"namespace_path": "my-group",
	"project_id": "20",
	"project_path": "my-group/app",
	"user_id": "1",
	"user_login": "alice",
	"pipeline_id": "574",
	"pipeline_source": "push",
	"job_id": "302",
	"ref": "main",
	"ref_type": "branch",
	"ref_path": "refs/heads/main",
	"ref_protected": "true",
	"runner_id": 1,
	"runner_environment": "gitlab-hosted",
	"sha": "714a629c0b401fdce83e847fc9589983fc6f46bc",
}

# A job's identity: the claims above, changed by changes.
job(changes) := {
	"method": "oidc",
	"provider": "gitlab",
	"subject": c.sub,
	"groups": [],
	"oidc": {"issuer": "https://gitlab.com", "claims": c},
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
	data.registry.projects == ["my-group/*", "my-group/platform/**"]
	data.registry.namespace_ids["my-group"] == "72"
}

# ---------------------------------------------------------------------------
# Jobs of allowed projects.

test_push_from_a_protected_branch if {
	authz.allow == {"pull", "push"} with input as repo(job({}), "my-group/app")
	authz.allow == {"pull", "push"} with input as repo(job({}), "my-group/app/cache")
}

test_push_from_a_protected_tag if {
	tag := job({"ref": "v1.0.0", "ref_type": "tag", "ref_path": "refs/tags/v1.0.0"})
	authz.allow == {"pull", "push"} with input as repo(tag, "my-group/app")
}

test_unprotected_ref_pull_only if {
	authz.allow == {"pull"} with input as repo(job({"ref": "feature", "ref_protected": "false"}), "my-group/app")
}

# ref_protected is a string: the boolean true, or anything else, is no "true".
test_ref_protected_must_be_the_string_true if {
	authz.allow == {"pull"} with input as repo(job({"ref_protected": true}), "my-group/app")
	authz.allow == {"pull"} with input as repo(job({"ref_protected": "True"}), "my-group/app")
	authz.allow == {"pull"} with input as repo(object.union(job({}), {"oidc": {"claims": {"ref_protected": null}}}), "my-group/app")
}

test_merge_request_pipelines_pull_only if {
	mr := job({"pipeline_source": "merge_request_event", "ref": "refs/merge-requests/7/head"})
	authz.allow == {"pull"} with input as repo(mr, "my-group/app")
	authz.allow == {"pull"} with input as repo(job({"pipeline_source": "external_pull_request_event"}), "my-group/app")
}

test_other_pipelines_push if {
	every source in ["web", "schedule", "api", "trigger", "pipeline", "parent_pipeline"] {
		authz.allow == {"pull", "push"} with input as repo(job({"pipeline_source": source}), "my-group/app")
	}
}

test_subgroups if {
	svc := job({"project_path": "my-group/platform/tools/svc", "namespace_path": "my-group/platform/tools", "namespace_id": "99"})
	authz.allow == {"pull", "push"} with input as repo(svc, "my-group/platform/tools/svc")

	# "my-group/*" is one level: its subgroups' projects are not in it
	sub := job({"project_path": "my-group/other/svc", "namespace_path": "my-group/other", "namespace_id": "98"})
	count(authz.allow) == 0 with input as repo(sub, "my-group/other/svc")
}

test_only_its_own_project if {
	count(authz.allow) == 0 with input as repo(job({}), "my-group/other")
	count(authz.allow) == 0 with input as repo(job({}), "my-group/app2")
	count(authz.allow) == 0 with input as repo(job({}), "my-group")
}

test_project_lowercased if {
	authz.allow == {"pull", "push"} with input as repo(job({"project_path": "My-Group/App", "namespace_path": "My-Group"}), "my-group/app")
}

test_no_projects_nobody if {
	count(authz.allow) == 0 with input as repo(job({}), "my-group/app")
		with data.registry.projects as []
}

# ---------------------------------------------------------------------------
# Everyone else on the instance gets nothing.

test_other_group_nothing if {
	evil := job({"project_path": "evil/app", "namespace_path": "evil", "namespace_id": "666", "sub": "project_path:evil/app:ref_type:branch:ref:main"})
	count(authz.allow) == 0 with input as repo(evil, "evil/app")
	count(authz.allow) == 0 with input as repo(evil, "my-group/app")
}

test_namespace_id_pinned if {
	count(authz.allow) == 0 with input as repo(job({"namespace_id": "666"}), "my-group/app")
	count(authz.allow) == 0 with input as repo(job({"namespace_id": 72}), "my-group/app")
	count(authz.allow) == 0 with input as repo(job({"namespace_path": "My-Group", "namespace_id": "666"}), "my-group/app")
	count(authz.allow) == 0 with input as repo(job({"project_path": "my-group/platform/x", "namespace_path": "my-group/platform", "namespace_id": "1"}), "my-group/platform/x")
}

test_project_claim_never_a_pattern if {
	every bad in ["my-group/*", "my-group/**", "*/*", "my-group", "my-group/ap?", "my-group/../x", "my-group//app", "", 42, "my-group/\u212aapp", "my-group/ap p"] {
		every name in ["my-group/app", "my-group/x", "my-group/app/x", "my-group/kapp"] {
			count(authz.allow) == 0 with input as repo(job({"project_path": bad}), name)
		}
	}
}

test_other_provider_nothing if {
	other := object.union(job({}), {"provider": "gitlab-selfhosted", "oidc": {"issuer": "https://gitlab.example.com"}})
	count(authz.allow) == 0 with input as repo(other, "my-group/app")
	authz.allow == {"pull", "push"} with input as repo(other, "my-group/app")
		with data.registry.provider as "gitlab-selfhosted"
}

test_oidc_login_only if {
	pw := object.union(password("alice", []), {"oidc": job({}).oidc})
	count(authz.allow) == 0 with input as repo(pw, "my-group/app")
	count(authz.allow) == 0 with input as repo(object.union(job({}), {"method": "password"}), "my-group/app")
}

test_no_catalog if {
	count(authz.allow) == 0 with input as catalog(job({}))
}

# ---------------------------------------------------------------------------
# Refresh tokens of a job's login keep its claims, and its limits.

test_refresh if {
	authz.allow == {"pull", "push"} with input as repo(refreshed(job({})), "my-group/app")
	authz.allow == {"pull"} with input as repo(refreshed(job({"ref_protected": "false"})), "my-group/app")
}

# ---------------------------------------------------------------------------
# Accounts.

test_account_own_namespace if {
	authz.allow == {"pull", "push", "delete"} with input as repo(password("alice", []), "alice/app")
	count(authz.allow) == 0 with input as repo(password("alice", []), "my-group/app")
}

test_gitlab_group_is_no_account_namespace if {
	count(authz.allow) == 0 with input as repo(password("my-group", []), "my-group/app")
	count(authz.allow) == 0 with input as repo(password("admin", []), "admin/app")
}

test_job_owns_no_namespace if {
	count(authz.allow) == 0 with input as repo(object.union(job({}), {"namespace": "someone"}), "someone/x")
}

test_admins if {
	authz.allow == {"*"} with input as repo(password("root", ["admins"]), "my-group/app")
	authz.allow == {"*"} with input as catalog(password("root", ["admins"]))
}

test_anonymous_nothing if {
	count(authz.allow) == 0 with input as repo(anonymous, "my-group/app")
}

test_deny_other_versions if {
	count(authz.deny) == 0 with input as repo(job({}), "my-group/app")
	authz.deny == {"unsupported input version"} with input as object.union(repo(job({}), "my-group/app"), {"version": 3})
}
