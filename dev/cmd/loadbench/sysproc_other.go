//go:build !linux

package main

import "syscall"

// childAttr: only Linux can tie a child's life to its parent's; elsewhere
// loadbench relies on killing its children on exit (and it needs /proc
// for its figures anyway).
func childAttr() *syscall.SysProcAttr { return nil }
