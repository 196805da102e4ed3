-- Usernames are matched by key: NFKC, then full Unicode case folding (auth.UsernameKey), so
-- ＡＭＹ, AMY and amy, or Émile and émile, are one account. SQL cannot compute the key: the Go
-- step of this migration (keyUsernames, db/usernames.go) fills username_key for every user,
-- refuses names that would collide, re-keys login_throttle (whose username column holds keys
-- from now on) and then creates the unique index users_username_key.
ALTER TABLE users ADD COLUMN username_key TEXT;

-- The column cannot be NOT NULL when added to existing rows; these keep it set from now on.
CREATE FUNCTION users_username_key_required() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'users.username_key must be set';
END
$$;

CREATE TRIGGER users_username_key_insert BEFORE INSERT ON users
	FOR EACH ROW WHEN (NEW.username_key IS NULL OR NEW.username_key = '')
	EXECUTE FUNCTION users_username_key_required();

CREATE TRIGGER users_username_key_update BEFORE UPDATE OF username_key ON users
	FOR EACH ROW WHEN (NEW.username_key IS NULL OR NEW.username_key = '')
	EXECUTE FUNCTION users_username_key_required();
