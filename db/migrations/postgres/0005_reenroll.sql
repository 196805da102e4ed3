-- Set when an admin or the command line removes a user's factor: that user sets up a new
-- authenticator at their next sign-in, whatever the policy, so a reset is never a way to
-- drop two-step verification.
ALTER TABLE users ADD COLUMN must_enroll_mfa INTEGER NOT NULL DEFAULT 0 CHECK (must_enroll_mfa IN (0, 1));
