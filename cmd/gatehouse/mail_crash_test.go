package main

import (
	"context"
	"io"
	"net/url"
	"regexp"
	"syscall"
	"testing"
	"time"

	"gatehouse/db"
	"gatehouse/internal/testkit"
)

var csrfInput = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)

// A serve process killed after the reset request committed and before its mail went out
// loses nothing and doubles nothing: the next process delivers it, exactly once.
func TestCrashBetweenCommitAndSendMailsOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the real binary")
	}
	smtp := testkit.StartSMTP(t)
	smtp.Stop() // down when the change commits, so the mail cannot have gone out
	path := newDatabase(t)
	store := openDB(t, path)
	testkit.CreateUser(t, store, db.NewUser{Username: "amy", Role: db.RoleStaff, Email: "amy@example.com",
		PasswordHash: testkit.CheapHash(t, "correct horse battery")}, "", db.Event{At: time.Now()})
	store.Close()
	mailFlags := []string{"--smtp-addr", smtp.Addr, "--smtp-from", "portal@example.com", "--smtp-tls", "none"}

	first := startProcess(t, path, mailFlags...)
	w := newWebClient("http://" + first.addr)
	resp, err := w.http.Get(w.base + "/login/forgot")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfInput.FindSubmatch(page)
	if m == nil {
		t.Fatalf("no form on /login/forgot:\n%s", page)
	}
	code, loc, err := w.post("/login/forgot", url.Values{"username": {"amy"}, "_csrf": {string(m[1])}})
	if err != nil || code != 303 || loc != "/login/forgot?sent=1" {
		t.Fatalf("POST /login/forgot = %d %q %v", code, loc, err)
	}
	// Committed, tried once against the dead server, not sent: now the process dies.
	reader, err := db.OpenExisting(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		rows, err := reader.OutboxMails(context.Background(), db.MailPending)
		if err == nil && len(rows) == 1 && rows[0].Attempts >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the mail was never tried: %v %v\n%s", rows, err, first.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.cmd.Wait()

	smtp.Start()
	second := startProcess(t, path, mailFlags...)
	got := smtp.WaitFor(1, 90*time.Second)
	time.Sleep(2 * time.Second) // room for a second copy, were one coming
	if got = smtp.Messages(); len(got) != 1 || got[0].To[0] != "amy@example.com" {
		t.Fatalf("%d mails arrived after the restart, want exactly one to amy\n%s", len(got), second.stderr.String())
	}
	rows, err := reader.OutboxMails(context.Background(), "")
	if err != nil || len(rows) != 1 || rows[0].State != db.MailSent {
		t.Fatalf("the outbox after delivery: %+v %v", rows, err)
	}
}
