package app

import (
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	// The in-process distribution registries of the end-to-end tests
	// would otherwise export traces to an OpenTelemetry collector on
	// localhost. Set once here rather than with t.Setenv, which a
	// parallel test may not call.
	os.Setenv("OTEL_TRACES_EXPORTER", "none")
	os.Exit(m.Run())
}
