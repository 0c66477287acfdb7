// Command loadbench is the reproducible load benchmark of srht-registry
// (issue 5). It lives in the dev module (dev/cmd/loadbench); run it from
// the checkout's root (-C dev runs it in dev/, so a relative -json FILE is
// relative to dev/):
//
//	go run -C dev ./cmd/loadbench                   # every case, 32 connections, 10 s each
//	go run -C dev ./cmd/loadbench -d 5s -warmup 1s  # shorter
//	go run -C dev ./cmd/loadbench -cases baseline-es256,anon-es256 -json out.json
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
// account in with ["*"], since its users are too many to list), and
// then runs each case against a fresh server process: start, wait for the
// first anonymous token, warm up (not counted), load for the duration,
// read the process's peak RSS (VmHWM, which is per case since every case
// has its own process), stop.
//
// The baseline is loadbench itself, re-executed as the hidden subcommand
//
//	loadbench baseline --key KEYFILE --listen ADDR
//
// a bare net/http handler that signs, per request, a fixed claim set of the
// server's shape (iss, sub, aud as one string, exp, nbf, iat, a fresh jti,
// access) with the same key through lestrrat-go/jwx, and answers the same
// JSON. It runs as its own process under the same load, so each case's
// throughput and p99 are printed as a ratio of the baseline with the same
// key type, measured in the same run.
//
// The load generator is in-process: -c workers, each on its own keep-alive
// connection, loop requests; latencies go to a log-linear histogram (under
// 1 % error). A 200 must carry a token (token == access_token), and the
// first -reuse-sample tokens of each case are checked for reuse (the same
// token or jti twice) and freshness (iat within the request's second).
// Non-200 answers are errors, except the 401s a case expects (wrong
// passwords), which are counted on their own.
//
// Cases (ids for -cases): baseline-es256, baseline-ed25519, anon-es256,
// anon-ed25519, password, password-3scopes, sourcehut, mixed,
// sourcehut-100k (memory after -sourcehut-tokens distinct tokens each
// logged in once, with authn.sourcehut.cache_size raised to match), and
// startup (start-up to first served token, over -starts starts).
//
// Other flags: -c, -d, -warmup, -cases, -json FILE (the raw figures),
// -reuse-sample N, -sourcehut-tokens N, -starts N, -mem-timeout, -bin FILE
// (a prebuilt server instead of building the checkout), -repo DIR, and
// -cpuprofile FILE (the load generator's own profile). The load generator
// shares the machine's cores with the server: the report says how much CPU
// it used, and CPU/token (the serving process's CPU per token) is the
// figure least disturbed by that.
//
// The server logs at warn, so its "listening" line (info) is not printed:
// loadbench picks a free loopback port itself (listen on :0, close) and
// retries with another if the server reports it taken.
//
// The output is one Markdown table on stdout with the machine, the date
// and the flags; progress and server logs go to stderr. The exit code is 1
// when a case could not run or a check failed (a reused token, a wrong
// password accepted), 130 on interrupt. Every child process is killed and
// the temporary directory removed on exit, Ctrl-C included. Everything
// listens on 127.0.0.1 only.
//
// Timed assertions do not belong in go test: loadbench reports, and its test
// covers only the pure parts (histogram, reuse checker, table).
package main
