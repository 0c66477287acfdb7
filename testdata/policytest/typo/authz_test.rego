package registry.authz_test

import data.registry.authz

test_schema_nobody_pulls if not "pull" in authz.allow with input as {"identity": {"subject": "alice"}}
