-- Apps behind forward auth: the reverse proxy in front of each asks GET /auth/verify whether
-- a request may pass. host is what browsers send in Host, lower-case: a host name with an
-- optional port (db.ParseAppHost); a host without a row here is refused (fail closed).
CREATE TABLE apps (
	id              INTEGER PRIMARY KEY,
	host            TEXT    NOT NULL UNIQUE CHECK (host != '' AND host = lower(host)),
	require_mfa     INTEGER NOT NULL DEFAULT 0 CHECK (require_mfa IN (0, 1)),
	must_read_first INTEGER NOT NULL DEFAULT 0 CHECK (must_read_first IN (0, 1)),
	created_at      TEXT    NOT NULL,
	updated_at      TEXT    NOT NULL
);

-- Who may pass, in the shape of notice_audience and read by the same rule (db/audience.go).
-- A deleted group leaves the app to its other audiences, or to nobody: it fails closed.
CREATE TABLE app_audience (
	app_id   INTEGER NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
	everyone INTEGER NOT NULL DEFAULT 0 CHECK (everyone IN (0, 1)),
	role     TEXT CHECK (role IS NULL OR role IN ('staff', 'publisher', 'admin')),
	group_id INTEGER REFERENCES groups (id) ON DELETE CASCADE,
	CHECK ((everyone = 1) + (role IS NOT NULL) + (group_id IS NOT NULL) = 1)
);
CREATE INDEX app_audience_app ON app_audience (app_id);
CREATE INDEX app_audience_group ON app_audience (group_id);
CREATE UNIQUE INDEX app_audience_unique ON app_audience (app_id, everyone, COALESCE(role, ''), COALESCE(group_id, 0));

-- The scope the session's cookie was issued under: '' for a cookie of the portal's host
-- only, else the Domain it was set with (--cookie-domain). Over plain http the cookie has
-- one name in either scope, so only this tells a browser's cookie from before a change of
-- --cookie-domain from a current one. Every session before this column was host-only.
ALTER TABLE sessions ADD COLUMN cookie_scope TEXT NOT NULL DEFAULT '';
