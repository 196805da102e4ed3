package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"gatehouse/internal/testkit"
)

func TestMainSetsAnOwnerOnlyUmask(t *testing.T) {
	withUmask(t, 0o022) // the child inherits this; main must narrow it
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := gatehouseBinary(t, ctx, "serve", "--addr", "127.0.0.1:0", "--db", filepath.Join(t.TempDir(), "g.db"), "--log-format", "json")
	var out, errOut testkit.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-waited:
		case <-time.After(20 * time.Second):
			t.Errorf("serve did not stop within 20 s of SIGTERM")
		}
	}()
	waitForServing(t, &errOut, waited)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^Umask:\s*(\d+)$`).FindSubmatch(status)
	if m == nil {
		t.Skip("this kernel does not report the umask in /proc/PID/status")
	}
	if string(m[1]) != "0077" {
		t.Errorf("the running binary's umask is %s, want 0077", m[1])
	}
}
