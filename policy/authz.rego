# The default authorization policy of srht-registry.
#
# The server evaluates this package once per requested scope, with an input
# document (version 2) like
#
#   {"version": 2,
#    "identity": {"method": "password", "provider": "htpasswd", "subject": "alice",
#                 "namespace": "alice", "groups": ["ci"]},
#    "request": {"service": "registry.example.com", ...},
#    "scope": {"type": "repository", "name": "alice/app", "actions": ["pull", "push"]}}
#
# (Sourcehut identities also carry identity.sourcehut with the token's grants;
# OIDC identities (method "oidc": a CI job's or a Kubernetes service
# account's ID token) carry identity.oidc with the token's issuer and claims;
# an identity that a refresh token stands for has method "refresh", the
# method of its original login in identity.refreshed_from, and the provider
# and identity.sourcehut or identity.oidc of that login), and reads two rules
# from it:
#
#   allow - the set of actions granted on input.scope ("*" means every action)
#   deny  - a set of messages; if it is non-empty nothing is granted
#
# A principal is the pair (provider, subject), written "provider:subject":
# htpasswd:alice and sourcehut:alice are different people, and nothing here
# compares a subject without its provider. identity.namespace is the
# personal namespace the server's account model gives the identity (an
# htpasswd user's name; a Sourcehut user's name unless an htpasswd user has
# it); absent when it owns none.
#
# Site settings come from data.registry, which may be absent entirely (then
# only the own-namespace and admins rules grant anything). data.schema.json
# gives their shapes; the server refuses data with any other key or shape:
#
#   public:     ["library/*", "mirror/**"]   glob patterns anyone may pull
#   namespaces: {"team": {"pull": ["htpasswd:bob", "group:ci"], "push": ["sourcehut:alice"]}}
#               members are principals, "group:<g>", or "*" (every
#               authenticated identity of an account provider); a bare
#               name matches nobody
#   reserved:   ["admin", "v2"]   names nobody owns as a personal namespace
#   oidc:       [{"provider": "github",
#                 "claims": {"repository_owner": "octo-org", "ref": ["refs/heads/main", "refs/tags/v*"]},
#                 "repositories": ["{repository}", "{repository}/*"],
#                 "actions": ["pull", "push"]}]
#               claim rules: what OIDC identities of a provider whose
#               claims match get on the repositories listed (see below)
#
# OIDC identities are workloads, not accounts: anyone the issuer vouches for
# (every workflow of every repository, for a public CI) has one. They get
# nothing from this policy but what an oidc rule (or the site's naming of
# their principal in groups or namespaces) grants: no personal namespace, and
# "*" in a namespace's member list means every authenticated identity of an
# account provider (htpasswd, Sourcehut), not them.
#
# Site configuration beats ownership: a name that is a shared namespace
# (a key of namespaces), is reserved, or is the namespace of a public
# pattern "<ns>/*" or "<ns>/**" is nobody's personal namespace, and a
# repository inside a shared namespace is governed by its ACL alone.
#
# Copy this file as a starting point for a policy of your own.
package registry.authz

# How this file is written: the server evaluates it for every scope of every
# token request it has not seen before, so the rules are ordered for cheap
# answers. Everything computed from data alone lives in rules that read no
# input (site_namespaces, shared_prefixes, oidc_rule_table, member_grants):
# the server evaluates those once per policy revision. Everything computed
# from the caller alone lives in rules that read no input.scope (principal,
# own_prefix, oidc_caller_rules, and what they add up to: the caller's
# grants, caller_patterns and the like): the server evaluates those once per
# caller. What is left for each repository is allow's few rules, each a
# short body that matches the repository's name against a list of grants,
# because OPA charges for every rule body and every function call it
# evaluates, even one that fails at its first expression (see
# docs/policy.md, "The cost of a decision"). The exception is an ID token's
# claim rules, matched per repository: each CI job is a new caller that asks
# about a repository or two, so grant lists made for it would cost more
# than they save. A rule's first expression
# rejects what it is not about, cheaply: OPA indexes rules by
# `input.<field> == <constant>` and skips those that cannot match, and a
# caller's rule that only some callers need starts with what rules the
# others out, so a new caller pays only for what its first repository
# needs. `opa test` evaluates everything every time; the answers are the
# same.
#
# The rules that read input.scope are also written for partial evaluation
# with input.scope unknown (everything else known: a caller seen before),
# so that what is left of allow is a few queries of comparisons and
# builtin calls (glob.match, startswith, strings.any_prefix_match) on the
# scope's fields and constants, which a server can test without OPA. So a
# repository is tested against the site's namespaces positively, with sets
# worked out from data (outside_shared_namespaces, site_segments): partial
# evaluation leaves the negation of a rule with several bodies as a support
# rule or a cross product of the bodies, and a name split into segments as
# a call it cannot see through.

