package db

// storeTable is one table of the schema with every column it has after the last migration.
type storeTable struct {
	name    string
	columns []string
}

// storeTables lists every table that holds data, parents before the tables whose foreign
// keys point at them, so rows can be inserted in this order. A migration that adds a table
// or a column adds it here too: copying a store reads these columns and no others, and
// TestStoreTablesMatchSchema fails until the list matches the migrated schema.
// The bookkeeping tables are left out: each store records its own migrations and its own
// change revision.
var storeTables = []storeTable{
	{"users", []string{"id", "username", "display_name", "role", "password_hash", "must_change_password",
		"disabled", "created_at", "updated_at", "last_login_at", "must_enroll_mfa", "username_key", "email", "email_key"}},
	{"groups", []string{"id", "name", "created_at"}},
	{"group_members", []string{"group_id", "user_id"}},
	{"sessions", []string{"id", "token_hash", "user_id", "stage", "created_at", "last_seen_at",
		"client_addr", "user_agent", "cookie_scope"}},
	{"login_throttle", []string{"username", "failures", "last_failure", "locked_until"}},
	{"mfa_factors", []string{"user_id", "secret_enc", "last_step", "created_at"}},
	{"mfa_pending", []string{"user_id", "session_id", "secret_enc", "created_at", "expires_at"}},
	{"recovery_codes", []string{"id", "user_id", "code_hash", "used_at"}},
	{"passkeys", []string{"id", "user_id", "credential_id", "public_key", "sign_count", "flags", "transports",
		"aaguid", "attestation_format", "name", "created_at", "last_used_at"}},
	{"passkey_handles", []string{"user_id", "handle"}},
	{"passkey_challenges", []string{"challenge_hash", "purpose", "user_id", "session_id", "browser_hash",
		"state", "created_at", "expires_at"}},
	{"key_canary", []string{"id", "value"}},
	{"setup_token", []string{"id", "token_hash", "created_at"}},
	{"settings", []string{"key", "value", "updated_at"}},
	{"mfa_rules", []string{"id", "role", "group_id", "mode", "deadline", "updated_at", "updated_by"}},
	{"notices", []string{"id", "author_id", "author_name", "title", "body", "kind", "severity", "starts_at",
		"ends_at", "version", "revision", "archived_at", "created_at", "updated_at", "email", "remind",
		"due_at", "renew_every", "mailed_at"}},
	{"notice_audience", []string{"notice_id", "everyone", "role", "group_id"}},
	{"notice_revisions", []string{"notice_id", "revision", "version", "title", "body", "kind", "severity",
		"editor_id", "editor_name", "minor", "created_at"}},
	{"notice_acks", []string{"notice_id", "user_id", "version", "acknowledged_at", "expires_at"}},
	{"notice_dismissals", []string{"notice_id", "user_id", "dismissed_at"}},
	{"email_tokens", []string{"token_hash", "purpose", "user_id", "email", "created_at", "expires_at"}},
	{"outbox", []string{"id", "reason", "kind", "user_id", "notice_id", "to_addr", "subject", "text_body",
		"html_body", "unsubscribe", "secret", "state", "attempts", "next_attempt_at", "claimed_until", "claim",
		"expires_at", "last_error", "answer", "created_at", "sent_at", "updated_at"}},
	{"rate_limits", []string{"key", "window_start", "hits"}},
	{"event_counts", []string{"kind", "hour", "n"}},
	{"apps", []string{"id", "host", "require_mfa", "must_read_first", "created_at", "updated_at"}},
	{"app_audience", []string{"app_id", "everyone", "role", "group_id"}},
	{"audit_log", []string{"id", "at", "actor_id", "actor", "event", "subject", "client_addr", "outcome",
		"detail", "request_id"}},
}

// bookkeepingTables are the tables of a store's own bookkeeping, which are not copied.
var bookkeepingTables = []string{"schema_migrations", "change_revision"}
