package mail

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"gatehouse/db"
)

// Metrics are the mail series for Prometheus. Every method is safe on a nil *Metrics, so
// mail works the same with metrics off.
type Metrics struct {
	sentTotal   *prometheus.CounterVec
	failedTotal *prometheus.CounterVec
}

// NewMetrics registers the mail series on reg, or returns nil when reg is nil.
func NewMetrics(reg prometheus.Registerer, store *db.DB) *Metrics {
	if reg == nil {
		return nil
	}
	m := &Metrics{
		sentTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_mail_sent_total", Help: "Mails the SMTP server accepted, by kind.",
		}, []string{"kind"}),
		failedTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_mail_failed_total", Help: "Failed attempts at a mail, by kind; final=true when it was given up.",
		}, []string{"kind", "final"}),
	}
	reg.MustRegister(m.sentTotal, m.failedTotal, &outboxCollector{db: store})
	return m
}

func (m *Metrics) sent(kind string) {
	if m != nil {
		m.sentTotal.WithLabelValues(kindLabel(kind)).Inc()
	}
}

func (m *Metrics) failed(kind string, final bool) {
	if m != nil {
		m.failedTotal.WithLabelValues(kindLabel(kind), strconv.FormatBool(final)).Inc()
	}
}

// kindLabel keeps the label to the kinds the outbox knows.
func kindLabel(kind string) string {
	switch kind {
	case db.MailNotice, db.MailReminder, db.MailReset, db.MailConfirm, db.MailEmailChanged:
		return kind
	}
	return "other"
}

var outboxDesc = prometheus.NewDesc("gatehouse_mail_outbox", "Mails in the outbox, by state.", []string{"state"}, nil)

// outboxCollector reads the outbox's counts at scrape time.
type outboxCollector struct{ db *db.DB }

func (c *outboxCollector) Describe(ch chan<- *prometheus.Desc) { ch <- outboxDesc }

func (c *outboxCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts, err := c.db.MailCounts(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(outboxDesc, err)
		return
	}
	for _, s := range []string{db.MailPending, db.MailSent, db.MailFailed, db.MailExpired, db.MailCancelled} {
		ch <- prometheus.MustNewConstMetric(outboxDesc, prometheus.GaugeValue, float64(counts[s]), s)
	}
}
