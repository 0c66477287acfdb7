// Command buildimage builds the srht-registry container image without a
// Docker daemon, with go-containerregistry: it owns what the image contains
// and how it is assembled and published. It lives in the dev module
// (dev/cmd/buildimage): go run -C dev ./cmd/buildimage from the checkout.
//
// For each --platform it cross-compiles ./cmd/srht-registry of the server
// module (--source DIR, by default the checkout as go list -m finds it) as
// a static binary (CGO_ENABLED=0, -trimpath, VCS stamping on, so --version
// names the commit) and puts it on an empty base with nothing else to run:
// no shell, no package manager. The image holds
//
//	/usr/local/bin/srht-registry            the binary (0755)
//	/etc/srht-registry/config.yaml          config.yaml of this directory: the
//	                                        embedded defaults, listening on
//	                                        0.0.0.0:5001 (plain HTTP, TLS in
//	                                        front), metrics on 0.0.0.0:9464,
//	                                        JSON logs
//	/etc/ssl/certs/ca-certificates.crt      the build host's CA bundle
//	/etc/passwd, /etc/group                 root and nonroot (65532)
//	/home/nonroot, /tmp
//
// and runs as 65532:65532 with entrypoint /usr/local/bin/srht-registry and
// command `serve --config /etc/srht-registry/config.yaml`. Every timestamp
// is SOURCE_DATE_EPOCH, else the commit time, else 0, and the layers are
// written deterministically, so the same source and toolchain give the same
// digest. One platform gives an image; several give an OCI image index.
//
// Outputs: --oci DIR (an OCI image layout), --tarball FILE (a docker-archive,
// one platform), --push REF (through the registry's token auth, as
// --username with --password-stdin, or with the docker config's
// credentials). .ci/image builds, pushes and pulls it back through a real
// registry and this project's token server.
package main
