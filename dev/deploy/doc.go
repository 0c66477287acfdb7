// Package deploy holds the checks of the deployment examples in the
// checkout's deploy/ directory (../../deploy from here; the examples stay
// where users find them, their tests live in the dev module with the
// Kubernetes and compose-go dependencies the server does not need): a
// hardened systemd unit and its config (deploy/systemd/), a compose file
// wiring a distribution 3.x registry to the token server (deploy/compose/),
// and Kubernetes manifests (deploy/kubernetes/). It has no code of its own:
// its tests hold the examples to the server they deploy. Every
// srht-registry config in deploy/ goes through the real check-config; the
// Kubernetes manifests decode strictly into the Kubernetes API types and
// their probes, ports, mounts and grace period are checked against that
// config; the compose file loads with compose-go (what `docker compose`
// uses) and its two services are run natively, wired as the file wires
// them, for a push and a pull. Run them with `go test -C dev ./deploy/`
// from the checkout. .ci/deploy adds what needs tools: systemd-analyze
// verify and security, a syscall trace of the server against the unit's
// filter, and `docker compose config` where the plugin exists.
package deploy
