package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gatehouse/auth"
	"gatehouse/mail"
	"gatehouse/views"
)

// mailTestTimeout bounds `mail test`: a server that does not answer is a finding too.
const mailTestTimeout = 2 * time.Minute

// cmdMailTest sends one mail now, straight to the server and not through the outbox, and
// prints the server's answer: the way to prove the SMTP settings before relying on them.
func cmdMailTest(e env, args []string) error {
	fs := newFlags("mail test")
	s := addConfigFlags(fs, e.getenv)
	to := fs.String("to", "", "the address to send the test mail to")
	if _, err := parse(e, fs, args, "send one test mail now and print the server's answer", 0); err != nil {
		return err
	}
	if *to == "" {
		return usageError{"--to is required"}
	}
	addr, err := auth.CheckEmail(*to)
	if err != nil {
		return refused(fmt.Sprintf("--to %q", *to), err)
	}
	cfg, err := s.config()
	if err != nil {
		return err
	}
	if !cfg.Mail.Enabled() {
		return errors.New("mail is off: set --smtp-addr (GATEHOUSE_SMTP_ADDR) and --smtp-from first")
	}
	content, err := views.TestMail(cfg.BaseURL.String())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(e.ctx, mailTestTimeout)
	defer cancel()
	answer, err := mail.NewTransport(cfg.Mail).SendNow(ctx, mail.Message{To: addr, Subject: content.Subject,
		Text: content.Text, HTML: content.HTML, Date: time.Now()})
	if err != nil {
		return fmt.Errorf("test mail to %s not sent: %w", addr, err)
	}
	fmt.Fprintf(e.stdout, "test mail to %s accepted by %s: %s\n", addr, cfg.Mail.Addr, answer)
	return nil
}