# ---------------------------------------------------------------------------
# Site data, with defaults. data.registry is read one key at a time because
# it also contains this package: reading it whole from here would be recursive.

default public := []

public := data.registry.public

default namespaces := {}

namespaces := data.registry.namespaces

default reserved := []

reserved := data.registry.reserved

default oidc_rules := []

oidc_rules := data.registry.oidc

# ---------------------------------------------------------------------------
# Derived from data alone (evaluated once per policy revision by the server).

# The names the site took for itself, so no identity owns them: the shared
# namespaces, the reserved names, and the namespaces public patterns cover
# whole ("library" for "library/*" or "library/**").
site_namespaces := ({ns | some ns, acl in namespaces; acl != false} | {ns | some ns in reserved}) | {ns |
	some pattern in public
	ns := pattern_namespace(pattern)
}

# "<ns>/" for each shared namespace: a repository starting with one (and
# longer than it) is inside that namespace.
shared_prefixes := {concat("", [ns, "/"]) | some ns, _ in namespaces}

# The shared_prefixes that no other one starts ("a/" of "a/" and "a/b/"): a
# repository named exactly one of these is in no shared namespace, as none
# holds it, while one named exactly any other ("a/b/") is in the shorter one.
top_shared_prefixes := {prefix |
	some prefix in shared_prefixes
	not strings.any_prefix_match(prefix, shared_prefixes - {prefix})
}

# The site_namespaces that can be a repository's first path segment (those
# without "/"), and "<ns>/" for each: a repository whose first segment is
# one of them is that name or starts with its prefix.
site_segments := {ns | some ns in site_namespaces; not contains(ns, "/")}

site_segment_prefixes := {concat("", [ns, "/"]) | some ns in site_segments}

# The OIDC claim rules, with what can be worked out before any token is
# seen: each rule's claim patterns by path, and each repository pattern's
# {claim} references. A rule that can never match (claims not a map, no
# pattern, an empty map among them) is left out.
oidc_rule_table := [entry |
	some rule in oidc_rules
	is_object(rule.claims)
	patterns := claim_patterns(rule.claims)
	count(patterns) > 0
	not has_empty_map(rule.claims)
	entry := {
		"provider": rule.provider,
		"claims": patterns,
		"repositories": [compile_pattern(p) | some p in rule.repositories],
		"actions": rule.actions,
		"pull_only": pull_only(rule.actions),
	}
]

# compile_pattern(pattern): a repository pattern of an OIDC rule and its
# {claim} references (ref -> claim name). "braces" says where its first
# brace is: "none", in the "first" path segment, or in a "later" one, so
# that each rule of oidc_pattern_matches picks its patterns with one
# comparison (a negation costs OPA an evaluation of its own). "leftover"
# marks a brace that is no reference ("{", "{}"): such a pattern never
# applies.
compile_pattern(pattern) := {
	"pattern": pattern,
	"braces": pattern_braces(pattern),
	"refs": {ref: trim_suffix(trim_prefix(ref, "{"), "}") | some ref in regex.find_n(`\{[^{}]+\}`, pattern, -1)},
	"leftover": regex.match(`[{}]`, regex.replace(pattern, `\{[^{}]+\}`, "")),
}

pattern_braces(pattern) := "none" if {
	not contains(pattern, "{")
} else := "first" if {
	contains(split(pattern, "/")[0], "{")
} else := "later"

# ---------------------------------------------------------------------------
# Facts about the request.

# An identity is authenticated when a method other than anonymous vouched for
# a non-empty subject of a named provider. Anything missing or malformed
# counts as anonymous.
authenticated if {
	input.identity.method != "anonymous"
	is_string(input.identity.provider)
	input.identity.provider != ""
	is_string(input.identity.subject)
	input.identity.subject != ""
}

