package mail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"gatehouse/db"
)

// Retries is how long the sender waits after each failed attempt at a mail before the next
// one: the first retry within a minute, then backing off up to a day. After the attempt
// that follows the last wait fails too, the mail is given up (state failed, audited as
// such); a refusal that is final (a 5xx answer) gives up at once.
var Retries = []time.Duration{
	30 * time.Second, 2 * time.Minute, 10 * time.Minute, 30 * time.Minute,
	time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour,
}

// Attempts is how many times a mail is tried at most.
func Attempts() int { return len(Retries) + 1 }

const (
	// lease is how long a claimed mail stays the claiming sender's. It covers a whole batch
	// at commandTimeout per step; a sender that dies mid-send leaves the mail due again once
	// it runs out, which is the one way a mail can go out twice (see README: Mail).
	lease = 5 * time.Minute
	// batch is how many mails one connection carries at most.
	batch = 20
	// poll is how often a sender looks for due mail when nothing tells it to.
	poll = 5 * time.Second
)

// Sender delivers the outbox: it claims due mails, sends them, and records each outcome.
// Several senders (processes) may share one database: a claim is a compare-and-set, so
// each mail has one sender at a time.
type Sender struct {
	db        *db.DB
	transport *Transport
	log       *slog.Logger
	now       func() time.Time
	idHost    string // the domain of Message-IDs: the portal's host
	metrics   *Metrics
}

// NewSender delivers store's outbox through transport. idHost names the portal in
// Message-IDs; metrics may be nil.
func NewSender(store *db.DB, transport *Transport, log *slog.Logger, now func() time.Time, idHost string, metrics *Metrics) *Sender {
	return &Sender{db: store, transport: transport, log: log, now: now, idHost: idHost, metrics: metrics}
}

// messageID is the Message-ID of the outbox mail with reason: the same on every attempt,
// so a mail delivered twice (see lease) is one message to the reader's client.
func (s *Sender) messageID(reason string) string {
	return "gatehouse." + reason + "@" + s.idHost
}

// DeliverDue sends the mails due now, a batch at a time, until none is due or ctx ends, and
// reports how many went out and how many attempts failed.
func (s *Sender) DeliverDue(ctx context.Context) (sent, failed int, err error) {
	for ctx.Err() == nil {
		mails, err := s.db.ClaimMail(ctx, s.now(), lease, batch)
		if err != nil || len(mails) == 0 {
			return sent, failed, err
		}
		ok, bad := s.deliver(ctx, mails)
		sent, failed = sent+ok, failed+bad
		if bad > 0 {
			// What failed is due again later; what is due now was in this batch.
			return sent, failed, nil
		}
	}
	return sent, failed, ctx.Err()
}

// deliver sends one claimed batch over one connection and records each outcome.
func (s *Sender) deliver(ctx context.Context, mails []db.QueuedMail) (sent, failed int) {
	msgs := make([]Message, len(mails))
	for i, m := range mails {
		msgs[i] = Message{To: m.To, Subject: m.Subject, Text: m.Text, HTML: m.HTML, MessageID: s.messageID(m.Reason),
			ListUnsubscribe: m.Unsubscribe, Date: s.now()}
	}
	results := s.transport.Send(ctx, msgs)
	for i, m := range mails {
		r := results[i]
		// Recorded even when ctx ended meanwhile: the server's word must not be lost.
		rctx := context.WithoutCancel(ctx)
		if r.Err == nil {
			err := s.db.MarkMailSent(rctx, m.ID, m.Claim, s.now(), r.Answer)
			if err != nil {
				s.log.Error("mail sent but not recorded", "err", err, "mail_id", m.ID, "kind", m.Kind)
			}
			s.metrics.sent(m.Kind)
			sent++
			continue
		}
		failed++
		if err := s.recordFailure(rctx, m, r); err != nil {
			s.log.Error("mail failure not recorded", "err", err, "mail_id", m.ID, "kind", m.Kind)
		}
	}
	return sent, failed
}

// recordFailure schedules the next attempt at m, or gives it up, and audits the failure
// with the server's answer (never the mail's text, which may hold a link).
func (s *Sender) recordFailure(ctx context.Context, m db.QueuedMail, r Result) error {
	now := s.now()
	attempt := m.Attempts + 1
	answer := oneLine(r.Err.Error())
	f := db.MailFailure{At: now, Answer: answer}
	var detail string
	switch {
	case !r.Temporary:
		detail = fmt.Sprintf("refused, not retried (attempt %d): %s", attempt, answer)
	case attempt >= Attempts():
		detail = fmt.Sprintf("given up after %d attempts: %s", attempt, answer)
	default:
		f.RetryAt = now.Add(Retries[attempt-1])
		detail = fmt.Sprintf("attempt %d of %d failed, next at %s: %s", attempt, Attempts(),
			f.RetryAt.UTC().Format(time.RFC3339), answer)
	}
	final := f.RetryAt.IsZero()
	s.metrics.failed(m.Kind, final)
	level := slog.LevelWarn
	if final {
		level = slog.LevelError
	}
	s.log.Log(ctx, level, "mail not delivered", "mail_id", m.ID, "kind", m.Kind, "attempt", attempt, "final", final, "err", answer)
	ev := db.Event{At: now, Actor: "system", Kind: "mail.failed", Subject: m.To, ClientAddr: "local",
		Outcome: db.Failure, Detail: m.Kind + " mail " + strconv.FormatInt(m.ID, 10) + ": " + detail}
	err := s.db.MarkMailFailed(ctx, m.ID, m.Claim, f, ev)
	if errors.Is(err, db.ErrClaimLost) {
		return nil // another sender owns it now and records its own outcome
	}
	return err
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
