# github-actions: GitHub Actions jobs push their own repository's images,
# with no stored secret.
#
# A job with `permissions: id-token: write` fetches an OIDC ID token for this
# registry's audience and logs in with it (`docker login -u oidc -p "$TOKEN"`);
# the server verifies it against the issuer https://token.actions.githubusercontent.com
# (an authn.oidc entry, named "github" below) and hands this policy an OIDC
# identity: method "oidc" (or "refresh" from an "oidc" login), provider
# "github", and identity.oidc.claims with what GitHub says about the job:
# repository ("octo-org/app"), repository_owner, repository_owner_id, ref
# ("refs/heads/main", "refs/tags/v1.2.0", "refs/pull/7/merge"), event_name
# ("push", "pull_request", ...), and more.
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
#   a job of a repository in      pull on <repository> and everything below it
#   repositories (its owner's     (<repository>/…), lowercased, whatever the
#   id as owner_ids says)         event or ref
#   the same job, for a ref in    push too
#   push_refs and an event in
#   push_events
#   a pull request's job          pull only, whatever push_refs and push_events
#   (event_name pull_request*)    say: its code is the pull request's
#   an account identity with      pull, push, delete on ns/*, unless the site
#   namespace ns (htpasswd,       took ns: a name in reserved, or the owner
#   Sourcehut)                    of a repositories pattern ("octo-org" for
#                                 "octo-org/*"), which is GitHub's here
#   "admins" in identity.groups   everything on every repository, and the
#                                 catalog (registry:catalog:*)
#   a Sourcehut token that is     at most pull, wherever the rules above grant
#   read-only for this registry   more; so do the refresh tokens made from it
#   anything else                 nothing: a job of any other repository (the
#                                 issuer vouches for every repository on
#                                 GitHub), any other OIDC identity
#
# Data (data.json, under data.registry; every key optional; data.schema.json
# describes it, and the server refuses to load data that does not match it):
#
#   provider:     "github"   the authn.oidc entry whose tokens are GitHub's
#                            (identity.provider); default "github"
#   repositories: ["octo-org/*", "octo-tools/ci"]
#                 glob patterns of the repositories (the repository claim,
#                 "owner/name") whose jobs may log in: "*" stays in one
#                 segment; default none, so nobody
#   owner_ids:    {"octo-org": "123456"}
#                 owner -> repository_owner_id (a string, as GitHub sends
#                 it): a job of that owner must carry that id, so an owner
#                 name deleted and registered again by someone else gets
#                 nothing; owners not listed are not checked
#   push_refs:    ["refs/heads/main", "refs/tags/*"]
#                 glob patterns (no delimiters: "*" spans "/") of the refs
#                 that may push; default those two. GitHub's token says
#                 nothing of branch protection: protect these branches and
#                 tags (rulesets) on GitHub.
#   push_events:  ["push", "release", "workflow_dispatch", "schedule"]
#                 events whose jobs may push; default those four. Events
#                 named pull_request* never push, listed or not.
#   reserved:     ["admin"]  names no account owns as a personal namespace
#
# Do not name a data key "authz": this package lives at data.registry.authz.
package registry.authz

# ---------------------------------------------------------------------------
# Data, with defaults. data.registry is read one key at a time: it also
# holds this package, so reading it whole from here would be recursive.

default provider := "github"

provider := data.registry.provider

default repositories := []

repositories := data.registry.repositories

default owner_ids := {}

owner_ids := data.registry.owner_ids

default push_refs := ["refs/heads/main", "refs/tags/*"]

push_refs := data.registry.push_refs

default push_events := ["push", "release", "workflow_dispatch", "schedule"]

push_events := data.registry.push_events

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

# The claims of a GitHub Actions job: an OIDC login (or its refresh token)
# of the provider configured as GitHub's.
claims := input.identity.oidc.claims if {
	authenticated
	effective_method == "oidc"
	input.identity.provider == provider
	is_object(input.identity.oidc.claims)
}

# The job's repository, lowercased as the registry writes names: only when
# the repository claim is "owner/name" of plain name characters (never a
# glob, never more or fewer segments) and repositories allows it.
job_repository := lower(claims.repository) if {
	is_string(claims.repository)
	regex.match(`^[A-Za-z0-9]+(?:(?:[._]|__|-+)[A-Za-z0-9]+)*/[A-Za-z0-9]+(?:(?:[._]|__|-+)[A-Za-z0-9]+)*$`, claims.repository)
	some pattern in repositories
	glob.match(lower(pattern), ["/"], lower(claims.repository))
	owner_id_matches
}

# The owner's id, when owner_ids pins it: the owner is the repository
# claim's first segment (the one the grant is named by), compared
# lowercased, as GitHub's names are case-insensitive.
owner_id_matches if not pinned_owner_id

owner_id_matches if claims.repository_owner_id == pinned_owner_id

pinned_owner_id := owner_ids[lower(split(claims.repository, "/")[0])]

# Events whose job runs a pull request's code; they never push.
pull_request_event if startswith(claims.event_name, "pull_request")

may_push if {
	job_repository
	some pattern in push_refs
	is_string(claims.ref)
	glob.match(pattern, null, claims.ref)
	claims.event_name in push_events
	not pull_request_event
}

# ---------------------------------------------------------------------------
# What is asked about.

repository := input.scope.name if input.scope.type == "repository"

# in_repository(repo, name): name is repo itself or below it.
in_repository(repo, name) if name == repo

in_repository(repo, name) if startswith(name, concat("", [repo, "/"]))

in_namespace(ns, name) if {
	startswith(name, concat("", [ns, "/"]))
	count(name) > count(ns) + 1
}

# site_namespace(name): no account owns it: a reserved name, or an owner a
# repositories pattern names ("octo-org" for "octo-org/*").
site_namespace(name) if name in reserved

site_namespace(name) if {
	some pattern in repositories
	owner := lower(split(pattern, "/")[0])
	not regex.match(`[*?\[\]{}\\]`, owner)
	owner == name
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

granted contains "pull" if in_repository(job_repository, repository)

granted contains "push" if {
	may_push
	in_repository(job_repository, repository)
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
