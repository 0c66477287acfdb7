package main

import "syscall"

// childAttr makes the kernel kill a child if loadbench dies without
// cleaning up (SIGKILL, a crash), so no server outlives a run.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
