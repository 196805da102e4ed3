-- Hourly counts of security events that leave no audit row of their own (stale cookies
-- cleared, CSRF refusals, server errors), for the admin health panel.
CREATE TABLE event_counts (
	kind TEXT    NOT NULL,
	hour TEXT    NOT NULL,
	n    INTEGER NOT NULL,
	PRIMARY KEY (kind, hour)
) WITHOUT ROWID;
