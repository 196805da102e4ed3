-- Passkeys: WebAuthn credentials, a second factor beside TOTP and a sign-in of their own.
-- credential_id is unique across every account, so one user's credential can never be
-- registered to, or used for, another. Public keys are not secrets and are stored as the
-- authenticator gave them. id is random (never reused), as the rows' forms name it.
CREATE TABLE passkeys (
	id                 INTEGER PRIMARY KEY,
	user_id            INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	credential_id      BLOB    NOT NULL UNIQUE,
	public_key         BLOB    NOT NULL,
	-- The newest sign counter accepted; an answer that does not move past it is refused.
	sign_count         INTEGER NOT NULL DEFAULT 0,
	-- The authenticator flags last seen: backup eligibility must never change.
	flags              INTEGER NOT NULL DEFAULT 0,
	transports         TEXT    NOT NULL DEFAULT '',
	aaguid             BLOB,
	attestation_format TEXT    NOT NULL DEFAULT '',
	name               TEXT    NOT NULL,
	created_at         TEXT    NOT NULL,
	last_used_at       TEXT
);
CREATE INDEX passkeys_user ON passkeys (user_id);

-- The WebAuthn user handle of an account: random bytes, so the handle an authenticator
-- keeps says nothing about the account and never names a later account with a reused id.
CREATE TABLE passkey_handles (
	user_id INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
	handle  BLOB    NOT NULL UNIQUE
);

-- Passkey ceremonies in progress, each used once and for five minutes. A ceremony is bound
-- to the browser that asked: to its session (session_id; not a foreign key, since ending
-- sessions must touch no other table) or, before sign-in, to the SHA-256 of a short-lived
-- cookie (browser_hash). challenge_hash is the SHA-256 of the challenge the browser signs.
CREATE TABLE passkey_challenges (
	challenge_hash BLOB    PRIMARY KEY,
	purpose        TEXT    NOT NULL CHECK (purpose IN ('register', 'second_step', 'sign_in')),
	user_id        INTEGER REFERENCES users (id) ON DELETE CASCADE,
	session_id     INTEGER,
	browser_hash   BLOB,
	state          BLOB    NOT NULL,
	created_at     TEXT    NOT NULL,
	expires_at     TEXT    NOT NULL,
	CHECK ((session_id IS NULL) != (browser_hash IS NULL))
);
CREATE INDEX passkey_challenges_expires ON passkey_challenges (expires_at);
