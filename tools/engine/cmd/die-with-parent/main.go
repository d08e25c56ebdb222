// die-with-parent PARENT_PID PROGRAM [ARGS...] runs PROGRAM in place of itself (same process) so
// that it is killed when PARENT_PID, the process that started the caller, dies.
//
// Why: a launcher that is a shell script (tools/engine/launchers/) cannot ask the kernel for a
// parent-death signal itself. It execs this with its own $PPID; we arm PR_SET_PDEATHSIG, check the
// parent is still the one the script saw, and exec the program, which keeps the setting (it survives
// execve for a program that is not set-user-ID). docs/engine.md, "When the CLI is killed".
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"

	"cipp-hardening/tools/engine/internal/parentdeath"
)

func init() {
	// The parent-death setting belongs to one thread, and execve must run on that same thread.
	runtime.LockOSThread()
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "die-with-parent: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) < 2 {
		return errors.New("usage: die-with-parent PARENT_PID PROGRAM [ARGS...]")
	}
	parent, err := strconv.Atoi(args[0])
	if err != nil || parent <= 0 {
		return fmt.Errorf("PARENT_PID must be a process id, got %q", args[0])
	}
	program, err := exec.LookPath(args[1])
	if err != nil {
		return err
	}
	if err := parentdeath.Arm(parent); err != nil {
		return err
	}
	return syscall.Exec(program, args[1:], os.Environ())
}
