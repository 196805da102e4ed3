package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gatehouse/internal/testkit"
)

// check promises what serve will do without doing it: it reads the SMTP settings and the
// password file, and never opens a connection to the server.
func TestCheckValidatesMailWithoutConnecting(t *testing.T) {
	path := newDatabase(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	pw := filepath.Join(t.TempDir(), "smtp-password")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := mustRun(t, "", "check", "--db", path, "--smtp-addr", ln.Addr().String(), "--smtp-from", "portal@example.com",
		"--smtp-tls", "none", "--smtp-user", "portal", "--smtp-password-file", pw)
	if !strings.Contains(out, "mail via "+ln.Addr().String()+" (none)") {
		t.Errorf("check does not say where mail goes: %q", out)
	}
	if strings.Contains(out, "s3cret") {
		t.Error("check printed the SMTP password")
	}
	time.Sleep(100 * time.Millisecond)
	if n := accepted.Load(); n != 0 {
		t.Fatalf("check connected to the SMTP server %d times", n)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	_, _, err = runCLI(t, "check", "--db", path, "--smtp-addr", ln.Addr().String(), "--smtp-from", "portal@example.com",
		"--smtp-tls", "none", "--smtp-user", "portal", "--smtp-password-file", empty)
	assertOneLine(t, err, "invalid --smtp-password-file", "first line is empty")
}

func TestCheckSaysMailIsOffWithoutAServer(t *testing.T) {
	out := mustRun(t, "", "check", "--db", newDatabase(t))
	if !strings.Contains(out, "mail off") {
		t.Errorf("check = %q", out)
	}
}

func TestMailTestSendsNowAndPrintsTheServerAnswer(t *testing.T) {
	smtp := testkit.StartSMTP(t)
	path := newDatabase(t)
	flags := []string{"--db", path, "--smtp-addr", smtp.Addr, "--smtp-from", "Gatehouse <portal@example.com>", "--smtp-tls", "none"}
	out := mustRun(t, "", append([]string{"mail", "test", "--to", "amy@example.com"}, flags...)...)
	if !strings.Contains(out, "accepted by "+smtp.Addr) || !strings.Contains(out, "2.0.0 OK") {
		t.Errorf("mail test printed %q; want the server's answer", out)
	}
	m := smtp.WaitFor(1, 5*time.Second)[0]
	if m.To[0] != "amy@example.com" || m.Header("Auto-Submitted") != "auto-generated" || !strings.Contains(m.Part("text/plain"), "test mail") {
		t.Errorf("the test mail: %+v\n%s", m.To, m.Data)
	}
	// Nothing went through the outbox: the mail is on its way at once or not at all.
	store := openDB(t, path)
	defer store.Close()
	if rows, err := store.OutboxMails(t.Context(), ""); err != nil || len(rows) != 0 {
		t.Errorf("mail test left outbox rows: %v %v", rows, err)
	}

	t.Run("a refused recipient fails with the server's answer", func(t *testing.T) {
		smtp.Refuse("gone@example.com")
		_, _, err := runCLI(t, append([]string{"mail", "test", "--to", "gone@example.com"}, flags...)...)
		assertOneLine(t, err, "not sent", "550", "no such mailbox")
	})
	t.Run("a server that is down fails, naming it", func(t *testing.T) {
		smtp.Stop()
		_, _, err := runCLI(t, append([]string{"mail", "test", "--to", "amy@example.com"}, flags...)...)
		assertOneLine(t, err, "not sent", smtp.Addr)
	})
	t.Run("without a server it says mail is off", func(t *testing.T) {
		_, _, err := runCLI(t, "mail", "test", "--to", "amy@example.com", "--db", path)
		assertOneLine(t, err, "mail is off", "--smtp-addr")
	})
	t.Run("a bad address is refused before anything is sent", func(t *testing.T) {
		_, _, err := runCLI(t, append([]string{"mail", "test", "--to", "Amy <amy@example.com>"}, flags...)...)
		assertOneLine(t, err, "--to")
	})
}

func TestUserAddTakesAConfirmedAddress(t *testing.T) {
	path := newDatabase(t)
	mustRun(t, "correct horse battery\n", "user", "add", "--db", path, "--username", "amy", "--email", " Amy@Example.com ", "--password-stdin")
	store := openDB(t, path)
	u := userNamed(t, store, "amy")
	store.Close()
	if u.Email != "Amy@Example.com" {
		t.Fatalf("stored address %q", u.Email)
	}
	t.Run("the same address in another case belongs to one account only", func(t *testing.T) {
		_, _, err := runIn(t, nil, "correct horse battery\n", "user", "add", "--db", path, "--username", "bob",
			"--email", "amy@example.COM", "--password-stdin")
		assertOneLine(t, err, "already belongs to another account")
	})
	t.Run("an address with a name is refused before the password is read", func(t *testing.T) {
		_, _, err := runIn(t, nil, "", "user", "add", "--db", path, "--username", "cat", "--email", "Cat <cat@example.com>")
		assertOneLine(t, err, "--email", "without a name")
	})
}
