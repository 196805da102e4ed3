-- Reaching people by mail: addresses, the outbox, single-use links, notice reminders, due
-- dates and renewal, and a rate limit shared by every process on the database.

-- An optional address per user. email_key is the address lower-cased whole, so one address
-- belongs to one account whatever its case.
ALTER TABLE users ADD COLUMN email TEXT;
ALTER TABLE users ADD COLUMN email_key TEXT;
CREATE UNIQUE INDEX users_email_key ON users (email_key);

-- email: also mail the notice to its audience when it starts (mailed_at records that it
-- was). remind: must-read reminders at this interval. due_at: readers who have not
-- acknowledged by then are overdue. renew_every: seconds after which an acknowledgement
-- expires (0: never).
ALTER TABLE notices ADD COLUMN email INTEGER NOT NULL DEFAULT 0 CHECK (email IN (0, 1));
ALTER TABLE notices ADD COLUMN remind TEXT NOT NULL DEFAULT 'none' CHECK (remind IN ('none', 'daily', 'weekly'));
ALTER TABLE notices ADD COLUMN due_at TEXT;
ALTER TABLE notices ADD COLUMN renew_every INTEGER NOT NULL DEFAULT 0 CHECK (renew_every >= 0);
ALTER TABLE notices ADD COLUMN mailed_at TEXT;

-- When an acknowledgement stops counting: acknowledged_at plus the notice's renew_every,
-- or never. Every acknowledgement made before renewal existed stands for good.
ALTER TABLE notice_acks ADD COLUMN expires_at TEXT NOT NULL DEFAULT '9999-12-31T23:59:59.999Z';

-- Single-use links sent by mail: a password reset, or the confirmation of a new address
-- (email holds that address). Only the SHA-256 of the token is stored.
CREATE TABLE email_tokens (
	token_hash BLOB    PRIMARY KEY,
	purpose    TEXT    NOT NULL CHECK (purpose IN ('reset', 'confirm')),
	user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	email      TEXT    NOT NULL DEFAULT '',
	created_at TEXT    NOT NULL,
	expires_at TEXT    NOT NULL
);
CREATE INDEX email_tokens_user ON email_tokens (user_id, purpose);

-- Every mail, written in the transaction of the change that causes it. reason is unique,
-- so one reason never enqueues twice. A sender claims a row by setting claimed_until and
-- claim (compare-and-set) before sending it. secret = 1 marks a body holding a live
-- single-use link: it is replaced once delivered or once expires_at passes.
CREATE TABLE outbox (
	id              INTEGER PRIMARY KEY,
	reason          TEXT    NOT NULL UNIQUE,
	kind            TEXT    NOT NULL,
	user_id         INTEGER REFERENCES users (id) ON DELETE CASCADE,
	notice_id       INTEGER REFERENCES notices (id) ON DELETE CASCADE,
	to_addr         TEXT    NOT NULL,
	subject         TEXT    NOT NULL,
	text_body       TEXT    NOT NULL,
	html_body       TEXT    NOT NULL,
	unsubscribe     TEXT    NOT NULL DEFAULT '',
	secret          INTEGER NOT NULL DEFAULT 0 CHECK (secret IN (0, 1)),
	state           TEXT    NOT NULL DEFAULT 'pending'
		CHECK (state IN ('pending', 'sent', 'failed', 'expired', 'cancelled')),
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_attempt_at TEXT    NOT NULL,
	claimed_until   TEXT,
	claim           TEXT    NOT NULL DEFAULT '',
	expires_at      TEXT,
	last_error      TEXT    NOT NULL DEFAULT '',
	answer          TEXT    NOT NULL DEFAULT '',
	created_at      TEXT    NOT NULL,
	sent_at         TEXT,
	updated_at      TEXT    NOT NULL
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
CREATE INDEX outbox_notice_user ON outbox (notice_id, user_id);
CREATE INDEX outbox_user ON outbox (user_id);

-- Fixed-window counters (password-reset requests per account and per client address), in
-- the database so that every process on it counts together.
CREATE TABLE rate_limits (
	key          TEXT    PRIMARY KEY,
	window_start TEXT    NOT NULL,
	hits         INTEGER NOT NULL
);
