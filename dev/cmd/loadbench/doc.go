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
// A load case runs against the server and against the baseline, two
// fresh processes up side by side for the whole case, each idle while the
// other is measured. Each is started (wait for its first anonymous token),
// checked (its first -reuse-sample answers, with loadbench's own client)
// and warmed up with wrk for -warmup (not counted), once. Then each side's
// -d is measured in -slices wrk runs (default 5, of whole seconds: -d 10s
// makes five of 2s per side, -d 7s two of 2s and three of 1s; without
// -slices a -d shorter than 5s gets one per second), the two sides taking turns in ABBA order (A B B A A B
// …; which side is A alternates from case to case and from run to run),
// so that a burst of load from a neighbour hits both sides alike rather
// than one side's whole run. The process's CPU time (utime+stime of
// /proc/PID/stat) is read just before and just after each of its slices;
// its peak RSS (VmHWM) once all slices ran. A side's tokens/s is its
// tokens over the summed length of its slices, its CPU per token the CPU
// of its own slices over its tokens, and its latency percentiles come from
// the merged distribution of its slices (below), never from an average of
// per-slice percentiles. A case without a baseline (mixed) runs its
// slices back to back.
//
// The wrk script (Lua, written to the temporary directory) sends the
// case's request (wrk's prepared request when there is one), or builds a
// new one per request for the memo-cold case (its names carry the wrk
// run's tag, and the warm-up and every slice have their own, so each
// slice asks for names never asked before). With -think T its delay()
// makes each connection wait T after an answer before its next request:
// -c connections then offer about c/T requests per second, below what
// either side can serve, and the latencies compare the two at the same
// load rather than at saturation (where a side's latency is its
// connections over its throughput). Its done() prints one JSON
// line that loadbench parses: requests, duration, errors, wrk's min, mean,
// max and percentiles, and a grid of about a thousand latency quantiles
// (every 0.1 % up to 99 %, every 0.01 % above, and the maximum). A side's
// slices are merged from their grids, each point weighted by the share of
// its slice's requests it stands for (latencyMix in hist.go); one slice
// alone gives back wrk's own percentiles.
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
// -warmup (whole seconds, wrk's unit), -slices N, -runs N (everything N times in a
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
// checker, wrk's script and report, the slices' order and merge, /proc
// parsing, flags, tables).
package main
