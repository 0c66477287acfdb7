# Tests for the kubernetes bundle, run against the bundle's own data.json:
# `opa test -b bundles/kubernetes/`.
#
# data.json holds
#   clusters: prod:    shop: repositories ["shop/**", "base/*"]
#                      ci:   service_accounts ["builder"], repositories ["base/*", "ci/**"]
#             staging: shop: repositories ["shop/**", "base/*"]
#   reserved: ["admin", "v2"]
#
# Where a test needs other data it mocks one key at a time
# (with data.registry.clusters as ...): data.registry also holds this
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

# A pod's service account of cluster (the provider) in namespace ns, as a
# projected token says it.
pod(cluster, ns, account) := {
	"method": "oidc",
	"provider": cluster,
	"subject": concat(":", ["system:serviceaccount", ns, account]),
	"groups": [],
	"oidc": {
		"issuer": concat("", ["https://", cluster, ".k8s.example.com"]),
		"claims": {
			"iss": concat("", ["https://", cluster, ".k8s.example.com"]),
			"aud": [service],
			"sub": concat(":", ["system:serviceaccount", ns, account]),
			"iat": 1764504000,
			"exp": 1764507600,
			"kubernetes.io": {
				"namespace": ns,
				"serviceaccount": {"name": account, "uid": "00000000-0000-4000-8000-000000000001"},
				"pod": {"name": "web-7d9f", "uid": "00000000-0000-4000-8000-000000000002"},
			},
		},
	},
}

refreshed(identity) := object.union(identity, {"method": "refresh", "refreshed_from": identity.method})

input_for(identity, type, name, actions) := {
	"version": 2,
	"identity": identity,
	"request": {
		"service": service,
		"client_ip": "192.0.2.1",
		"client_id": "containerd",
		"user_agent": "containerd/2.0",
		"time": "2025-01-01T00:00:00Z",
	},
	"scope": {"type": type, "name": name, "actions": actions},
}

repo(identity, name) := input_for(identity, "repository", name, ["pull", "push", "delete"])

catalog(identity) := input_for(identity, "registry", "catalog", ["*"])

# ---------------------------------------------------------------------------
# The bundle's data.json is what the tests see.

test_data_json_loaded if {
	data.registry.clusters.prod.shop.repositories == ["shop/**", "base/*"]
}

# ---------------------------------------------------------------------------
# Pods pull what their namespace may.

test_namespace_pulls if {
	authz.allow == {"pull"} with input as repo(pod("prod", "shop", "default"), "shop/web")
	authz.allow == {"pull"} with input as repo(pod("prod", "shop", "web"), "shop/api/v2")
	authz.allow == {"pull"} with input as repo(pod("prod", "shop", "web"), "base/alpine")
	authz.allow == {"pull"} with input as repo(pod("staging", "shop", "web"), "shop/web")
}

test_only_its_repositories if {
	count(authz.allow) == 0 with input as repo(pod("prod", "shop", "web"), "ci/runner")
	count(authz.allow) == 0 with input as repo(pod("prod", "shop", "web"), "base/a/b")
	count(authz.allow) == 0 with input as repo(pod("prod", "shop", "web"), "shop")
}

test_never_push if {
	allowed := authz.allow with input as repo(pod("prod", "shop", "web"), "shop/web")
	not "push" in allowed
	not "delete" in allowed
	count(authz.allow) == 0 with input as catalog(pod("prod", "ci", "builder"))
}

test_service_accounts if {
	authz.allow == {"pull"} with input as repo(pod("prod", "ci", "builder"), "ci/runner")
	count(authz.allow) == 0 with input as repo(pod("prod", "ci", "default"), "ci/runner")
	count(authz.allow) == 0 with input as repo(pod("prod", "ci", "builder2"), "ci/runner")
}

test_other_namespaces_and_clusters_nothing if {
	count(authz.allow) == 0 with input as repo(pod("prod", "kube-system", "default"), "shop/web")
	count(authz.allow) == 0 with input as repo(pod("staging", "ci", "builder"), "ci/runner")
	count(authz.allow) == 0 with input as repo(pod("dev", "shop", "web"), "shop/web")
}

# Only the claims count: a subject saying another namespace changes nothing,
# and malformed claims grant nothing.
test_claims_decide if {
	liar := object.union(pod("prod", "kube-system", "default"), {"subject": "system:serviceaccount:shop:web"})
	count(authz.allow) == 0 with input as repo(liar, "shop/web")
	flat := object.union(pod("prod", "shop", "web"), {"oidc": {"claims": {"kubernetes.io": "shop"}}})
	count(authz.allow) == 0 with input as repo(flat, "shop/web")
	no_ns := object.union(pod("prod", "shop", "web"), {"oidc": {"claims": {"kubernetes.io": {"namespace": null}}}})
	count(authz.allow) == 0 with input as repo(no_ns, "shop/web")
	dotted := object.union(object.remove(pod("prod", "shop", "web"), ["oidc"]), {"oidc": {"issuer": "x", "claims": {"kubernetes.io.namespace": "shop"}}})
	count(authz.allow) == 0 with input as repo(dotted, "shop/web")
	account_list := object.union(pod("prod", "ci", "builder"), {"oidc": {"claims": {"kubernetes.io": {"serviceaccount": {"name": ["builder"]}}}}})
	count(authz.allow) == 0 with input as repo(account_list, "ci/runner")
}

test_oidc_login_only if {
	pw := object.union(password("alice", []), {"oidc": pod("prod", "shop", "web").oidc})
	count(authz.allow) == 0 with input as repo(pw, "shop/web")
	count(authz.allow) == 0 with input as repo(object.union(pod("prod", "shop", "web"), {"method": "password"}), "shop/web")
}

test_refresh if {
	authz.allow == {"pull"} with input as repo(refreshed(pod("prod", "shop", "web")), "shop/web")
	count(authz.allow) == 0 with input as repo(refreshed(pod("prod", "kube-system", "web")), "shop/web")
}

test_no_clusters_nothing if {
	count(authz.allow) == 0 with input as repo(pod("prod", "shop", "web"), "shop/web")
		with data.registry.clusters as {}
}

# ---------------------------------------------------------------------------
# Accounts.

test_account_own_namespace if {
	authz.allow == {"pull", "push", "delete"} with input as repo(password("alice", []), "alice/app")
	count(authz.allow) == 0 with input as repo(password("alice", []), "shop/web")
	count(authz.allow) == 0 with input as repo(password("admin", []), "admin/app")
}

test_pod_owns_no_namespace if {
	count(authz.allow) == 0 with input as repo(object.union(pod("prod", "shop", "web"), {"namespace": "shop"}), "shop-x/web")
}

test_admins if {
	authz.allow == {"*"} with input as repo(password("root", ["admins"]), "shop/web")
	authz.allow == {"*"} with input as catalog(password("root", ["admins"]))
}

test_anonymous_nothing if {
	count(authz.allow) == 0 with input as repo(anonymous, "shop/web")
}

test_deny_other_versions if {
	count(authz.deny) == 0 with input as repo(pod("prod", "shop", "web"), "shop/web")
	authz.deny == {"unsupported input version"} with input as object.union(repo(pod("prod", "shop", "web"), "shop/web"), {"version": 1})
}
