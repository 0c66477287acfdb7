package fakemeta

// A deliberately small GraphQL front end: enough of the language to read the
// queries a token check sends, and enough of meta.sr.ht's schema (Query.version
// and Query.me) to answer them the way gqlgen would. Unsupported constructs
// (fragments, field directives, several operations in one document) are
// answered 422 with a message that starts with "fakemeta:", so a test that
// trips over them sees why.
//
// A query goes through three stages, one file each: graphql_parse.go lexes
// and parses the document (parseDocument), graphql_schema.go holds the schema
// and checks the operation against it (validate), and graphql_exec.go
// resolves the fields (execute). This file holds what they share: the
// version the fake reports and the response types gqlgen would marshal.

import "encoding/json"

// Version is what { version { major minor patch } } answers.
const (
	VersionMajor = 0
	VersionMinor = 79
	VersionPatch = 0
)

// gqlError is gqlparser's gqlerror.Error as gqlgen marshals it.
type gqlError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path,omitempty"`
	Locations  []gqlLocation  `json:"locations,omitempty"`
	Extensions map[string]any `json:"extensions,omitempty"`
}

type gqlLocation struct {
	Line   int `json:"line"`
	Column int `json:"column"`
}

// gqlResponse is gqlgen's graphql.Response: errors first, data always
// present (null when nil).
type gqlResponse struct {
	Errors []gqlError      `json:"errors,omitempty"`
	Data   json.RawMessage `json:"data"`
}
