package mail

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"strconv"
	"time"

	"gatehouse/db"
	"gatehouse/views"
)

// Scheduler enqueues the mails that time causes: a notice that starts is mailed to its
// audience, and a must-read notice that reminds gets one reminder per interval to each
// reader who has not acknowledged it. Each enqueue is one transaction whose reasons are
// unique, so any number of schedulers on one database mail each reader once.
type Scheduler struct {
	db       *db.DB
	baseURL  *url.URL
	location *time.Location
	now      func() time.Time
	log      *slog.Logger
}

// NewScheduler enqueues notice mails in store, linking to notices under baseURL and
// showing times in loc.
func NewScheduler(store *db.DB, baseURL *url.URL, loc *time.Location, now func() time.Time, log *slog.Logger) *Scheduler {
	return &Scheduler{db: store, baseURL: baseURL, location: loc, now: now, log: log}
}

// noticeLink is where a mail about notice id leads: the notice's own page, which asks the
// reader to sign in as any page does. It carries nothing that signs anyone in.
func noticeLink(base *url.URL, id int64) string {
	return base.String() + "/notices/" + strconv.FormatInt(id, 10)
}

// Tick enqueues what is due at now and ends the mails whose time has passed; it reports
// how many mails it enqueued.
func (s *Scheduler) Tick(ctx context.Context) (int, error) {
	now := s.now()
	var errs []error
	n, err := s.announce(ctx, now)
	errs = append(errs, err)
	m, err := s.remind(ctx, now)
	errs = append(errs, err)
	_, err = s.db.ExpireMail(ctx, now)
	errs = append(errs, err)
	return n + m, errors.Join(errs...)
}

func (s *Scheduler) announce(ctx context.Context, now time.Time) (int, error) {
	ns, err := s.db.NoticesToAnnounce(ctx, now)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, n := range ns {
		link := noticeLink(s.baseURL, n.ID)
		content, err := views.NoticeMail(n, link, false, s.location)
		if err != nil {
			return total, err
		}
		k, err := s.db.AnnounceNotice(ctx, n, db.OutboxMail{Subject: content.Subject, Text: content.Text, HTML: content.HTML}, now)
		if err != nil {
			return total, err
		}
		if k > 0 {
			s.log.Info("notice mailed to its audience", "notice_id", n.ID, "mails", k)
		}
		total += k
	}
	return total, nil
}

func (s *Scheduler) remind(ctx context.Context, now time.Time) (int, error) {
	ns, err := s.db.NoticesToRemind(ctx, now)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, n := range ns {
		round, _ := db.ReminderRound(n, now)
		if round < 1 {
			continue
		}
		link := noticeLink(s.baseURL, n.ID)
		content, err := views.NoticeMail(n, link, true, s.location)
		if err != nil {
			return total, err
		}
		// The notice's page says why reminders come and is where they stop: unsubscribing
		// from a must-read notice means reading and acknowledging it.
		k, err := s.db.EnqueueReminders(ctx, n, round, db.OutboxMail{Subject: content.Subject, Text: content.Text,
			HTML: content.HTML, Unsubscribe: link}, now)
		if err != nil {
			return total, err
		}
		if k > 0 {
			s.log.Info("reminders enqueued", "notice_id", n.ID, "round", round, "mails", k)
		}
		total += k
	}
	return total, nil
}

// Service runs a scheduler and a sender side by side in serve: the scheduler ticks every
// tickEvery, the sender polls every poll, and Kick makes both run at once (after a change
// that enqueued mail or a notice that starts now).
type Service struct {
	Scheduler *Scheduler
	Sender    *Sender
	log       *slog.Logger
	kick      chan struct{}
}

// tickEvery is how often the scheduler looks for notices that started or reminders due.
const tickEvery = 30 * time.Second

// NewService pairs a scheduler and a sender.
func NewService(sch *Scheduler, snd *Sender, log *slog.Logger) *Service {
	return &Service{Scheduler: sch, Sender: snd, log: log, kick: make(chan struct{}, 1)}
}

// Kick asks the service to enqueue and deliver now rather than at its next tick. It never
// blocks, and is a no-op on a nil service (mail off).
func (s *Service) Kick() {
	if s == nil {
		return
	}
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run ticks and delivers until ctx ends.
func (s *Service) Run(ctx context.Context) {
	tick := time.NewTicker(tickEvery)
	defer tick.Stop()
	deliver := time.NewTicker(poll)
	defer deliver.Stop()
	s.runTick(ctx)
	s.runDelivery(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
			s.runTick(ctx)
			s.runDelivery(ctx)
		case <-tick.C:
			s.runTick(ctx)
		case <-deliver.C:
			s.runDelivery(ctx)
		}
	}
}

func (s *Service) runTick(ctx context.Context) {
	if _, err := s.Scheduler.Tick(ctx); err != nil && ctx.Err() == nil {
		s.log.Error("mail scheduler failed", "err", err)
	}
}

func (s *Service) runDelivery(ctx context.Context) {
	if _, _, err := s.Sender.DeliverDue(ctx); err != nil && ctx.Err() == nil {
		s.log.Error("mail delivery failed", "err", err)
	}
}
