package policycmd

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"git.sr.ht/~zozs/srht-registry/policy"
)

func TestSchema(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		data bool
		want []byte
		key  string // a property the schema defines
	}{
		{false, policy.InputSchema(), "identity"},
		{true, policy.DataSchema(), "registry"},
	} {
		var out strings.Builder
		if err := Schema(tt.data, &out); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal([]byte(out.String()), tt.want) {
			t.Errorf("data %t: not the embedded schema:\n%s", tt.data, out.String())
		}
		var schema struct {
			Properties map[string]json.RawMessage `json:"properties"`
		}
		if err := json.Unmarshal([]byte(out.String()), &schema); err != nil {
			t.Fatalf("data %t: not JSON: %v", tt.data, err)
		}
		if _, ok := schema.Properties[tt.key]; !ok {
			t.Errorf("data %t: no property %q", tt.data, tt.key)
		}
	}
}