# The caller as the site names it: "htpasswd:alice", "sourcehut:alice".
principal := concat(":", [input.identity.provider, input.identity.subject]) if {
	authenticated

	# "group" is never a provider's name: should an identity claim it,
	# its principal must not pass for a group member ("group:ci").
	input.identity.provider != "group"
}

# The caller's groups; absent or empty means none.
groups contains g if some g in input.identity.groups

admin if {
	"admins" in input.identity.groups
	authenticated
}

# The method that vouched for the subject. A refresh token (method
# "refresh") stands for the login it was issued at, named by
# identity.refreshed_from: a rule about how someone logged in must use this,
# or a refresh token would escape it.
effective_method := input.identity.refreshed_from if {
	input.identity.method == "refresh"
} else := input.identity.method

# An OIDC identity: an ID token of a configured issuer (a CI job, a
# Kubernetes service account), or a refresh token of such a login. Either
# sign is enough to keep it from what accounts get.
oidc_identity if is_object(input.identity.oidc)

oidc_identity if effective_method == "oidc"

# site_namespace(name): the site configured name for itself, so no
# identity owns it: a shared namespace, a reserved name, or the namespace a
# public pattern covers whole ("library" for "library/*" or "library/**").
site_namespace(name) if site_namespaces[name]

# pattern_namespace(pattern): ns for a pattern "ns/*" or "ns/**" whose ns
# is a plain name. Other patterns ("alice/app", "*/public", "**") name no
# namespace of the site's.
pattern_namespace(pattern) := parts[0] if {
	parts := split(pattern, "/")
	count(parts) == 2
	parts[1] in {"*", "**"}
	not regex.match(`[*?\[\]{}\\]`, parts[0])
}

# outside_shared_namespaces(name): name is inside no namespace of
# namespaces (whose ACL alone says who may do what there): it starts with
# none of shared_prefixes, or is one of top_shared_prefixes ("team/"). That
# is tested as name starting with one of them and one of them starting with
# name, which for prefixes none of which starts another means equal to one:
# partial evaluation would make a lookup of the name in the set one query
# per element (see the top of the file).
outside_shared_namespaces(name) if not strings.any_prefix_match(name, shared_prefixes)

outside_shared_namespaces(name) if {
	strings.any_prefix_match(name, top_shared_prefixes)
	strings.any_prefix_match(top_shared_prefixes, name)
}

# The caller's personal namespace: the one the server says it owns, unless
# the site took that name.
own_namespace := ns if {
	ns := input.identity.namespace
	is_string(ns)
	ns != ""
	authenticated
	not oidc_identity
	not site_namespaces[ns]
}

# "<ns>/" for the caller's own namespace: a repository starting with it
# (and longer) is in it.
own_prefix := concat("", [own_namespace, "/"])

# member_names: the names a namespace's member list may give the caller:
# its principal ("htpasswd:bob"), "group:<g>" for each of its groups, and
# "*" (any authenticated identity of an account provider: not an OIDC
# identity, which the site must name). A bare name ("bob") matches nobody:
# it does not say which provider's bob. Only ever used for authenticated
# callers.
member_names contains principal

member_names contains "*" if not oidc_identity

member_names contains concat("", ["group:", g]) if {
	some g in input.identity.groups
	is_string(g)
}

# ---------------------------------------------------------------------------
# OIDC claim rules (data.registry.oidc). A rule applies to an OIDC identity
# of its provider whose claims match every claim pattern of the rule, and
# grants its actions on the repositories matching one of its patterns.

# The claims of an OIDC login (or of the login a refresh token was issued
# at); undefined for every other identity, so no claim rule applies to it.
oidc_claims := input.identity.oidc.claims if {
	is_object(input.identity.oidc.claims)
	effective_method == "oidc"
	authenticated
}

# patterns_match(patterns): each pattern (path -> pattern) matches the
# claim at its path. A missing claim is null here, which no pattern
# matches.
patterns_match(patterns) if {
	every path, pattern in patterns {
		claim_matches(pattern, object.get(oidc_claims, path, null))
	}
}

# claim_patterns(want): path (a list of keys) -> pattern, for each leaf of
# the map want: a value that is not a map, reached through maps only.
claim_patterns(want) := {path: pattern |
	walk(want, [path, pattern])
	count(path) > 0
	not is_object(pattern)
	every key in path { is_string(key) }
}

