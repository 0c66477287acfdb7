package registry.authz_test

import data.registry.authz

test_compile_error_never_runs if "pull" in authz.allow with input as {"identity": {"subject": "alice"}}
