package testkit

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// SMTPServer is a real SMTP server (github.com/emersion/go-smtp) on 127.0.0.1 that keeps
// every message it accepts, for tests of the code that sends mail. It can refuse chosen
// recipients, and be stopped and started again on the same address, like a server that
// goes down and comes back.
type SMTPServer struct {
	Addr string // host:port

	tb      testing.TB
	mu      sync.Mutex
	server  *smtp.Server
	ln      net.Listener
	msgs    []Received
	refused map[string]bool
	arrived chan struct{}
}

// Received is one message the server accepted.
type Received struct {
	From string
	To   []string
	Data []byte
}

// StartSMTP starts a server for the rest of the test.
func StartSMTP(tb testing.TB) *SMTPServer {
	tb.Helper()
	s := &SMTPServer{tb: tb, refused: map[string]bool{}, arrived: make(chan struct{}, 1)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("smtp listen: %v", err)
	}
	s.Addr = ln.Addr().String()
	s.serve(ln)
	tb.Cleanup(s.Stop)
	return s
}

func (s *SMTPServer) serve(ln net.Listener) {
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &smtpSession{s: s}, nil }))
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.MaxMessageBytes = 1 << 20
	srv.AllowInsecureAuth = true
	srv.ErrorLog = silentLog{}
	s.mu.Lock()
	s.server, s.ln = srv, ln
	s.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

type silentLog struct{}

func (silentLog) Printf(string, ...any) {}
func (silentLog) Println(...any)        {}

// Stop closes the server: connections to its address are refused until Start.
func (s *SMTPServer) Stop() {
	s.mu.Lock()
	srv, ln := s.server, s.ln
	s.server, s.ln = nil, nil
	s.mu.Unlock()
	// The listener is closed here too: Serve may not have taken it yet, and then the
	// server's Close would leave it open.
	if ln != nil {
		_ = ln.Close()
	}
	if srv != nil {
		_ = srv.Close()
	}
}

// Start serves again on the same address.
func (s *SMTPServer) Start() {
	s.tb.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the port was just ours; give the kernel a moment to let it go
		if ln, err = net.Listen("tcp", s.Addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.tb.Fatalf("smtp listen again on %s: %v", s.Addr, err)
	}
	s.serve(ln)
}

// Refuse makes the server answer 550 to RCPT TO addr.
func (s *SMTPServer) Refuse(addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refused[strings.ToLower(addr)] = true
}

// Messages returns what the server accepted so far, in order.
func (s *SMTPServer) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.msgs...)
}

// WaitFor waits up to timeout until at least n messages arrived and returns them all; it
// fails the test when they do not.
func (s *SMTPServer) WaitFor(n int, timeout time.Duration) []Received {
	s.tb.Helper()
	deadline := time.After(timeout)
	for {
		if ms := s.Messages(); len(ms) >= n {
			return ms
		}
		select {
		case <-s.arrived:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			s.tb.Fatalf("smtp: %d messages arrived within %s, want %d", len(s.Messages()), timeout, n)
			return nil
		}
	}
}

// To returns the accepted messages addressed to addr.
func (s *SMTPServer) To(addr string) []Received {
	var out []Received
	for _, m := range s.Messages() {
		for _, to := range m.To {
			if strings.EqualFold(to, addr) {
				out = append(out, m)
			}
		}
	}
	return out
}

type smtpSession struct {
	s    *SMTPServer
	from string
	to   []string
}

func (x *smtpSession) Reset()        { x.from, x.to = "", nil }
func (x *smtpSession) Logout() error { return nil }

func (x *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	x.from = from
	return nil
}

func (x *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.s.mu.Lock()
	refused := x.s.refused[strings.ToLower(to)]
	x.s.mu.Unlock()
	if refused {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such mailbox here"}
	}
	x.to = append(x.to, to)
	return nil
}

func (x *smtpSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	x.s.mu.Lock()
	x.s.msgs = append(x.s.msgs, Received{From: x.from, To: x.to, Data: b})
	x.s.mu.Unlock()
	select {
	case x.s.arrived <- struct{}{}:
	default:
	}
	return nil
}

// Header returns the value of a header of the message.
func (m Received) Header(name string) string {
	msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
	if err != nil {
		return ""
	}
	v := msg.Header.Get(name)
	if dec, err := new(mime.WordDecoder).DecodeHeader(v); err == nil {
		return dec
	}
	return v
}

// Part returns the decoded body part of the given media type ("text/plain", "text/html").
func (m Received) Part(mediaType string) string {
	msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
	if err != nil {
		return ""
	}
	return findPart(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body, mediaType)
}

func findPart(contentType, encoding string, body io.Reader, want string) string {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return ""
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if errors.Is(err, io.EOF) || err != nil {
				return ""
			}
			if got := findPart(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p, want); got != "" {
				return got
			}
		}
	}
	if mt != want {
		return ""
	}
	var r io.Reader = body
	switch strings.ToLower(encoding) {
	case "quoted-printable":
		r = quotedprintable.NewReader(body)
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, newlineSkipper{body})
	}
	b, _ := io.ReadAll(r)
	return string(b)
}

// newlineSkipper drops the line breaks of a base64 body, which the decoder does not take.
type newlineSkipper struct{ r io.Reader }

func (n newlineSkipper) Read(p []byte) (int, error) {
	k, err := n.r.Read(p)
	j := 0
	for _, c := range p[:k] {
		if c != '\r' && c != '\n' {
			p[j] = c
			j++
		}
	}
	return j, err
}
