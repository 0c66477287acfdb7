package registry.authz_test

import data.registry.authz

test_plain_alice_pulls if "pull" in authz.allow with input as {"identity": {"subject": "alice"}}

test_plain_bob_does_not if not "pull" in authz.allow with input as {"identity": {"subject": "bob"}}
