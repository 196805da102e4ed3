package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"gatehouse/auth"
	"gatehouse/db"
	"gatehouse/handlers"
	"gatehouse/mail"
)

func schemaVersion() int { return db.SchemaVersion() }

func cmdServe(e env, args []string) error {
	fs := newFlags("serve")
	s := addConfigFlags(fs, e.getenv)
	if _, err := parse(e, fs, args, "migrate the database, then serve the portal", 0); err != nil {
		return err
	}
	cfg, err := s.config()
	if err != nil {
		return err
	}
	log := newLogger(e.stderr, cfg.LogFormat)
	ctx := e.ctx
	tuneMemory(e.getenv)

	store, keys, release, err := openForServing(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer release()
	// Bind before announcing anything, so an address in use fails start-up clearly.
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s (--addr): %w", cfg.Addr, err)
	}
	defer ln.Close()
	if err := announceSetup(ctx, e, store, cfg); err != nil {
		return err
	}

	var registry *prometheus.Registry
	if cfg.MetricsAddr != "" {
		registry = prometheus.NewRegistry()
		registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	mailer := newMailService(cfg, store, log, registry)
	srv := newServer(cfg, store, keys, log, registry, mailer)
	stopWatching := watchChanges(ctx, store, log)
	defer stopWatching()
	hkCtx, stopHK := context.WithCancel(ctx)
	defer stopHK()
	go housekeeping(hkCtx, store, log, cfg)
	if mailer != nil {
		go mailer.Run(hkCtx)
	}
	return serveUntilDone(ctx, log, cfg, srv, ln, registry)
}

// tuneMemory sets the garbage collector's limit and pace, unless the environment does.
func tuneMemory(getenv func(string) string) {
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
	if getenv("GOGC") == "" {
		// The live heap is small and the memory limit above caps its growth, so the
		// collector can run a third as often as by default; more would buy little CPU now
		// that a page view allocates little, and would cost resident memory.
		debug.SetGCPercent(gcPercent)
	}
}

// openForServing backs up a database about to be migrated, opens and migrates it, loads
// (or makes) the key file and holds its lock. release closes the store and lets the key go.
func openForServing(ctx context.Context, cfg Config, log *slog.Logger) (*db.DB, *auth.Keyring, func(), error) {
	if err := backupBeforeMigrating(ctx, cfg.DB, log); err != nil {
		return nil, nil, nil, err
	}
	store, err := createStore(ctx, cfg.DB)
	if err != nil {
		return nil, nil, nil, err
	}
	keys, _, err := openKeys(ctx, store, cfg.KeyFile, true)
	if err != nil {
		store.Close()
		return nil, nil, nil, err
	}
	// Held while serving, so key rotation cannot swap the key under a running server.
	releaseKey, err := lockKeyFile(cfg.KeyFile, false)
	if err != nil {
		store.Close()
		return nil, nil, nil, fmt.Errorf("key file %s (--key-file) is locked: a key rotation is running", cfg.KeyFile)
	}
	// Serve still starts, so a site is not locked out by a mode, but says how to fix it.
	for _, o := range filesOthersCanOpen(cfg) {
		log.Warn(o.problem(), "files", o.paths, "fix", o.fix())
	}
	return store, keys, func() { releaseKey(); store.Close() }, nil
}

// newMailService is the outbox's scheduler and sender, or nil when mail is off.
func newMailService(cfg Config, store *db.DB, log *slog.Logger, registry *prometheus.Registry) *mail.Service {
	if !cfg.Mail.Enabled() {
		return nil
	}
	sender := mail.NewSender(store, mail.NewTransport(cfg.Mail), log, time.Now, cfg.BaseURL.Hostname(),
		mail.NewMetrics(registryOrNil(registry), store))
	return mail.NewService(mail.NewScheduler(store, cfg.BaseURL, cfg.Location, time.Now, log), sender, log)
}

// newServer is the portal's HTTP server, with limits on every phase of a request.
func newServer(cfg Config, store *db.DB, keys *auth.Keyring, log *slog.Logger, registry *prometheus.Registry,
	mailer *mail.Service) *http.Server {
	app := handlers.New(handlers.Config{
		BaseURL:        cfg.BaseURL,
		SessionIdle:    cfg.SessionIdle,
		SessionMax:     cfg.SessionMax,
		Location:       cfg.Location,
		TrustedProxies: cfg.TrustedProxies,
		CookieDomain:   cfg.CookieDomain,
	}, handlers.Deps{
		DB:      store,
		Log:     log,
		Hasher:  newHasher(),
		Keys:    keys,
		Now:     time.Now,
		Metrics: registryOrNil(registry),
		Mail:    mailer,
	})
	return &http.Server{
		Handler:           app,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// serveUntilDone serves on ln (and metrics on their own address) until ctx ends, then
// finishes the requests in flight.
func serveUntilDone(ctx context.Context, log *slog.Logger, cfg Config, srv *http.Server, ln net.Listener,
	registry *prometheus.Registry) error {
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	if registry != nil {
		// Metrics listen on their own address, so they can stay private while the portal is public.
		mln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("cannot listen on %s (--metrics-addr): %w", cfg.MetricsAddr, err)
		}
		msrv := &http.Server{Handler: promhttp.HandlerFor(registry, promhttp.HandlerOpts{}), ReadHeaderTimeout: 10 * time.Second}
		go func() { errc <- msrv.Serve(mln) }()
		defer msrv.Close()
		log.Info("serving metrics", "addr", mln.Addr().String())
	}
	mailState := "off"
	if cfg.Mail.Enabled() {
		mailState = cfg.Mail.Addr + " (" + cfg.Mail.TLS + ")"
	}
	log.Info("serving", "addr", ln.Addr().String(), "base_url", cfg.BaseURL.String(), "db", db.Describe(cfg.DB),
		"version", version, "schema", db.SchemaVersion(), "mail", mailState)

	select {
	case err := <-errc:
		return fmt.Errorf("server stopped: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing requests in flight")
	shutCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// newHasher bounds password checks twice: one core is always left free of hashing, and
// on average at most checksPerSecond run per hashing core, so a flood of sign-in attempts
// slows sign-ins (429 with Retry-After once it waits too long) and not every other page. A
// small team signs in far below this rate. Both bounds belong to the machine, not to the
// portal: they protect this machine's cores and memory, which load on other instances
// does not touch, so they are per process by design and never shared through the store.
func newHasher() *auth.Hasher {
	slots := max(1, runtime.NumCPU()-1)
	h := auth.NewHasher(auth.DefaultParams, slots)
	h.LimitRate(float64(checksPerSecond*slots), checksPerSecond)
	return h
}

const checksPerSecond = 10

// memoryLimit is the heap size the garbage collector works to stay under unless
// GOMEMLIMIT says otherwise: each argon2id check allocates 12 MiB (auth.DefaultParams), and
// without a limit a burst of sign-ins lets garbage pile up far beyond what the portal needs.
const memoryLimit = 48 << 20

// gcPercent is the collector's target growth between cycles (Go's default is 100).
const gcPercent = 200

// registryOrNil keeps a nil registry a nil interface, which turns metrics off.
func registryOrNil(r *prometheus.Registry) prometheus.Registerer {
	if r == nil {
		return nil
	}
	return r
}

// backupBeforeMigrating copies a database that this binary is about to migrate, so an
// upgrade can always be undone by putting the old binary and this copy back.
func backupBeforeMigrating(ctx context.Context, path string, log *slog.Logger) error {
	if db.IsPostgresURL(path) {
		// PostgreSQL migrates in one transaction: one that fails leaves the database as it
		// was, and backups of a server are the server's own business.
		return nil
	}
	current, target, err := db.PendingMigrations(ctx, path)
	if err != nil {
		return fmt.Errorf("cannot read database %s (--db): %w", path, err)
	}
	if current == 0 || current >= target {
		return nil
	}
	dest := fmt.Sprintf("%s.before-v%d-%s.bak", path, target, time.Now().UTC().Format("20060102T150405Z"))
	if err := db.BackupFile(ctx, path, dest); err != nil {
		return fmt.Errorf("cannot back up %s before migrating it: %w", path, err)
	}
	log.Info("database backed up before migrating", "backup", dest, "from_version", current, "to_version", target)
	return nil
}

// announceSetup prints the one-time first-admin link while no user exists. A new token is
// made at every start, so a link seen in an old log is useless.
func announceSetup(ctx context.Context, e env, store *db.DB, cfg Config) error {
	n, err := store.CountUsers(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		return store.ClearSetupToken(ctx)
	}
	token := auth.NewToken()
	if err := store.SetSetupToken(ctx, auth.HashToken(token), time.Now()); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "No users yet. Create the first administrator at:\n\n    %s/setup?token=%s\n\n"+
		"The link works once, and only until this server stops.\n", cfg.BaseURL.String(), token)
	return nil
}

// openKeys loads the key file and proves it is the one the database's secrets were sealed
// with. When create is set (serve) and neither a key nor anything sealed exists yet, it
// makes the key. A missing or wrong key is always refused: starting without it would
// make every enrolled user's second factor unusable. Without create (check, backup, key
// rotation), a key that serve would create is no error: exists is false and keys nil.
func openKeys(ctx context.Context, store *db.DB, path string, create bool) (keys *auth.Keyring, exists bool, err error) {
	canary, err := store.KeyCanary(ctx)
	hasCanary := err == nil
	if err != nil && !errors.Is(err, db.ErrNotFound) {
		return nil, false, err
	}
	keys, err = auth.LoadKey(path)
	switch {
	case errors.Is(err, auth.ErrKeyMissing):
		sealed, serr := store.HasSealedData(ctx)
		if serr != nil {
			return nil, false, serr
		}
		if hasCanary || sealed {
			return nil, false, fmt.Errorf("key file %s (--key-file) is missing; restore it from the backup next to the database backup", path)
		}
		if !create {
			return nil, false, nil // serve will create it
		}
		if keys, err = auth.CreateKey(path); err != nil {
			return nil, false, fmt.Errorf("cannot create key file %s (--key-file): %w", path, err)
		}
	case err != nil:
		return nil, false, fmt.Errorf("key file %s (--key-file) is unusable: %w", path, err)
	}
	if hasCanary {
		if err := keys.CheckCanary(canary); err != nil {
			if next, ok := recoverRotation(path, canary, create); ok {
				return next, true, nil
			}
			return nil, false, fmt.Errorf("key file %s (--key-file) is not the key this database was set up with", path)
		}
		return keys, true, nil
	}
	if create {
		c, err := keys.NewCanary()
		if err != nil {
			return nil, false, err
		}
		if err := store.SetKeyCanary(ctx, c); err != nil && !errors.Is(err, db.ErrDuplicate) {
			return nil, false, err
		}
	}
	return keys, true, nil
}

// mailKept is how long the outbox keeps a mail once it is sent, given up or expired: long
// enough to look into a complaint, short enough that the table stays small.
const mailKept = 30 * 24 * time.Hour

// purgeMailState forgets expired mail links, ended rate-limit windows and old outbox rows,
// and scrubs the links of mails that expired unsent. It runs with mail off too: a portal
// whose mail was switched off must not keep live links in its database either.
func purgeMailState(ctx context.Context, store *db.DB, now time.Time) error {
	_, err1 := store.ExpireMail(ctx, now)
	_, err2 := store.PurgeEmailTokens(ctx, now)
	_, err3 := store.PurgeRateLimits(ctx, now, 24*time.Hour)
	_, err4 := store.PurgeMail(ctx, now.Add(-mailKept))
	return errors.Join(err1, err2, err3, err4)
}

// watchChanges polls the store's change signal until stop is called (which waits for the
// poll to end, so the store can close after it): copies the portal keeps in memory then
// follow what other processes commit within a poll interval.
func watchChanges(ctx context.Context, store *db.DB, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		store.Changes().Watch(ctx, func(err error) {
			if err != nil {
				log.Error("watching the database for changes failed; copies in memory are read again at every poll meanwhile", "err", err)
				return
			}
			log.Info("watching the database for changes again")
		})
	}()
	return func() {
		cancel()
		<-done
	}
}

// housekeeping purges expired sessions and stale throttle entries now and then.
func housekeeping(ctx context.Context, store *db.DB, log *slog.Logger, cfg Config) {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		now := time.Now()
		n, err := store.PurgeExpiredSessions(ctx, now, db.SessionLimits{Idle: cfg.SessionIdle, Max: cfg.SessionMax,
			Partial: handlers.PartialSessionMax})
		if err != nil && ctx.Err() == nil {
			log.Error("purging sessions failed", "err", err)
		} else if n > 0 {
			log.Info("expired sessions purged", "count", n)
		}
		if _, err := store.PurgeThrottle(ctx, now); err != nil && ctx.Err() == nil {
			log.Error("purging throttle failed", "err", err)
		}
		if _, err := store.PurgeExpiredEnrollments(ctx, now); err != nil && ctx.Err() == nil {
			log.Error("purging enrollments failed", "err", err)
		}
		if err := purgeMailState(ctx, store, now); err != nil && ctx.Err() == nil {
			log.Error("purging mail links, limits or outbox failed", "err", err)
		}
		if _, err := store.PurgeExpiredPasskeyChallenges(ctx, now); err != nil && ctx.Err() == nil {
			log.Error("purging passkey ceremonies failed", "err", err)
		}
		ev := db.Event{At: now, Actor: "system", Kind: "audit.purged", Subject: "audit log", ClientAddr: "local", Outcome: db.Success}
		if n, err := store.PurgeAudit(ctx, now.Add(-cfg.AuditRetention), ev); err != nil && ctx.Err() == nil {
			log.Error("purging the audit log failed", "err", err)
		} else if n > 0 {
			log.Info("old audit rows purged", "count", n, "retention", cfg.AuditRetention.String())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
