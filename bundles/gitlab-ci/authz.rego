# gitlab-ci: GitLab CI jobs push their own project's images, with no stored
# secret.
#
# A job asks GitLab for an ID token with this registry's audience
# (`id_tokens: REGISTRY_ID_TOKEN: {aud: registry.example.com}`) and logs in
# with it (`docker login -u oidc -p "$REGISTRY_ID_TOKEN"`); the server
# verifies it against the GitLab instance's issuer (an authn.oidc entry,
# named "gitlab" below) and hands this policy an OIDC identity: method
# "oidc" (or "refresh" from an "oidc" login), provider "gitlab", and
# identity.oidc.claims with what GitLab says about the job: project_path
# ("my-group/my-project", subgroups included), namespace_path,
# namespace_id, ref, ref_type, ref_protected (the STRING "true" or
# "false"), pipeline_source ("push", "merge_request_event", ...), and more.
#
# Input version 2 (policy/README.md, policy/input.schema.json); any other
# version is denied ("unsupported input version"). A principal is the pair
# (provider, subject), written "provider:subject"; an identity is
# authenticated when a method other than anonymous vouched for a non-empty
# subject of a named provider. A refresh token keeps the provider, and the
# claims, of its login.
#
# What it grants:
#
#   a job of a project in projects  pull on <project_path> and everything
#   (its namespace's id as          below it (<project_path>/…), lowercased,
#   namespace_ids says)             for any pipeline
#   the same job on a protected     push too
#   ref (ref_protected "true"),
#   not for a merge request
#   a merge request pipeline        pull only: its code is the merge
#   (pipeline_source                request's (a fork's project_path is the
#   merge_request_event,            fork's own)
#   external_pull_request_event)
#   an account identity with        pull, push, delete on ns/*, unless the
#   namespace ns (htpasswd,         site took ns: a name in reserved, or the
#   Sourcehut)                      top-level group a projects pattern names
#                                   ("my-group" for "my-group/**")
#   "admins" in identity.groups     everything on every repository, and the
#                                   catalog (registry:catalog:*)
#   a Sourcehut token that is       at most pull, wherever the rules above
#   read-only for this registry     grant more; so do its refresh tokens
#   anything else                   nothing: a job of any other project
#                                   (gitlab.com vouches for everyone's)
#
# Data (data.json, under data.registry; every key optional; data.schema.json
# describes it, and the server refuses to load data that does not match it):
#
#   provider:      "gitlab"   the authn.oidc entry whose tokens are this
#                             GitLab's (identity.provider); default "gitlab"
#   projects:      ["my-group/*", "my-group/platform/**"]
#                  glob patterns of the projects (project_path) whose jobs
#                  may log in: "*" stays in one path segment, "**" spans
#                  any depth; default none, so nobody
#   namespace_ids: {"my-group": "72", "my-group/platform": "73"}
#                  namespace_path -> namespace_id (a string, as GitLab sends
#                  it): a job of a project directly in that namespace must
#                  carry that id, so a group deleted and created again by
#                  someone else gets nothing; namespaces not listed (list
#                  subgroups too) are not checked
#   reserved:      ["admin"]  names no account owns as a personal namespace
#
# Protect the branches and tags that may push (GitLab's protected branches
# and tags): ref_protected is all this policy asks of a ref.
#
# Do not name a data key "authz": this package lives at data.registry.authz.
package registry.authz

# ---------------------------------------------------------------------------
# Data, with defaults. data.registry is read one key at a time: it also
# holds this package, so reading it whole from here would be recursive.

default provider := "gitlab"

provider := data.registry.provider

default projects := []

projects := data.registry.projects

default namespace_ids := {}

namespace_ids := data.registry.namespace_ids

default reserved := []

reserved := data.registry.reserved

# ---------------------------------------------------------------------------
# Who is asking.

authenticated if {
	input.identity.method != "anonymous"
	is_string(input.identity.provider)
	input.identity.provider != ""
	is_string(input.identity.subject)
	input.identity.subject != ""
}

# The method that vouched for the subject: for a refresh token, the method
# of the login it was issued at, so a refresh token escapes no rule.
effective_method := input.identity.refreshed_from if {
	input.identity.method == "refresh"
} else := input.identity.method

