// Package mail delivers Gatehouse's mail: an SMTP transport over github.com/wneessen/go-mail,
// the sender that delivers the outbox with retries, and the scheduler that enqueues the mails
// notices cause as time passes (a notice starting, a reminder due).
package mail

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// TLS modes of the connection to the SMTP server.
const (
	TLSStartTLS = "starttls" // plain connection upgraded with STARTTLS, which must succeed
	TLSImplicit = "tls"      // TLS from the first byte (usually port 465)
	TLSNone     = "none"     // no encryption: only to a server on the loopback interface
)

// Config is how to reach the SMTP server. A zero Addr means mail is off.
type Config struct {
	Addr     string // host:port
	From     string // the sender, as an RFC 5322 address ("Gatehouse <portal@example.com>")
	User     string // "" for no authentication
	Password string
	TLS      string
}

// Enabled reports whether mail is configured at all.
func (c Config) Enabled() bool { return c.Addr != "" }

// Message is one mail as it goes on the wire.
type Message struct {
	To              string
	Subject         string
	Text            string
	HTML            string // the short alternative; "" for text only
	MessageID       string // without angle brackets; the same on every retry of one mail
	ListUnsubscribe string // a URL, or ""
	Date            time.Time
}

// Result is the outcome of one message: the server's answer when it took the message, or
// the error, and whether trying again later may help (a 4xx answer, no connection).
type Result struct {
	Answer    string
	Err       error
	Temporary bool
}

// Transport sends messages to the configured server, one connection per batch.
type Transport struct {
	cfg     Config
	timeout time.Duration
}

// commandTimeout bounds each SMTP exchange, so a server that stops answering costs a sender
// at most this per step, well inside the lease it holds on a mail.
const commandTimeout = 20 * time.Second

// NewTransport returns the transport for cfg, which must be Enabled.
func NewTransport(cfg Config) *Transport { return &Transport{cfg: cfg, timeout: commandTimeout} }

func (t *Transport) client() (*gomail.Client, error) {
	host, portText, err := net.SplitHostPort(t.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("mail: server address %q: %w", t.cfg.Addr, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, fmt.Errorf("mail: server address %q: bad port", t.cfg.Addr)
	}
	opts := []gomail.Option{gomail.WithPort(port), gomail.WithTimeout(t.timeout)}
	switch t.cfg.TLS {
	case TLSImplicit:
		opts = append(opts, gomail.WithSSL())
	case TLSNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	}
	if t.cfg.User != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(t.cfg.User), gomail.WithPassword(t.cfg.Password))
	}
	c, err := gomail.NewClient(host, opts...)
	if err != nil {
		return nil, fmt.Errorf("mail: %w", err)
	}
	return c, nil
}

// build turns m into go-mail's message: plain text with the HTML alternative, and the
// headers every mail of the portal carries.
func (t *Transport) build(m Message) (*gomail.Msg, error) {
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	if err := msg.From(t.cfg.From); err != nil {
		return nil, fmt.Errorf("mail: sender %q: %w", t.cfg.From, err)
	}
	if err := msg.To(m.To); err != nil {
		return nil, fmt.Errorf("mail: recipient %q: %w", m.To, err)
	}
	msg.Subject(m.Subject)
	if m.MessageID != "" {
		msg.SetMessageIDWithValue(m.MessageID)
	} else {
		msg.SetMessageID()
	}
	if m.Date.IsZero() {
		m.Date = time.Now()
	}
	msg.SetDateWithValue(m.Date)
	// RFC 3834: a machine wrote this, so vacation responders and the like must not answer.
	msg.SetGenHeader(headerAutoSubmitted, "auto-generated")
	if m.ListUnsubscribe != "" {
		msg.SetGenHeader(gomail.HeaderListUnsubscribe, "<"+m.ListUnsubscribe+">")
	}
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	return msg, nil
}

// Send delivers msgs over one connection and returns one Result per message, in order. A
// connection that cannot be made fails every message, temporarily.
func (t *Transport) Send(ctx context.Context, msgs []Message) []Result {
	results := make([]Result, len(msgs))
	built := make([]*gomail.Msg, len(msgs))
	for i, m := range msgs {
		var err error
		if built[i], err = t.build(m); err != nil {
			results[i] = Result{Err: err}
		}
	}
	c, err := t.client()
	if err == nil {
		err = c.DialWithContext(ctx)
	}
	if err != nil {
		for i := range results {
			if results[i].Err == nil {
				results[i] = Result{Err: fmt.Errorf("mail: connect to %s: %w", t.cfg.Addr, err), Temporary: true}
			}
		}
		return results
	}
	defer c.Close()
	for i, msg := range built {
		if msg == nil {
			continue
		}
		if err := c.Send(msg); err != nil {
			results[i] = Result{Err: fmt.Errorf("mail: send to %s: %w", msgs[i].To, err), Temporary: temporary(err)}
			continue
		}
		results[i] = Result{Answer: strings.TrimSpace(msg.ServerResponse())}
	}
	return results
}

// SendNow delivers one message on its own connection and returns the server's answer: the
// way `gatehouse mail test` proves the settings work, outside the outbox.
func (t *Transport) SendNow(ctx context.Context, m Message) (string, error) {
	r := t.Send(ctx, []Message{m})[0]
	return r.Answer, r.Err
}

// temporary reports whether a failed send may succeed later: a 4xx answer, or trouble with
// the connection rather than a refusal. A 5xx answer is final.
func temporary(err error) bool {
	var se *gomail.SendError
	if errors.As(err, &se) {
		if code := se.ErrorCode(); code >= 500 && code < 600 {
			return false
		}
		return se.IsTemp() || se.ErrorCode() == 0
	}
	return true
}

// headerAutoSubmitted is RFC 3834's header, which go-mail has no name for.
const headerAutoSubmitted gomail.Header = "Auto-Submitted"
