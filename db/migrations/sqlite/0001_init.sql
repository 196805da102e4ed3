-- Times are TEXT in UTC, fixed-width RFC 3339 with milliseconds ("2026-01-02T15:04:05.000Z"),
-- so they sort and compare as strings and read unambiguously in a database shell.

CREATE TABLE users (
	id                   INTEGER PRIMARY KEY,
	username             TEXT    NOT NULL UNIQUE COLLATE NOCASE,
	display_name         TEXT    NOT NULL DEFAULT '',
	role                 TEXT    NOT NULL CHECK (role IN ('staff', 'publisher', 'admin')),
	password_hash        TEXT    NOT NULL,
	must_change_password INTEGER NOT NULL DEFAULT 0 CHECK (must_change_password IN (0, 1)),
	disabled             INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
	created_at           TEXT    NOT NULL,
	updated_at           TEXT    NOT NULL,
	last_login_at        TEXT
);

-- A session row is the whole of a sign-in: deleting rows here is all that revoking does.
-- stage 'mfa' is the partial session between the password and the second step.
CREATE TABLE sessions (
	id           INTEGER PRIMARY KEY,
	token_hash   BLOB    NOT NULL UNIQUE,
	user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	stage        TEXT    NOT NULL CHECK (stage IN ('mfa', 'full')),
	created_at   TEXT    NOT NULL,
	last_seen_at TEXT    NOT NULL,
	client_addr  TEXT    NOT NULL DEFAULT '',
	user_agent   TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user ON sessions (user_id);

-- Sign-in throttle per account name (existing or not, so refusals reveal nothing).
CREATE TABLE login_throttle (
	username     TEXT    PRIMARY KEY COLLATE NOCASE,
	failures     INTEGER NOT NULL,
	last_failure TEXT    NOT NULL,
	locked_until TEXT
);

-- One active TOTP factor per user. The secret is AES-GCM ciphertext bound to the user id;
-- last_step is the newest accepted time step, so a code is never accepted twice.
CREATE TABLE mfa_factors (
	user_id    INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
	secret_enc BLOB    NOT NULL,
	last_step  INTEGER NOT NULL DEFAULT 0,
	created_at TEXT    NOT NULL
);

-- An enrollment in progress, owned by one user and the session that started it.
CREATE TABLE mfa_pending (
	user_id    INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
	-- Not a foreign key: ending sessions must touch no other table. A pending row whose
	-- session is gone can never be confirmed and expires on its own.
	session_id INTEGER NOT NULL,
	secret_enc BLOB    NOT NULL,
	created_at TEXT    NOT NULL,
	expires_at TEXT    NOT NULL
);

CREATE TABLE recovery_codes (
	id        INTEGER PRIMARY KEY,
	user_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	code_hash TEXT    NOT NULL,
	used_at   TEXT
);
CREATE INDEX recovery_codes_user ON recovery_codes (user_id);

-- Known plaintext sealed with the key file, so a wrong key is caught at start-up.
CREATE TABLE key_canary (
	id    INTEGER PRIMARY KEY CHECK (id = 1),
	value BLOB    NOT NULL
);

-- The one-time first-admin token, stored hashed; it exists only while no user does.
CREATE TABLE setup_token (
	id         INTEGER PRIMARY KEY CHECK (id = 1),
	token_hash BLOB    NOT NULL,
	created_at TEXT    NOT NULL
);

-- Append-only: actor_id is not a foreign key so rows outlive the accounts they name.
CREATE TABLE audit_log (
	id          INTEGER PRIMARY KEY,
	at          TEXT    NOT NULL,
	actor_id    INTEGER,
	actor       TEXT    NOT NULL DEFAULT '',
	event       TEXT    NOT NULL,
	subject     TEXT    NOT NULL DEFAULT '',
	client_addr TEXT    NOT NULL DEFAULT '',
	outcome     TEXT    NOT NULL CHECK (outcome IN ('success', 'failure')),
	detail      TEXT    NOT NULL DEFAULT '',
	request_id  TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_event ON audit_log (event, at);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
	SELECT RAISE(ABORT, 'audit_log is append-only');
END;
