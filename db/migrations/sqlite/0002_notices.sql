-- Named groups of users, for notice audiences and MFA rollout cohorts.
CREATE TABLE groups (
	id         INTEGER PRIMARY KEY,
	name       TEXT NOT NULL UNIQUE COLLATE NOCASE,
	created_at TEXT NOT NULL
);

CREATE TABLE group_members (
	group_id INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
	user_id  INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	PRIMARY KEY (group_id, user_id)
) WITHOUT ROWID;
CREATE INDEX group_members_user ON group_members (user_id, group_id);

-- version counts the edits readers must acknowledge again; revision counts every edit.
CREATE TABLE notices (
	id          INTEGER PRIMARY KEY,
	author_id   INTEGER REFERENCES users (id) ON DELETE SET NULL,
	author_name TEXT    NOT NULL,
	title       TEXT    NOT NULL,
	body        TEXT    NOT NULL,
	kind        TEXT    NOT NULL CHECK (kind IN ('normal', 'must_read')),
	severity    TEXT    NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
	starts_at   TEXT    NOT NULL,
	-- No end is stored as the far future, so "not ended" is one index range.
	ends_at     TEXT    NOT NULL,
	version     INTEGER NOT NULL DEFAULT 1,
	revision    INTEGER NOT NULL DEFAULT 1,
	archived_at TEXT,
	created_at  TEXT    NOT NULL,
	updated_at  TEXT    NOT NULL
);
-- The banner query reads only notices that are neither archived nor ended, however long
-- the history grows.
CREATE INDEX notices_live ON notices (ends_at, starts_at) WHERE archived_at IS NULL;

CREATE TABLE notice_audience (
	notice_id INTEGER NOT NULL REFERENCES notices (id) ON DELETE CASCADE,
	everyone  INTEGER NOT NULL DEFAULT 0 CHECK (everyone IN (0, 1)),
	role      TEXT CHECK (role IS NULL OR role IN ('staff', 'publisher', 'admin')),
	group_id  INTEGER REFERENCES groups (id) ON DELETE CASCADE,
	CHECK ((everyone = 1) + (role IS NOT NULL) + (group_id IS NOT NULL) = 1)
);
CREATE INDEX notice_audience_notice ON notice_audience (notice_id);
CREATE UNIQUE INDEX notice_audience_unique ON notice_audience (notice_id, everyone, COALESCE(role, ''), COALESCE(group_id, 0));

-- Every text a notice has had, so an acknowledgement can be traced to what was read.
CREATE TABLE notice_revisions (
	notice_id   INTEGER NOT NULL REFERENCES notices (id) ON DELETE CASCADE,
	revision    INTEGER NOT NULL,
	version     INTEGER NOT NULL,
	title       TEXT    NOT NULL,
	body        TEXT    NOT NULL,
	kind        TEXT    NOT NULL,
	severity    TEXT    NOT NULL,
	editor_id   INTEGER,
	editor_name TEXT    NOT NULL,
	minor       INTEGER NOT NULL DEFAULT 0,
	created_at  TEXT    NOT NULL,
	PRIMARY KEY (notice_id, revision)
) WITHOUT ROWID;

-- One row per acknowledgement and version: history is kept when a notice asks again.
CREATE TABLE notice_acks (
	notice_id       INTEGER NOT NULL REFERENCES notices (id) ON DELETE CASCADE,
	user_id         INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	version         INTEGER NOT NULL,
	acknowledged_at TEXT    NOT NULL,
	PRIMARY KEY (notice_id, user_id, version)
) WITHOUT ROWID;
CREATE INDEX notice_acks_user ON notice_acks (user_id, notice_id, version);

CREATE TABLE notice_dismissals (
	notice_id    INTEGER NOT NULL REFERENCES notices (id) ON DELETE CASCADE,
	user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	dismissed_at TEXT    NOT NULL,
	PRIMARY KEY (user_id, notice_id)
) WITHOUT ROWID;
