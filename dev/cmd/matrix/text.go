package main

import (
	"regexp"
	"strings"
)

var (
	ansi       = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)
	errorish   = regexp.MustCompile(`(?i)error|denied|unauthori[sz]ed|forbidden|fatal|refused|failed|invalid|unknown|not found|unsupported|insufficient|timed out|\b[45]\d\d\b`)
	noiseLines = regexp.MustCompile(`(?i)^(warning! (using --password|your credentials)|configure a credential helper|https://docs\.docker\.com|usage:|see '.* --help'|run '.* --help')`)
)

// maxLine bounds the one-line error of a cell.
const maxLine = 400

// oneLine reduces a client's output to one line: its last line that looks
// like an error and is not a log line below error level (clients log
// retries at info or warn, then print the error they end with), or its
// last line when none does. A logrus/slog line is reduced to its message.
func oneLine(out string) string {
	out = ansi.ReplaceAllString(out, "")
	last, lastErr, lastLog := "", "", ""
	for line := range strings.Lines(out) {
		line = strings.Join(strings.Fields(line), " ")
		if line == "" || noiseLines.MatchString(line) {
			continue
		}
		lvl, msg := logLine(line)
		if lvl != "" {
			line = msg
		}
		last = line
		if !errorish.MatchString(line) {
			continue
		}
		switch strings.ToLower(lvl) {
		case "", "error", "fatal", "panic":
			lastErr = line
		default:
			lastLog = line
		}
	}
	for _, s := range []string{lastErr, lastLog, last} {
		if s != "" {
			return truncate(s, maxLine)
		}
	}
	return ""
}

// logLine recognises a logrus or slog text line (time=… level=X msg="…"
// [err="…"]) and returns its level and its message (with its err or error
// field), or "" when line is not one.
func logLine(line string) (level, msg string) {
	m := logrusMsg.FindStringSubmatch(line)
	if m == nil || !strings.HasPrefix(line, "time=") {
		return "", line
	}
	msg = unquote(m[2])
	if e := logErrField.FindStringSubmatch(line[strings.Index(line, m[0])+len(m[0]):]); e != nil {
		msg += ": " + unquote(e[1])
	}
	return m[1], msg
}

var logErrField = regexp.MustCompile(`\berr(?:or)?="((?:[^"\\]|\\.)*)"`)

func unquote(s string) string {
	s = strings.ReplaceAll(s, `\n`, " ")
	s = strings.ReplaceAll(s, `\"`, `"`)
	return flat(s)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8Start(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// flat makes a message one line (for the PASS/FAIL lines and the tables).
func flat(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// mdEscape makes s safe inside a markdown table cell.
func mdEscape(s string) string {
	s = flat(s)
	s = strings.ReplaceAll(s, "|", `\|`)
	return s
}

// mountRequests finds, in a distribution access log, the blob upload
// requests to repo that asked for a cross-repository mount, and the status
// each was answered with (201: mounted; 202: not mounted, an upload was
// started instead).
func mountRequests(log, repo string) []string {
	re := regexp.MustCompile(`"POST /v2/` + regexp.QuoteMeta(repo) + `/blobs/uploads/\?([^" ]*) HTTP/[0-9.]+" ([0-9]{3})`)
	var statuses []string
	for _, m := range re.FindAllStringSubmatch(log, -1) {
		if strings.Contains(m[1], "mount=") {
			statuses = append(statuses, m[2])
		}
	}
	return statuses
}

// registryLogLine returns the first line of a registry's log that matches
// re, without its timestamp and logger noise, or "".
func registryLogLine(log string, re *regexp.Regexp) string {
	for line := range strings.Lines(log) {
		if !re.MatchString(line) {
			continue
		}
		line = strings.TrimSpace(line)
		// logrus text: time="…" level=info msg="failed to verify token: …" go.version=…
		if m := logrusMsg.FindStringSubmatch(line); m != nil {
			return m[1] + ": " + unquote(m[2])
		}
		return truncate(line, maxLine)
	}
	return ""
}

var logrusMsg = regexp.MustCompile(`level=(\w+) msg="((?:[^"\\]|\\.)*)"`)
