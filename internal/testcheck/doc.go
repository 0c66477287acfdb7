// Package testcheck holds the checks on text that the tests of several
// packages share: on what a command printed, an error's message, a log;
// and LogBuffer, the log sink such a check reads. It is imported only by
// _test.go files.
package testcheck
