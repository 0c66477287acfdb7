package app

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"
)

// runHashPassword prints an htpasswd line for the user named by the
// argument. On a terminal it asks for the password twice without echo;
// otherwise (a pipe, a file) it reads one line from stdin.
func runHashPassword(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("hash-password", stderr)
	cost := fs.Int("cost", bcrypt.DefaultCost, "bcrypt `COST`, 4 to 17; each step doubles the work (htpasswd -B uses 5)")
	if err := parseFlags(fs, args, 1); err != nil {
		return err
	}
	if *cost < bcrypt.MinCost || *cost > 17 {
		// bcrypt quietly takes 10 for a cost below 4, and the server
		// refuses lines above 17 (htpasswd -B's range).
		return usageError{fmt.Errorf("hash-password: --cost must be between %d and 17, got %d", bcrypt.MinCost, *cost)}
	}
	user := fs.Arg(0)
	if user == "" || strings.ContainsAny(user, ":\n") {
		return usageError{errors.New("hash-password: give a user name (without ':') as the argument; the password is read from stdin")}
	}
	var password []byte
	var err error
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		password, err = promptTwice(func() ([]byte, error) { return term.ReadPassword(int(f.Fd())) }, stderr)
	} else {
		password, err = readLine(stdin)
	}
	if err != nil {
		return err
	}
	hash, err := bcrypt.GenerateFromPassword(password, *cost)
	if err != nil {
		// bcrypt's errors name lengths and costs, never the password.
		return usageError{fmt.Errorf("hash-password: %w", err)}
	}
	fmt.Fprintf(stdout, "%s:%s\n", user, hash)
	return nil
}

// readLine reads the password from the first line of r.
func readLine(r io.Reader) ([]byte, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read password: %w", err)
	}
	password := strings.TrimRight(line, "\r\n")
	if password == "" {
		return nil, usageError{errors.New("hash-password: empty password on stdin")}
	}
	return []byte(password), nil
}

// promptTwice asks for the password and then for it again on prompt,
// reading each with read (which must not echo), and refuses an empty
// password or two that differ.
func promptTwice(read func() ([]byte, error), prompt io.Writer) ([]byte, error) {
	fmt.Fprint(prompt, "Password: ")
	first, err := read()
	fmt.Fprintln(prompt)
	if err != nil {
		return nil, fmt.Errorf("read password: %w", err)
	}
	if len(first) == 0 {
		return nil, usageError{errors.New("hash-password: empty password")}
	}
	fmt.Fprint(prompt, "Again: ")
	second, err := read()
	fmt.Fprintln(prompt)
	if err != nil {
		return nil, fmt.Errorf("read password: %w", err)
	}
	if !bytes.Equal(first, second) {
		return nil, usageError{errors.New("hash-password: the passwords differ")}
	}
	return first, nil
}
