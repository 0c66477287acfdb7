// Command srht-registry is a token server for Docker/OCI registries.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"git.sr.ht/~zozs/srht-registry/internal/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := app.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
