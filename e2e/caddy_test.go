package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"html"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"gatehouse/internal/testkit"
)

// caddyPath finds Caddy (Debian's package caddy installs /usr/bin/caddy), or skips the test
// when there is none and CI is not "true"; under CI a missing Caddy fails, so the tests of
// the proxy integration never silently vanish.
func caddyPath(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("proxy test skipped in short mode")
	}
	for _, p := range []string{"/usr/bin/caddy"} {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	if p, err := exec.LookPath("caddy"); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("caddy not found (looked for /usr/bin/caddy and caddy on PATH); install the Debian package caddy")
	}
	t.Skip("caddy not found; install the Debian package caddy (CI=true makes this a failure)")
	return ""
}

// freePort is a TCP port on 127.0.0.1 that nothing listened on a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// StartCaddy runs caddy with caddyfile (the Caddyfile adapter) until the test ends, and
// waits until every one of ports accepts connections on 127.0.0.1. Caddy keeps its config
// and data under the test's own directory.
func StartCaddy(t testing.TB, bin, caddyfile string, ports ...int) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	var out testkit.SyncBuffer
	cmd := exec.Command(bin, "run", "--config", path, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
		"XDG_DATA_HOME="+filepath.Join(dir, "data"))
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start caddy: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("caddy output:\n%s", out.String())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for _, port := range ports {
		addr := "127.0.0.1:" + strconv.Itoa(port)
		for {
			conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
			if err == nil {
				conn.Close()
				break
			}
			select {
			case err := <-exited:
				t.Fatalf("caddy exited during start-up (%v):\n%s", err, out.String())
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("caddy does not listen on %s after 15s:\n%s", addr, out.String())
			}
		}
	}
}

// selfSignedCert writes a certificate and key for hosts into dir, for Caddy's tls directive;
// the browser accepts it with BrowserOptions.IgnoreCertificateErrors.
func selfSignedCert(t testing.TB, dir string, hosts ...string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: hosts[0]}, DNSNames: hosts,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// EchoApp is the app behind the proxy: its pages show the Remote-* headers each request
// arrived with.
type EchoApp struct {
	Addr     string
	requests atomic.Int64
}

// Requests is how many requests for pages (not the browser's favicon) reached the app.
func (e *EchoApp) Requests() int64 { return e.requests.Load() }

// StartEchoApp serves the app on 127.0.0.1 until the test ends.
func StartEchoApp(t testing.TB) *EchoApp {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	e := &EchoApp{Addr: ln.Addr().String()}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/favicon.ico" {
			http.NotFound(w, r)
			return
		}
		e.requests.Add(1)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!DOCTYPE html><html lang="en"><head><title>App</title></head><body><main><h1>The app</h1><dl>`)
		for _, name := range []string{"Remote-User", "Remote-Name", "Remote-Email", "Remote-Role", "Remote-Groups"} {
			_, sent := r.Header[name]
			fmt.Fprintf(w, `<dt>%s</dt><dd id="%s" data-sent="%v">%s</dd>`, name, strings.ToLower(name), sent,
				html.EscapeString(r.Header.Get(name)))
		}
		fmt.Fprintf(w, `</dl><p id="path">%s</p></main></body></html>`, html.EscapeString(r.URL.RequestURI()))
	})}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("echo app: %v", err)
		}
	})
	return e
}
