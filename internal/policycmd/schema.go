package policycmd

import (
	"io"

	"git.sr.ht/~zozs/srht-registry/policy"
)

// Schema writes to stdout, byte for byte as embedded, the JSON schema of
// the input document (policy/input.schema.json: the one serve type-checks
// every local policy against, and policy test by default), or with data
// that of the default policy's data document (policy/data.schema.json:
// the one policy.data is checked against).
func Schema(data bool, stdout io.Writer) error {
	src := policy.InputSchema()
	if data {
		src = policy.DataSchema()
	}
	_, err := stdout.Write(src)
	return err
}
