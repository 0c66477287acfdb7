# Directory (authn.ldap) identities against the default policy: method
# "password", the directory's name as provider, and the directory's groups
# qualified by it ("corp:devs"), which namespace ACLs name as
# "group:corp:devs". Nothing here is special to directories: groups are
# generic, and these tests hold the policy to that.
package registry.authz_test

import data.registry.authz

ldap_namespaces := {
	"team": {"pull": ["group:corp:devs"], "push": ["group:corp:ops"]},
	"shared": {"pull": ["*"]},
	"lenas": {"*": ["corp:lena"]},
}

# A directory user as the server sends it: no personal namespace.
ldap_user(subject, groups) := {
	"method": "password",
	"provider": "corp",
	"subject": subject,
	"groups": groups,
}

ldap_request(identity, name, actions) := {
	"version": 2,
	"identity": identity,
	"request": {"service": "registry.example.com", "client_ip": "192.0.2.1", "client_id": "docker", "user_agent": "docker/27.0", "time": "2025-01-01T00:00:00Z"},
	"scope": {"type": "repository", "name": name, "actions": actions},
}

ldap_allow(identity, name) := allowed if {
	allowed := authz.allow with input as ldap_request(identity, name, ["pull", "push", "delete"])
		with data.registry.namespaces as ldap_namespaces
}

test_ldap_devs_pull_ops_push if {
	ldap_allow(ldap_user("mika", ["corp:devs"]), "team/app") == {"pull"}
	ldap_allow(ldap_user("lena", ["corp:devs", "corp:ops"]), "team/app") == {"pull", "push"}
}

test_ldap_no_group_nothing if {
	ldap_allow(ldap_user("carol", []), "team/app") == set()
}

# "devs" of the site (groups:) is not corp's devs, nor the other way.
test_ldap_groups_are_qualified if {
	ldap_allow(ldap_user("mika", ["devs"]), "team/app") == set()
	ldap_allow(password("bob", ["devs"]), "team/app") == set()
	ldap_allow(ldap_user("mika", ["other:devs"]), "team/app") == set()
}

test_ldap_user_by_principal if {
	ldap_allow(ldap_user("lena", []), "lenas/app") == {"*"}
	ldap_allow(password("lena", []), "lenas/app") == set()
}

test_ldap_user_is_an_account_for_star if {
	ldap_allow(ldap_user("carol", []), "shared/app") == {"pull"}
}

test_ldap_user_owns_no_namespace if {
	ldap_allow(ldap_user("lena", ["corp:devs"]), "lena/app") == set()
}

# A directory group named admins is not the site's admins.
test_ldap_admins_group_is_not_admins if {
	ldap_allow(ldap_user("root", ["corp:admins"]), "any/app") == set()
}

# A refresh token of a directory login: refreshed_from password, the
# groups of its redemption.
test_ldap_refresh if {
	refreshed := object.union(ldap_user("lena", ["corp:ops"]), {"method": "refresh", "refreshed_from": "password"})
	ldap_allow(refreshed, "team/app") == {"push"}
}