has_empty_map(want) if {
	walk(want, [_, node])
	node == {}
}

# claim_matches(pattern, value): a list matches when any of its patterns
# does; any other pattern as scalar_matches says.
claim_matches(pattern, value) if {
	not is_array(pattern)
	scalar_matches(pattern, value)
}

claim_matches(patterns, value) if {
	is_array(patterns)
	some pattern in patterns
	scalar_matches(pattern, value)
}

# A string is a glob the claim, a string, must match whole. No delimiters:
# "*" matches any run of characters, "/" included ("refs/tags/*" matches
# "refs/tags/v1.2/rc"). A boolean or a number matches a claim equal to it,
# of its type: true does not match the string "true" (GitLab's
# ref_protected), nor 1 the string "1" (GitHub's repository_owner_id). An
# array claim matches no pattern.
scalar_matches(pattern, value) if {
	is_string(pattern)
	is_string(value)
	glob.match(pattern, null, value)
}

scalar_matches(pattern, value) if {
	is_boolean(pattern)
	is_boolean(value)
	pattern == value
}

scalar_matches(pattern, value) if {
	is_number(pattern)
	is_number(value)
	pattern == value
}

# claim_value(name): the top-level claim name as a repository path, for
# {name} in a rule's repository patterns: a string that is, lowercased, a
# repository path as distribution writes it (lowercase components of letters
# and digits joined by ".", "_", "__" or dashes, separated by "/"). It is
# checked before it is lowercased, with ASCII letters only: lower() would
# turn a Kelvin sign into a "k". Undefined for a claim that is missing, not
# a string, or anything else ("*", "org/*", "a/../b", "{x}", "", "é"), so
# a claim can never widen a pattern, and the rule does not apply.
claim_value(name) := lower(value) if {
	value := oidc_claims[name]
	is_string(value)
	regex.match(`^[A-Za-z0-9]+(?:(?:[._]|__|-+)[A-Za-z0-9]+)*(?:/[A-Za-z0-9]+(?:(?:[._]|__|-+)[A-Za-z0-9]+)*)*$`, value)
}

# expand(pattern): the pattern with each {claim} replaced by claim_value;
# undefined when one of them is undefined, or a brace is left over.
expand(pattern) := expand_compiled(compile_pattern(pattern))

expand_compiled(compiled) := strings.replace_n(values, compiled.pattern) if {
	not compiled.leftover
	values := {ref: claim_value(name) | some ref, name in compiled.refs}
	count(values) == count(compiled.refs)
}

# oidc_caller_rules: the claim rules (of oidc_rule_table) that apply to
# the caller: of its provider, with every claim pattern matched.
oidc_caller_rules := [rule |
	oidc_claims
	some rule in oidc_rule_table
	rule.provider == input.identity.provider
	patterns_match(rule.claims)
]

# oidc_expanded: the repository patterns of oidc_caller_rules that have a
# {claim}, expanded with the caller's claims (pattern -> expansion); a
# pattern naming a claim the caller does not have is left out.
oidc_expanded := {compiled.pattern: expanded |
	some rule in oidc_caller_rules
	some compiled in rule.repositories
	compiled.braces != "none"
	expanded := expand_compiled(compiled)
}

# ---------------------------------------------------------------------------
# Grants. The rules of allow below test the repository against grants
# that are worked out before it is named: from data alone, or from the
# caller alone (once per caller). A grant covers repositories in one of two
# ways:
#
#   {"prefix": "alice/", ...}      names starting with prefix and longer
#                                  than it: a namespace, at any depth
#   {"pattern": "library/*", ...}  names the glob pattern matches ("/" the
#                                  delimiter: "*" stays in one segment,
#                                  "**" spans any depth)
#
# and grants two lists of actions: "actions", and "pull_only", what it
# grants under the read-only cap below (pull where it grants pull or "*",
# nothing where it does not).

pull_only(actions) := ["pull"] if {
	some action in ["pull", "*"]
	action in actions
} else := []

# Public repositories: anyone may pull, anonymous included.
public_grants := [{"pattern": pattern, "actions": ["pull"], "pull_only": ["pull"]} | some pattern in public]

