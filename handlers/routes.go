package handlers

import (
	"strings"

	"github.com/labstack/echo/v4"

	"gatehouse/db"
	"gatehouse/static"
)

// New builds the portal: middleware and the whole route table.
//
// Guards are attached per route rather than to echo groups: a group's middleware also
// runs for unknown paths under it, which would turn a 404 into a redirect to sign in.
func New(cfg Config, deps Deps) *echo.Echo {
	h := &Handler{
		cfg:     cfg,
		db:      deps.DB,
		log:     deps.Log,
		hasher:  deps.Hasher,
		keys:    deps.Keys,
		now:     deps.Now,
		csrfKey: deps.Keys.Derive("csrf-token"),
		addrs:   newAddrLimiter(addrMaxEntries, addrFailLimit, addrFailWindow),
		mail:    deps.Mail,
	}
	h.live = &liveNotices{db: deps.DB}
	h.exact = newExactCaches(deps.DB)
	h.fixedHeaders = newSecurityHeaders(cfg.Secure())
	h.passkeys = relyingParty(cfg, deps.Log)
	h.metrics = newMetrics(deps.Metrics, deps.DB, deps.Now)
	h.counts = newCounters(deps.DB, deps.Log, deps.Now)
	h.counts.metrics = h.metrics
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = h.handleError
	e.IPExtractor = clientAddr(cfg.TrustedProxies)

	e.Use(assignRequestID, h.securityHeaders, h.accessLog, h.recoverPanic, parseForm,
		skipFor(keepsOutOfPortalState, h.loadSession), skipFor(keepsOutOfPortalState, h.csrf()))

	e.GET("/healthz", h.healthz)
	e.GET("/readyz", h.readyz)
	e.StaticFS("/static", static.FS)
	e.GET("/auth/verify", h.authVerify)

	e.GET("/setup", h.setupForm)
	e.POST("/setup", h.setupSubmit)
	e.GET("/login", h.loginForm)
	e.POST("/login", h.loginSubmit)
	e.POST("/logout", h.logout)
	e.GET("/login/forgot", h.forgotForm)
	e.POST("/login/forgot", h.forgotSubmit)
	e.GET("/login/reset", h.resetForm)
	e.POST("/login/reset", h.resetSubmit)
	e.GET("/account/email/confirm", h.emailConfirmForm)
	e.POST("/account/email/confirm", h.emailConfirm)
	e.GET("/login/mfa", h.loginMFAForm)
	e.POST("/login/mfa", h.loginMFASubmit)
	e.POST("/login/passkey/options", h.passkeySignInOptions)
	e.POST("/login/passkey", h.passkeySignIn)
	e.POST("/login/mfa/passkey/options", h.passkeySecondStepOptions)
	e.POST("/login/mfa/passkey", h.passkeySecondStep)

	full := h.requireFull
	passwordStep, mfaStep := h.requireStep(stepPassword), h.requireStep(stepMFA)
	e.GET("/", h.dashboard, full)
	e.GET("/account", h.accountShow, full)
	e.GET("/account/password", h.passwordEdit, passwordStep)
	e.POST("/account/password", h.passwordUpdate, passwordStep)
	e.GET("/account/mfa", h.mfaShow, mfaStep)
	e.POST("/account/mfa", h.mfaConfirm, mfaStep)
	e.POST("/account/mfa/restart", h.mfaRestart, mfaStep)
	e.POST("/account/mfa/recovery-codes", h.mfaRecoveryCodes, full)
	e.POST("/account/mfa/replace", h.mfaReplace, full)
	e.POST("/account/mfa/disable", h.mfaDisable, full)
	e.GET("/account/email", h.accountEmailShow, full)
	e.POST("/account/email", h.accountEmailUpdate, full)
	e.POST("/account/email/remove", h.accountEmailRemove, full)
	e.GET("/account/passkeys", h.passkeysIndex, mfaStep)
	e.POST("/account/passkeys/options", h.passkeyRegisterOptions, mfaStep)
	e.POST("/account/passkeys", h.passkeyRegister, mfaStep)
	e.POST("/account/passkeys/:id/rename", h.passkeyRename, full)
	e.POST("/account/passkeys/:id/remove", h.passkeyRemove, full)
	e.GET("/account/sessions", h.sessionsIndex, full)
	e.POST("/account/sessions/revoke-others", h.sessionsRevokeOthers, full)
	e.POST("/account/sessions/:id/revoke", h.sessionRevoke, full)

	e.GET("/notices", h.noticesIndex, full)
	e.GET("/notices/:id", h.noticeShow, full)
	e.POST("/notices/:id/ack", h.noticeAck, full)
	e.POST("/notices/:id/dismiss", h.noticeDismiss, full)

	publisher := requireCapability(db.User.CanPublish)
	e.GET("/admin/notices", h.adminNoticesIndex, full, publisher)
	e.POST("/admin/notices", h.adminNoticesCreate, full, publisher)
	e.GET("/admin/notices/:id", h.adminNoticeShow, full, publisher)
	e.GET("/admin/notices/:id/edit", h.adminNoticeEdit, full, publisher)
	e.POST("/admin/notices/:id", h.adminNoticeUpdate, full, publisher)
	e.POST("/admin/notices/:id/archive", h.adminNoticeArchive, full, publisher)
	e.GET("/admin/notices/:id/receipts.csv", h.adminNoticeReceiptsCSV, full, publisher)

	admin := requireCapability(db.User.IsAdmin)
	e.GET("/admin", h.adminHome, full, admin)
	e.GET("/admin/sessions", h.adminSessions, full, admin)
	e.POST("/admin/sessions/revoke-all", h.adminSessionsRevokeAll, full, admin)
	e.GET("/admin/audit", h.adminAudit, full, admin)
	e.GET("/admin/audit.csv", h.adminAuditCSV, full, admin)

	e.GET("/admin/users", h.adminUsersIndex, full, admin)
	e.GET("/admin/users/new", h.adminUserNew, full, admin)
	e.POST("/admin/users", h.adminUserCreate, full, admin)
	e.GET("/admin/users/:id", h.adminUserShow, full, admin)
	e.POST("/admin/users/:id/disable", h.adminUserDisable, full, admin)
	e.POST("/admin/users/:id/enable", h.adminUserEnable, full, admin)
	e.POST("/admin/users/:id/unlock", h.adminUserUnlock, full, admin)
	e.POST("/admin/users/:id/revoke-sessions", h.adminUserRevokeSessions, full, admin)
	e.POST("/admin/users/:id/reset-mfa", h.adminUserResetMFA, full, admin)
	e.POST("/admin/users/:id/role", h.adminUserRole, full, admin)
	e.POST("/admin/users/:id/email", h.adminUserEmail, full, admin)
	e.POST("/admin/users/:id/temporary-password", h.adminUserTemporaryPassword, full, admin)
	e.POST("/admin/users/:id/sessions/:sid/revoke", h.adminUserSessionRevoke, full, admin)
	e.GET("/admin/users/:id/delete", h.adminUserDeleteForm, full, admin)
	e.POST("/admin/users/:id/delete", h.adminUserDelete, full, admin)

	e.GET("/admin/mfa-policy", h.mfaPolicyShow, full, admin)
	e.POST("/admin/mfa-policy", h.mfaPolicyUpdate, full, admin)
	e.POST("/admin/mfa-policy/pause", h.mfaPolicyPause, full, admin)
	e.POST("/admin/mfa-policy/resume", h.mfaPolicyResume, full, admin)

	e.GET("/admin/groups", h.adminGroupsIndex, full, admin)
	e.POST("/admin/groups", h.adminGroupsCreate, full, admin)
	e.GET("/admin/groups/:id", h.adminGroupShow, full, admin)
	e.POST("/admin/groups/:id/members", h.adminGroupAddMember, full, admin)
	e.POST("/admin/groups/:id/members/:uid/remove", h.adminGroupRemoveMember, full, admin)
	e.GET("/admin/groups/:id/reset-mfa", h.adminGroupResetForm, full, admin)
	e.POST("/admin/groups/:id/reset-mfa", h.adminGroupReset, full, admin)
	e.POST("/admin/groups/:id/delete", h.adminGroupDelete, full, admin)

	e.GET("/admin/apps", h.adminAppsIndex, full, admin)
	e.POST("/admin/apps", h.adminAppsCreate, full, admin)
	e.GET("/admin/apps/:id", h.adminAppEdit, full, admin)
	e.POST("/admin/apps/:id", h.adminAppUpdate, full, admin)
	e.POST("/admin/apps/:id/delete", h.adminAppDelete, full, admin)
	h.metrics.knowRoutes(e.Routes())
	return e
}

// infraPath marks requests that need neither a session nor CSRF state: probes and assets.
func infraPath(c echo.Context) bool {
	p := c.Request().URL.Path
	return p == "/healthz" || p == "/readyz" || strings.HasPrefix(p, "/static/")
}

// keepsOutOfPortalState marks requests that the portal's own session and CSRF state
// middleware leave alone: infraPath's, and the forward-auth check, which reads the session
// of the app's browser itself and sets none of the portal's cookies.
func keepsOutOfPortalState(c echo.Context) bool {
	return infraPath(c) || c.Request().URL.Path == "/auth/verify"
}

func skipFor(skip func(echo.Context) bool, mw echo.MiddlewareFunc) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		wrapped := mw(next)
		return func(c echo.Context) error {
			if skip(c) {
				return next(c)
			}
			return wrapped(c)
		}
	}
}
