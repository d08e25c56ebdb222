//go:build linux

package parentdeath

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

func arm(expected int) error {
	// The setting belongs to the calling thread: callers that exec afterwards lock it (die-with-parent),
	// and a thread that is not locked is never ended by the Go runtime.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_PDEATHSIG): %w", err)
	}
	if os.Getppid() != expected {
		return ErrParentGone
	}
	return nil
}

func bind(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	// os/exec arms it in the child between fork and exec, and kills the child if this process is
	// already gone by then (syscall.forkAndExecInChild1).
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}

// runLocked keeps the goroutine, and so the thread that forks the child, on one OS thread until
// the child has been waited for: the kernel sends the parent-death signal when that thread exits.
func runLocked(run func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return run()
}
