package main

import (
	"bufio"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// registryTally is what the registry's log (logrus text format) says
// about the tokens it was given. The CLIs retry some failures on their
// own; a token the registry refused would show here even when a retry hid
// it from the client.
type registryTally struct {
	authorized int         // msg="authorized request": a token accepted
	challenges int         // no token yet: the 401 every client's first request gets
	errors     map[int]int // "response completed with error", by status (404: HEAD of an unknown blob or manifest)
	refused    []string    // a token refused, or any other authorization error
}

var (
	registryMsg    = regexp.MustCompile(`msg="((?:[^"\\]|\\.)*)"`)
	registryStatus = regexp.MustCompile(`http\.response\.status=(\d+)`)
	// What distribution logs when it refuses a token (at info level).
	registryRefusal = regexp.MustCompile(`(?i)verify token|untrusted|invalid token|insufficient scope`)
)

// parseRegistryLog reads distribution's text log.
func parseRegistryLog(r io.Reader) registryTally {
	t := registryTally{errors: map[int]int{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		m := registryMsg.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		switch msg := m[1]; {
		case msg == "authorized request":
			t.authorized++
		case msg == "error authorizing context: authorization token required":
			t.challenges++
		case msg == "response completed with error":
			if s := registryStatus.FindStringSubmatch(line); s != nil {
				n, _ := strconv.Atoi(s[1])
				t.errors[n]++
			}
		case strings.HasPrefix(msg, "error authorizing context"), registryRefusal.MatchString(msg):
			t.refused = append(t.refused, truncate(msg, 300))
		}
	}
	return t
}
