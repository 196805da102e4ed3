package testkit

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// TestPGCluster: a test's own server answers, is down once stopped, and answers again.
func TestPGCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("makes a PostgreSQL cluster")
	}
	c := StartPGCluster(t)
	ready := func() bool {
		return exec.Command(filepath.Join(c.bin, "pg_isready"), "-q", "-h", "127.0.0.1", "-p", strconv.Itoa(c.Port)).Run() == nil
	}
	if !ready() {
		t.Fatal("the new cluster does not accept connections")
	}
	c.Stop()
	if ready() {
		t.Fatal("the stopped cluster still accepts connections")
	}
	c.Start()
	if !ready() {
		t.Fatal("the restarted cluster does not accept connections")
	}
}
