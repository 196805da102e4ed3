package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"gatehouse/internal/testkit"
)

// openPTY opens a pseudo-terminal pair, so the prompt can be driven through run itself as a
// person at a terminal would; the test skips where the machine has none.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	unlock := 0
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); errno != 0 {
		t.Skipf("unlocking the pseudo-terminal: %v", errno)
	}
	var n uint32
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); errno != 0 {
		t.Skipf("naming the pseudo-terminal: %v", errno)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("opening the pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { tty.Close() })
	// Whatever the terminal echoes must be drained, or a long echo could block the writer.
	go func() {
		buf := make([]byte, 1024)
		for {
			if _, err := master.Read(buf); err != nil {
				return
			}
		}
	}()
	return master, tty
}

// runAtTerminal runs one command with typed as what a person types at its terminal.
func runAtTerminal(t *testing.T, typed string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	master, tty := openPTY(t)
	return runOnTerminal(t, ctx, master, tty, typed, args...)
}

func runOnTerminal(t *testing.T, ctx context.Context, master, tty *os.File, typed string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	if _, err := master.WriteString(typed); err != nil {
		t.Fatal(err)
	}
	var out, errOut testkit.SyncBuffer
	err = run(ctx, append([]string{"gatehouse"}, args...), func(string) string { return "" }, tty, &out, &errOut)
	return out.String(), errOut.String(), err
}

func echoOn(t *testing.T, tty *os.File) bool {
	t.Helper()
	var tio syscall.Termios
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, tty.Fd(), syscall.TCGETS, uintptr(unsafe.Pointer(&tio))); errno != 0 {
		t.Fatalf("reading the terminal state: %v", errno)
	}
	return tio.Lflag&syscall.ECHO != 0
}

func TestPasswordPromptAtATerminal(t *testing.T) {
	path := newDatabase(t)
	store := openDB(t, path)

	t.Run("user add asks twice without --password-stdin", func(t *testing.T) {
		out, errOut, err := runAtTerminal(t, "typed at the terminal\ntyped at the terminal\n",
			"user", "add", "--db", path, "--username", "alice", "--role", "admin")
		if err != nil {
			t.Fatalf("%v (stderr %q)", err, errOut)
		}
		if out != "created user alice (admin)\n" || errOut != "Password: \nAgain: \n" {
			t.Errorf("stdout %q, stderr %q", out, errOut)
		}
		if !verifies(t, userNamed(t, store, "alice").PasswordHash, "typed at the terminal") {
			t.Error("the stored hash does not verify the typed password")
		}
	})
	t.Run("user add refuses two different passwords and creates nobody", func(t *testing.T) {
		_, _, err := runAtTerminal(t, "typed at the terminal\ntyped at the terminaL\n",
			"user", "add", "--db", path, "--username", "bob")
		assertOneLine(t, err, "differ")
		if _, err := store.UserByUsername(context.Background(), "bob"); err == nil {
			t.Error("bob was created")
		}
	})
	t.Run("user set-password asks twice without --password-stdin", func(t *testing.T) {
		_, errOut, err := runAtTerminal(t, "another typed passphrase\nanother typed passphrase\n",
			"user", "set-password", "--db", path, "alice")
		if err != nil {
			t.Fatalf("%v (stderr %q)", err, errOut)
		}
		if !verifies(t, userNamed(t, store, "alice").PasswordHash, "another typed passphrase") {
			t.Error("the stored hash does not verify the typed password")
		}
	})
	t.Run("user set-password names an unknown user before asking", func(t *testing.T) {
		_, errOut, err := runAtTerminal(t, "", "user", "set-password", "--db", path, "nobody")
		assertOneLine(t, err, `no user "nobody"`)
		if strings.Contains(errOut, "Password:") {
			t.Errorf("asked for a password for an unknown user: %q", errOut)
		}
	})
	t.Run("Ctrl-C at the prompt stops the command and gives the terminal its echo back", func(t *testing.T) {
		master, tty := openPTY(t)
		if !echoOn(t, tty) {
			t.Fatal("the new terminal does not echo")
		}
		// Ctrl-C reaches run as a cancelled context, as main's signal handling makes it.
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		before := userNamed(t, store, "alice").PasswordHash
		_, _, err := runOnTerminal(t, ctx, master, tty, "half a passw", "user", "set-password", "--db", path, "alice")
		assertOneLine(t, err, "interrupted")
		if !echoOn(t, tty) {
			t.Error("the terminal was left without echo")
		}
		if userNamed(t, store, "alice").PasswordHash != before {
			t.Error("the password changed")
		}
	})
	t.Run("user set-password refuses an empty password and keeps the old one", func(t *testing.T) {
		before := userNamed(t, store, "alice").PasswordHash
		_, _, err := runAtTerminal(t, "\n", "user", "set-password", "--db", path, "alice")
		assertOneLine(t, err, "no password")
		if userNamed(t, store, "alice").PasswordHash != before {
			t.Error("the password changed")
		}
	})
}