# Everyone owns their own namespace: htpasswd:alice may do anything to
# alice/*, except inside a shared namespace configured there. own_guarded:
# there may be one (a shared namespace inside it, or one it is inside), and
# allow checks each repository.
own_grant := {"prefix": own_prefix, "actions": ["pull", "push", "delete"], "pull_only": ["pull"]}

own_guarded if may_enter_shared_namespace(own_prefix)

# may_enter_shared_namespace(prefix): a name starting with prefix may be
# inside a shared namespace: prefix and the namespace's "<ns>/" are one the
# start of the other.
may_enter_shared_namespace(prefix) if strings.any_prefix_match(prefix, shared_prefixes)

may_enter_shared_namespace(prefix) if strings.any_prefix_match(shared_prefixes, prefix)

# Shared namespaces: for each member named in an ACL, what the ACLs grant
# it, on each namespace's prefix: {"group:ci": [{"prefix": "team/",
# "actions": {"pull"}, ...}]}. The caller gets the grants of its
# member_names.
member_grants := {member: [{"prefix": concat("", [ns, "/"]), "actions": actions, "pull_only": pull_only(actions)} |
	some ns, acl in namespaces
	actions := {action | some action, members in acl; member in members}
	count(actions) > 0
] |
	some acl in namespaces
	some members in acl
	some member in members
}

# Admins may do anything to any repository ("**" matches every name); the
# catalog is granted by a rule of allow of its own.
admin_grants := [{"pattern": "**", "actions": ["*"], "pull_only": ["pull"]}] if admin

else := []

# ---------------------------------------------------------------------------
# The Sourcehut read-only cap. A Sourcehut token carries its own grants; one
# that holds only <service>/REGISTRY:RO must not push or delete, however much
# its owner could do with a read-write token. A refresh token made from such
# a token is capped the same way (its identity.sourcehut keeps the grants).

sourcehut_read_write if input.identity.sourcehut.all_grants == true

sourcehut_read_write if {
	some grant in input.identity.sourcehut.grants
	grant.service == input.request.service
	grant.scope == "REGISTRY"
	grant.access == "RW"
}

read_only if {
	input.identity.provider == "sourcehut"
	not sourcehut_read_write
}

# The same by how the caller logged in (effective_method == "sourcehut",
# spelt out so that OPA's rule index skips these rules for everyone else),
# should an identity ever say sourcehut there without naming the provider.
read_only if {
	input.identity.method == "sourcehut"
	not sourcehut_read_write
}

read_only if {
	input.identity.method == "refresh"
	input.identity.refreshed_from == "sourcehut"
	not sourcehut_read_write
}

# Fail closed: a refresh identity that does not say it came from a password,
# Sourcehut or OIDC login is capped too (the server never sends one).
read_only if {
	input.identity.method == "refresh"
	not refreshed_from_login
}

refreshed_from_login if input.identity.refreshed_from in {"password", "sourcehut", "oidc"}

# grant_actions: which list of a grant allow takes: "actions", or with the
# cap "pull_only". An anonymous caller has only the public grants, where the
# two are the same. A caller that names no method is granted nothing
# (undefined), unless it is capped.
grant_actions := "actions" if {
	input.identity.method != "anonymous"
	not read_only
} else := "pull_only" if {
	read_only
} else := "actions" if {
	input.identity.method == "anonymous"
}

# ---------------------------------------------------------------------------
# The caller's grants, as allow tests them (each with the actions
# grant_actions picks), by how: caller_patterns by pattern,
# caller_own_grants by prefix, and caller_guarded_grants (see own_guarded)
# by prefix and against the shared namespaces too. Each is worked out once
# per caller, and only as far as that caller needs: most are no admins, and
# their patterns are the public ones. (An OIDC caller's claim rules are
# tested by rules of allow of their own, below.)

caller_patterns := public_grants if {
	input.identity.method == "anonymous"
} else := public_grants if {
	grant_actions
	not admin
} else := [{"pattern": grant.pattern, "actions": grant[grant_actions]} |
	some grant in array.concat(public_grants, admin_grants)
]

caller_own_grants := [{"prefix": own_grant.prefix, "actions": own_grant[grant_actions]}] if {
	own_prefix
	not own_guarded
}

caller_shared_grants := [{"prefix": grant.prefix, "actions": grant[grant_actions]} |
	authenticated
	some name in member_names
	some grant in member_grants[name]
]

