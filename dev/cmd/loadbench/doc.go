// Command loadbench is the reproducible load benchmark of srht-registry
// (issues 5 and 16). It lives in the dev module (dev/cmd/loadbench); run it
// from the checkout's root (-C dev runs it in dev/, so a relative -json
// FILE is relative to dev/):
//
//	go run -C dev ./cmd/loadbench                        # the default cases, once
//	go run -C dev ./cmd/loadbench -runs 3 -markdown      # three runs, as docs/performance.md shows them
//	go run -C dev ./cmd/loadbench -cases anon-es256,anon-cold -d 5s -json out.json
//
// The load comes from wrk (Debian's package; loadbench runs apt-get install
// -y wrk when it is missing, and stops if it cannot), which costs the two
// shared cores far less per request than a Go client in the same process
// tree: the report prints wrk's own CPU per request beside the server's.
//
// It builds the server from the checkout (go build ./cmd/srht-registry in
// the server module's directory, which go list -m finds from anywhere in
// the checkout, or -repo DIR),
// prepares in a temporary directory an ES256 and an Ed25519 key (with
// `srht-registry keys`), an htpasswd of bcrypt cost 10 lines (with
// `srht-registry hash-password --cost 10`) and a config (log level warn,
// the embedded policy with public: ["library/*"], Sourcehut tokens checked
// against a fake meta.sr.ht that loadbench serves itself on loopback, and
// authn.sourcehut.users listing the sourcehut case's user dave, who is no
// htpasswd user and so owns dave/*; the sourcehut-100k case lets every
// account in with ["*"], since its users are too many to list).
//
// A load case runs against the server and against the baseline, one after
// the other, each in a fresh process (which goes first alternates from
// case to case and from run to run, so drift on a shared machine hits
// both): start, wait for the first anonymous token, check the first
// -reuse-sample answers with loadbench's own client, warm up with wrk for
// -warmup (not counted), measure with wrk for -d while reading the
// process's CPU time (utime+stime of /proc/PID/stat) before and after,
// read its peak RSS (VmHWM), stop. The wrk script (Lua, written to the
// temporary directory) sends the case's request (wrk's prepared request
// when there is one), or builds a new one per request for the memo-cold
// case; its done() prints one JSON line (requests, duration, errors,
// latency percentiles) that loadbench parses.
//
// The baseline is loadbench itself, re-executed as the hidden subcommand
//
//	loadbench baseline --key KEYFILE --listen ADDR
//
// a bare net/http handler that signs, per request, a claim set of the
// server's shape (iss, sub = the Basic user, unchecked, aud as one string,
// exp, nbf, iat, a fresh jti, access = the scopes asked for, granted as
// asked, which is the server's answer in every case) with the same key
// through lestrrat-go/jwx, and answers the same JSON. Each case's
// throughput and p99 are printed as a ratio of the baseline's under the
// same requests, measured in the same run.
//
// Checks: wrk counts answers by status only (200, or 401 for the wrong
// passwords of the mixed case); before the load loadbench's own client
// sends the first -reuse-sample requests and checks that every 200 carries
// a token (token == access_token) never seen before, with a jti never seen
// before and an iat within the request's second.
//
// Cases (ids for -cases): anon-es256, password (repeated credentials),
// password-3scopes, anon-cold (anonymous, a new repository
// library/cold-TAG-THREAD-N on every request, so every decision misses the
// memo), anon-ed25519, sourcehut (a cached Sourcehut token), startup
// (start-up to first served token, over -starts starts), and, only when
// named or with -cases all: mixed (1 in 10 passwords wrong, with
// brute_force.threshold: 0 so the wrong ones are bcrypt checks and not
// 429s; no baseline) and sourcehut-100k (memory after -sourcehut-tokens
// distinct tokens each logged in once, with authn.sourcehut.cache_size
// raised to match; loadbench's own client).
//
// Other flags: -c and -t (wrk's connections and threads, 32 and 2), -d and
// -warmup (whole seconds, wrk's unit), -runs N (everything N times in a
// row, a table per run and a verdict per run), -markdown (the tables as
// docs/performance.md shows them), -json FILE (the raw figures of every
// run), -reuse-sample N, -sourcehut-tokens N, -starts N, -mem-timeout, -bin
// FILE (a prebuilt server instead of building the checkout), -repo DIR.
//
// The server logs at warn, so its "listening" line (info) is not printed:
// loadbench picks a free loopback port itself (listen on :0, close) and
// retries with another if the server reports it taken.
//
// The output is a Markdown table per run on stdout with the machine, the
// date and the flags, and a verdict per run; progress and server logs go
// to stderr. The exit code is 1 when a case could not run or a check
// failed (a reused token, a wrong password accepted, an error answer in
// the check), 3 when everything ran but a target was missed, 130 on
// interrupt. Every child process is killed and the temporary directory
// removed on exit, Ctrl-C included. Everything listens on 127.0.0.1 only.
//
// Timed assertions do not belong in go test (nor in CI): loadbench
// reports, and its tests cover only the pure parts (histogram, reuse
// checker, wrk's script and report, /proc parsing, flags, tables).
package main
