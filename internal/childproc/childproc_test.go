package childproc

import (
	"os/exec"
	"testing"
	"time"
)

func TestStopAndKillAll(t *testing.T) {
	exited := make(chan struct{})
	c, err := Start("sleep", exec.Command("sleep", "60"), func() { close(exited) })
	if err != nil {
		t.Fatal(err)
	}
	if c.Exited() || c.Pid() == 0 {
		t.Fatal("not running")
	}
	c.Stop(time.Second)
	if !c.Exited() || c.Err() == nil {
		t.Fatalf("after Stop: exited %v, err %v", c.Exited(), c.Err())
	}
	<-exited // onExit ran

	d, err := Start("sleep", exec.Command("sleep", "60"), nil)
	if err != nil {
		t.Fatal(err)
	}
	KillAll()
	if !d.Exited() {
		t.Fatal("KillAll left a child running")
	}
}
