-- Two-step verification rules per role or per group. The strictest rule that applies to a
-- user wins; a required rule takes effect at its deadline (a past deadline: at once).
CREATE TABLE mfa_rules (
	id         INTEGER PRIMARY KEY,
	role       TEXT CHECK (role IS NULL OR role IN ('staff', 'publisher', 'admin')),
	group_id   INTEGER REFERENCES groups (id) ON DELETE CASCADE,
	mode       TEXT NOT NULL CHECK (mode IN ('off', 'optional', 'required')),
	deadline   TEXT,
	updated_at TEXT NOT NULL,
	updated_by TEXT NOT NULL,
	CHECK ((role IS NULL) != (group_id IS NULL)),
	CHECK ((mode = 'required') = (deadline IS NOT NULL))
);
CREATE UNIQUE INDEX mfa_rules_role ON mfa_rules (role) WHERE role IS NOT NULL;
CREATE UNIQUE INDEX mfa_rules_group ON mfa_rules (group_id) WHERE group_id IS NOT NULL;

-- Portal-wide switches, such as the MFA enforcement pause.
CREATE TABLE settings (
	key        TEXT PRIMARY KEY,
	value      TEXT NOT NULL,
	updated_at TEXT NOT NULL
);