# An OIDC identity (any provider's): owns no namespace here.
oidc_identity if effective_method == "oidc"

oidc_identity if is_object(input.identity.oidc)

admin if {
	authenticated
	"admins" in input.identity.groups
}

# The claims of a GitLab CI job: an OIDC login (or its refresh token) of
# the provider configured as this GitLab's.
claims := input.identity.oidc.claims if {
	authenticated
	effective_method == "oidc"
	input.identity.provider == provider
	is_object(input.identity.oidc.claims)
}

# The job's project, lowercased as the registry writes names: only when
# project_path is a repository path of plain name characters (never a
# glob) and projects allows it.
job_project := lower(claims.project_path) if {
	is_string(claims.project_path)
	regex.match(`^[A-Za-z0-9]+(?:(?:[._]|__|-+)[A-Za-z0-9]+)*(?:/[A-Za-z0-9]+(?:(?:[._]|__|-+)[A-Za-z0-9]+)*)+$`, claims.project_path)
	some pattern in projects
	glob.match(pattern, ["/"], lower(claims.project_path))
	namespace_id_matches
}

# The namespace's id, when namespace_ids pins it.
namespace_id_matches if not pinned_namespace_id

namespace_id_matches if claims.namespace_id == pinned_namespace_id

pinned_namespace_id := namespace_ids[lower(claims.namespace_path)]

# A merge request's pipeline runs the merge request's code: it never pushes.
merge_request_pipeline if claims.pipeline_source in {"merge_request_event", "external_pull_request_event"}

may_push if {
	job_project
	claims.ref_protected == "true"
	not merge_request_pipeline
}

# ---------------------------------------------------------------------------
# What is asked about.

repository := input.scope.name if input.scope.type == "repository"

# in_project(project, name): name is the project itself or below it.
in_project(project, name) if name == project

in_project(project, name) if startswith(name, concat("", [project, "/"]))

in_namespace(ns, name) if {
	startswith(name, concat("", [ns, "/"]))
	count(name) > count(ns) + 1
}

# site_namespace(name): no account owns it: a reserved name, or the
# top-level group a projects pattern names ("my-group" for "my-group/*").
site_namespace(name) if name in reserved

site_namespace(name) if {
	some pattern in projects
	group := split(pattern, "/")[0]
	not regex.match(`[*?\[\]{}\\]`, group)
	group == name
}

own_namespace := ns if {
	authenticated
	not oidc_identity
	ns := input.identity.namespace
	is_string(ns)
	ns != ""
	not site_namespace(ns)
}

# ---------------------------------------------------------------------------
# granted: what the rules grant before the read-only cap.

granted contains "pull" if in_project(job_project, repository)

granted contains "push" if {
	may_push
	in_project(job_project, repository)
}

granted contains action if {
	in_namespace(own_namespace, repository)
	some action in ["pull", "push", "delete"]
}

granted contains "*" if {
	admin
	input.scope.type == "repository"
}

granted contains "*" if {
	admin
	input.scope.type == "registry"
	input.scope.name == "catalog"
}

# ---------------------------------------------------------------------------
# The Sourcehut read-only cap, as in the default policy.

read_only if {
	input.identity.provider == "sourcehut"
	not input.identity.sourcehut.access == "RW"
}

read_only if {
	effective_method == "sourcehut"
	not input.identity.sourcehut.access == "RW"
}

# Fail closed: a refresh identity that does not say it came from a password,
# Sourcehut or OIDC login is capped too (the server never sends one).
read_only if {
	input.identity.method == "refresh"
	not refreshed_from_login
}

refreshed_from_login if input.identity.refreshed_from in {"password", "sourcehut", "oidc"}

# ---------------------------------------------------------------------------
# The rules the server reads.

allow contains action if {
	not read_only
	some action in granted
}

allow contains "pull" if {
	read_only
	input.scope.type == "repository"
	some action in ["pull", "*"]
	action in granted
}

# Input version 2 only (version 1 had no providers).
deny contains "unsupported input version" if not input.version == 2
