package registry.authz_test

import data.registry.authz

test_bundle_admin_from_data if "*" in authz.allow with input as {"identity": {"subject": "root"}}

test_bundle_others_nothing if count(authz.allow) == 0 with input as {"identity": {"subject": "alice"}}
