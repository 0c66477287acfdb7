// Package deploy owns the deployment examples under deploy/: a hardened
// systemd unit and its config (systemd/), a compose file wiring a
// distribution 3.x registry to the token server (compose/), and Kubernetes
// manifests (kubernetes/). It has no code of its own: its tests hold the
// examples to the server they deploy. Every srht-registry config in here
// goes through the real check-config; the Kubernetes manifests decode
// strictly into the Kubernetes API types and their probes, ports, mounts
// and grace period are checked against that config; the compose file
// loads with compose-go (what `docker compose` uses) and its two services
// are run natively, wired as the file wires them, for a push and a pull.
// .ci/deploy adds what needs tools: systemd-analyze verify and security,
// a syscall trace of the server against the unit's filter, and
// `docker compose config` where the plugin exists.
package deploy
