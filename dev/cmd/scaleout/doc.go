// Command scaleout is the scale-out end-to-end test (issue 8): three
// replicas of srht-registry (built from this checkout) sharing one signing
// key, one htpasswd file and one policy bundle served by a bundle server,
// behind a real haproxy on loopback, with a real distribution registry
// whose realm is the balancer. Several clients (go-containerregistry
// in-process, crane, oras, regctl) push and pull in their users'
// namespaces for -duration while one replica is stopped with SIGTERM and,
// a few seconds later, another is killed with SIGKILL and restarted. Then
// the bundle's data changes and every replica is asked, directly, until it
// gives the new decision, and the balancer is asked a few times more.
// Last, the replicas share their brute-force counts through a
// redis-server (Debian's; brute_force.store, threshold 5): wrong passwords
// for an unused user, from an address no other client uses (127.0.0.4),
// go straight to the replicas in turn, 5 of them over the 3 (2+2+1), and
// then every replica must answer 429: the threshold holds for the fleet,
// where each replica alone would still allow them.
//
// It lives in the dev module (dev/cmd/scaleout); .ci/scaleout builds and
// runs it, with the tools .ci/tools installs (-tools DIR, by default the
// checkout's .tools/).
//
// It prints a result block and "scale-out: OK", or "scale-out: FAILED"
// and each problem; it exits 0, 1 on a failed check, 2 if the run could
// not be set up. Every child process ends with it; -timeout bounds the
// whole run.
//
// The only retry it relies on is haproxy's (see renderHAProxy): the
// in-process clients have every retry turned off, and no request through
// the balancer may end in an error, so the CLIs' own retries (which cannot
// be turned off) have nothing to retry on the token endpoint either.
//
// The code follows a run's stages. main.go reads the flags and runs them;
// setup.go starts the processes (fake meta.sr.ht, bundle server, Redis,
// replicas, haproxy, registry) with what bundle.go (the signed policy bundle),
// replica.go (a replica's configuration) and haproxy.go (the balancer's)
// make; run.go drives the load of the clients in clients.go while
// disrupt.go stops and kills replicas; propagation.go changes the policy
// and measures how soon each replica applies it; bruteforce.go starts
// Redis and checks the shared brute-force limit; gather.go collects the
// logs, stats and counters, which replica.go, haproxy.go and
// registrylog.go parse; result.go evaluates and prints the results.
package main