caller_guarded_grants := [{"prefix": own_grant.prefix, "actions": own_grant[grant_actions]}] if {
	own_prefix
	own_guarded
}

# ---------------------------------------------------------------------------
# The rules the server reads. Each rule of allow is one short body per
# repository: the caller's grants are looked up, and only the tests of the
# repository's name against them are left to do (for an ID token, the tests
# of its claim rules' patterns: see below).

allow contains action if {
	input.scope.type == "repository"
	some grant in caller_patterns
	glob.match(grant.pattern, ["/"], input.scope.name)
	some action in grant.actions
}

allow contains action if {
	input.scope.type == "repository"
	some grant in caller_own_grants
	startswith(input.scope.name, grant.prefix)
	input.scope.name != grant.prefix
	some action in grant.actions
}

# Shared namespaces: the grants of the caller's member_names. A repository
# in no shared namespace ("alice/app", most of them) is done with after the
# first expression: the caller's memberships are not needed.
allow contains action if {
	input.scope.type == "repository"
	strings.any_prefix_match(input.scope.name, shared_prefixes)
	some grant in caller_shared_grants
	startswith(input.scope.name, grant.prefix)
	input.scope.name != grant.prefix
	some action in grant.actions
}

allow contains action if {
	input.scope.type == "repository"
	some grant in caller_guarded_grants
	startswith(input.scope.name, grant.prefix)
	input.scope.name != grant.prefix
	outside_shared_namespaces(input.scope.name)
	some action in grant.actions
}

# OIDC claim rules: the actions (or, capped, pull_only) of every rule that
# applies to the caller (oidc_caller_rules, worked out once per caller), on
# the repositories its patterns cover. These are tested here, per
# repository, rather than made into grants of the caller: an ID token is
# a new caller for every CI job, which asks about one or two repositories,
# so the work is better left to the repositories it names. Two rules, one
# per method that can carry claims (an ID token, a refresh token of one),
# so that OPA's rule index skips them for every other caller.
allow contains action if {
	input.identity.method == "oidc"
	input.scope.type == "repository"
	some rule in oidc_caller_rules
	rule_covers(rule, input.scope.name)
	some action in rule[grant_actions]
}

allow contains action if {
	input.identity.method == "refresh"
	input.scope.type == "repository"
	some rule in oidc_caller_rules
	rule_covers(rule, input.scope.name)
	some action in rule[grant_actions]
}

# rule_covers(rule, name): one of the rule's repository patterns covers the
# repository name.
rule_covers(rule, name) if {
	some compiled in rule.repositories
	oidc_pattern_matches(compiled, name)
}

# oidc_pattern_matches(compiled, name): a rule's repository pattern (as
# compile_pattern gives it) covers the repository name. Patterns are globs
# like public's ("*" stays in one path segment, "**" spans any depth). A
# pattern without a claim is the site's own word and applies as written.
# One with a claim is like ownership: site configuration beats it, so it
# never applies inside a shared namespace, and when a claim names the first
# path segment ("{repository}", "{repository_owner}/*") never in a namespace
# the site took for itself (shared, reserved, a public pattern's).
oidc_pattern_matches(compiled, name) if {
	compiled.braces == "none"
	glob.match(compiled.pattern, ["/"], name)
}

oidc_pattern_matches(compiled, name) if {
	compiled.braces == "later"
	glob.match(oidc_expanded[compiled.pattern], ["/"], name)
	outside_shared_namespaces(name)
}

# The first path segment of name is no site namespace: name starts with
# no "<ns>/" of site_segment_prefixes and is none of site_segments. Tested
# so rather than by splitting name, which partial evaluation cannot see
# through.
oidc_pattern_matches(compiled, name) if {
	compiled.braces == "first"
	glob.match(oidc_expanded[compiled.pattern], ["/"], name)
	outside_shared_namespaces(name)
	not strings.any_prefix_match(name, site_segment_prefixes)
	not site_segments[name]
}

# Admins may list the catalog (which the registry asks for as
# registry:catalog:*), unless capped.
allow contains "*" if {
	input.scope.type == "registry"
	input.scope.name == "catalog"
	admin
	not read_only
}

# This policy understands version 2 of the input document only; refuse to
# guess about any other shape (version 1 had no providers).
deny contains "unsupported input version" if not input.version == 2
