// Package config owns the srht-registry configuration: the [Config] struct
// that mirrors the YAML file, its defaults ([Default]), loading ([Load],
// [Parse]) and validation ([Config.Validate]), which reports every problem at
// once in a [ValidationError].
//
// Every key is optional; an absent file or an empty document yields a working
// local default. Unknown keys are errors, so a typo never silently falls back
// to a default. Parse reports every mistake of a file at once, each in the
// file's terms: its line, its key path and what is wrong, never a Go type
// ("line 4: authn.htpaswd: unknown key (did you mean "htpasswd"?)"); see
// check.go.
//
// A Config holds plain values only: paths, durations, names and the policy
// data tree. It holds no live objects (keys, files, listeners, loggers); the
// callers that build those read the paths named here and report their own
// errors. In particular this package never checks that a file exists.
//
// People are named as principals, "<provider>:<name>" (principals.go): Parse
// writes out a bare name when exactly one enabled login method could mean
// it, and refuses it, naming the choices, when more than one could.
package config
