package registry.authz_test

import data.registry.authz

test_failing_passes if "pull" in authz.allow with input as {"identity": {"subject": "alice"}}

# Fails: the policy grants bob nothing.
test_failing_bob_pushes if "push" in authz.allow with input as {"identity": {"subject": "bob"}}
