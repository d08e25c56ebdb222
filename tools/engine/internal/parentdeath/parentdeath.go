// Package parentdeath makes the processes we start die with the process that started them.
//
// Why: a killed `pulumi up` (SIGKILL, OOM, a closed CI job) cannot stop its plugins, and a language
// host, Python program or dynamic-provider host left running keeps writing to the tenant with
// nobody to record it in the state (docs/engine.md, "When the CLI is killed").
//
// On Linux the kernel does it: prctl(PR_SET_PDEATHSIG, SIGKILL). The signal is tied to the thread
// that started the child, so a child started here is started from a goroutine locked to its thread
// until the child is waited for (a locked goroutine's thread is the only kind the Go runtime ends).
// Elsewhere nothing is armed.
package parentdeath

import (
	"errors"
	"os/exec"
)

// ErrParentGone is Arm's answer when the expected parent had already died: the caller must stop
// instead of serving anyone.
var ErrParentGone = errors.New("the process that started this one has already exited")

// Arm asks for SIGKILL when this process's parent dies, then checks that the parent is still
// `expected` (read before arming), which closes the window where it died in between.
func Arm(expected int) error { return arm(expected) }

// Bind makes cmd's process die with this one. Run the command with RunBound.
func Bind(cmd *exec.Cmd) { bind(cmd) }

// RunBound runs a command made by Bind on a thread that outlives the child.
func RunBound(cmd *exec.Cmd) error { return runLocked(cmd.Run) }

// OutputBound is RunBound for cmd.Output.
func OutputBound(cmd *exec.Cmd) ([]byte, error) {
	var out []byte
	err := runLocked(func() error {
		var err error
		out, err = cmd.Output()
		return err
	})
	return out, err
}
