package childproc

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
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

func TestRun(t *testing.T) {
	out, err := Run(context.Background(), 10*time.Second, "", []string{"GREETING=hello"}, "from stdin\n", "sh", "-c", `echo "$GREETING"; cat; echo oops >&2; exit 3`)
	if out != "hello\nfrom stdin\noops\n" {
		t.Errorf("output %q", out)
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Errorf("error %v, want exit status 3", err)
	}

	// A command past its bound is killed with its process group (the
	// sleep its shell started too) and the error says it timed out.
	start := time.Now()
	out, err = Run(context.Background(), 300*time.Millisecond, "", nil, "", "sh", "-c", "echo started; sleep 30; echo never")
	if !errors.Is(err, ErrTimeout) || out != "started\n" {
		t.Errorf("timed-out run: %q, %v", out, err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the timed-out run took %v: the process group was not killed", took)
	}
}

func TestStartLogged(t *testing.T) {
	file := t.TempDir() + "/child.log"
	var tee strings.Builder
	c, log, err := StartLogged("sh", file, &tee, []string{"WORD=logged"}, "sh", "-c", `echo "one $WORD"; echo two >&2`)
	if err != nil {
		t.Fatal(err)
	}
	if !c.WaitExit(10 * time.Second) {
		t.Fatal("the child did not exit")
	}
	if err := c.Err(); err != nil {
		t.Fatal(err)
	}
	const want = "one logged\ntwo\n"
	onDisk, _ := os.ReadFile(file)
	if log.String() != want || string(onDisk) != want || tee.String() != want {
		t.Errorf("memory %q, file %q, tee %q; want %q in each", log.String(), onDisk, tee.String(), want)
	}
	if got := log.Since(len("one logged\n")); got != "two\n" {
		t.Errorf("Since: %q", got)
	}
}
