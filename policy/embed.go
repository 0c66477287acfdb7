package policy

import (
	"embed"
	"io/fs"
	"path"
	"strings"
)

// files holds the policy and its tests; FS filters the tests out.
//
//go:embed *.rego
var files embed.FS

// FS returns the default policy's Rego files, without any _test.rego file.
// This is what the server loads and evaluates.
func FS() fs.FS { return withoutTests{files} }

// TestFS returns the default policy's Rego files together with their
// _test.rego files, for running the Rego tests (see policy_test.go and the
// `policy test` subcommand).
func TestFS() fs.FS { return files }

// IsTestFile reports whether name (a slash-separated path) is a Rego test
// file, which OPA runs with `opa test` but which never belongs in a policy
// that is evaluated.
func IsTestFile(name string) bool {
	return strings.HasSuffix(path.Base(name), "_test.rego")
}

// withoutTests is an fs.FS that hides the test files of the FS it wraps:
// Open reports them as not existing and directory listings leave them out,
// so fs.ReadFile, fs.Stat, fs.Glob and fs.WalkDir never see them either.
type withoutTests struct{ fsys fs.FS }

var (
	_ fs.FS        = withoutTests{}
	_ fs.ReadDirFS = withoutTests{}
)

func (w withoutTests) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if IsTestFile(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	f, err := w.fsys.Open(name)
	if err != nil {
		return nil, err
	}
	if d, ok := f.(fs.ReadDirFile); ok {
		return dirWithoutTests{d}, nil
	}
	return f, nil
}

func (w withoutTests) ReadDir(name string) ([]fs.DirEntry, error) {
	entries, err := fs.ReadDir(w.fsys, name)
	return dropTests(entries), err
}

// dirWithoutTests is an open directory whose listing leaves test files out.
type dirWithoutTests struct{ fs.ReadDirFile }

func (d dirWithoutTests) ReadDir(n int) ([]fs.DirEntry, error) {
	for {
		entries, err := d.ReadDirFile.ReadDir(n)
		kept := dropTests(entries)
		// With n > 0 an empty batch means end of directory, so keep reading
		// while a batch held only test files.
		if n <= 0 || len(kept) > 0 || err != nil {
			return kept, err
		}
	}
}

func dropTests(entries []fs.DirEntry) []fs.DirEntry {
	kept := entries[:0:0]
	for _, e := range entries {
		if !IsTestFile(e.Name()) {
			kept = append(kept, e)
		}
	}
	return kept
}

//go:embed input.schema.json
var inputSchema []byte

// InputSchema returns the JSON schema of the input document (version 2).
// The server type-checks every local policy against it, so a policy that
// reads a misspelt input field fails to load, naming file and line.
func InputSchema() []byte { return inputSchema }

//go:embed data.schema.json
var dataSchema []byte

// DataSchema returns the JSON schema of the default policy's data: the
// whole data document, whose registry object is policy.data in the server
// config. The server checks the data against it when it loads the embedded
// policy, so a misspelt or mistyped key fails to load, naming its path.
func DataSchema() []byte { return dataSchema }
