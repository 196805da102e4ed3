package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"gatehouse/auth"
	"gatehouse/db"
)

// cliEvent is the audit record of a command-line action: the actor is the operator at the
// machine, who has no account.
func cliEvent(kind, subject string) db.Event {
	return db.Event{At: time.Now(), Actor: "cli", Kind: kind, Subject: subject, ClientAddr: "local", Outcome: db.Success}
}

// openStore validates the settings and opens the store. Commands
// that change data use db.Open (creating and migrating, like serve); the others open only
// an existing file.
func openStore(ctx context.Context, s *settings, existing bool) (*db.DB, Config, error) {
	cfg, err := s.config()
	if err != nil {
		return nil, cfg, err
	}
	if !existing {
		store, err := createStore(ctx, cfg.DB)
		return store, cfg, err
	}
	store, err := db.OpenExisting(ctx, cfg.DB)
	if err != nil {
		return nil, cfg, fmt.Errorf("cannot open database %s: %w", db.Describe(cfg.DB), err)
	}
	return store, cfg, nil
}

// createStore opens the database at path, creating and migrating it. A missing directory
// is named as such: SQLite would only say "unable to open database file".
func createStore(ctx context.Context, path string) (*db.DB, error) {
	if db.IsPostgresURL(path) {
		store, err := db.Open(ctx, path)
		if err != nil {
			return nil, fmt.Errorf("cannot open database %s: %w", db.Describe(path), err)
		}
		return store, nil
	}
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("cannot open database %s: directory %s does not exist (--db)", path, dir)
	} else if err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("cannot open database %s: %s is not a directory (--db)", path, dir)
	}
	store, err := db.Open(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("cannot open database %s: %w", path, err)
	}
	return store, nil
}

// readPassword reads one line from r and strips only its line ending: spaces and every
// other character are part of the password.
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 64<<10)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the password from standard input: %w", err)
	}
	line = strings.TrimSuffix(line, "\n")
	line = strings.TrimSuffix(line, "\r")
	if line == "" {
		return "", errors.New("no password on standard input")
	}
	return line, nil
}

func hashNewPassword(ctx context.Context, password, username string) (string, error) {
	if err := refused("password", auth.CheckPassword(password, username)); err != nil {
		return "", err
	}
	return auth.NewHasher(auth.DefaultParams, 1).Hash(ctx, password)
}

// refused words the refusal of one of auth's rules for the command line, naming what was
// refused; the rules are the web's, so both refuse the same input with the same reason.
func refused(what string, err error) error {
	var pe *auth.PolicyError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s refused: %s", what, pe.Reason)
	}
	return err
}

func validUsername(u string) error {
	if u == "" {
		return usageError{"--username is required"}
	}
	return refused(fmt.Sprintf("username %q", u), auth.CheckUsername(u))
}

// newUserFromFlags checks the new account's flags before any password is asked for, and
// returns the account as it will be stored, audited and printed.
func newUserFromFlags(username, role, displayName string) (db.NewUser, error) {
	if err := validUsername(username); err != nil {
		return db.NewUser{}, err
	}
	if !db.ValidRole(role) {
		return db.NewUser{}, usageError{fmt.Sprintf("--role %q: want staff, publisher or admin", role)}
	}
	displayName = strings.TrimSpace(displayName)
	if err := refused("display name", auth.CheckDisplayName(displayName)); err != nil {
		return db.NewUser{}, err
	}
	return db.NewUser{Username: auth.NormalizeUsername(username), DisplayName: displayName, Role: role}, nil
}

// newPassword reads a new password from standard input or, failing that, the terminal.
func newPassword(e env, fromStdin bool) (string, error) {
	if fromStdin {
		return readPassword(e.stdin)
	}
	if prompt := terminalReader(e.ctx, e.stdin); prompt != nil {
		return promptPassword(e.stderr, prompt)
	}
	return "", usageError{"--password-stdin is required: pipe the password in, for example from a password manager"}
}

func cmdUserAdd(e env, args []string) error {
	fs := newFlags("user add")
	s := addConfigFlags(fs, e.getenv)
	username := fs.String("username", "", "the new user's sign-in name")
	role := fs.String("role", db.RoleStaff, "staff, publisher or admin")
	display := fs.String("display-name", "", "the name shown in the portal")
	email := fs.String("email", "", "the user's address, counted as confirmed (default: none)")
	stdin := fs.Bool("password-stdin", false, "read the password, one line, from standard input (default: ask at the terminal)")
	if _, err := parse(e, fs, args, "create a user", 0); err != nil {
		return err
	}
	nu, err := newUserFromFlags(*username, *role, *display)
	if err != nil {
		return err
	}
	if *email != "" {
		if nu.Email, err = auth.CheckEmail(*email); err != nil {
			return refused(fmt.Sprintf("--email %q", *email), err)
		}
	}
	password, err := newPassword(e, *stdin)
	if err != nil {
		return err
	}
	if nu.PasswordHash, err = hashNewPassword(e.ctx, password, nu.Username); err != nil {
		return err
	}
	store, _, err := openStore(e.ctx, s, false)
	if err != nil {
		return err
	}
	defer store.Close()
	ev := cliEvent("user.created", nu.Username)
	ev.Detail = "role " + nu.Role
	if nu.Email != "" {
		ev.Detail += "; address " + nu.Email
	}
	u, err := store.CreateUser(e.ctx, nu, ev)
	if errors.Is(err, db.ErrDuplicate) {
		return duplicateUser(e.ctx, store, *username)
	}
	if errors.Is(err, db.ErrEmailTaken) {
		return fmt.Errorf("address %q already belongs to another account", nu.Email)
	}
	if err != nil {
		return err
	}
	// The first-run link is pointless once an account exists.
	if err := store.ClearSetupToken(e.ctx); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "created user %s (%s)\n", u.Username, u.Role)
	return nil
}

// duplicateUser refuses a username that is taken, naming the existing account when it is
// spelt differently from what was typed.
func duplicateUser(ctx context.Context, store *db.DB, typed string) error {
	if existing, err := store.UserByUsername(ctx, typed); err == nil && existing.Username != typed {
		return fmt.Errorf("user %q already exists as %q (usernames match in any case, width or accent encoding)", typed, existing.Username)
	}
	return fmt.Errorf("user %q already exists", typed)
}

func cmdUserList(e env, args []string) error {
	fs := newFlags("user list")
	s := addConfigFlags(fs, e.getenv)
	asJSON := fs.Bool("json", false, "print a JSON array instead of a table")
	if _, err := parse(e, fs, args, "list users", 0); err != nil {
		return err
	}
	store, cfg, err := openStore(e.ctx, s, true)
	if err != nil {
		return err
	}
	defer store.Close()
	users, err := store.ListUsers(e.ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(e.stdout, usersJSON(users))
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USERNAME\tROLE\tMFA\tSTATUS\tLAST SIGN-IN\tDISPLAY NAME")
	for _, u := range users {
		mfa, status, last := "off", "active", "never"
		if u.HasMFA() {
			mfa = strings.Join(u.FactorKinds(), "+")
		}
		if u.Disabled {
			status = "disabled"
		}
		if !u.LastLoginAt.IsZero() {
			last = u.LastLoginAt.In(cfg.Location).Format("2006-01-02 15:04")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", u.Username, u.Role, mfa, status, last, u.DisplayName)
	}
	return tw.Flush()
}

// userCommand is the shape of the commands that act on one named user.
func userCommand(e env, args []string, name, summary string, extra func(fs flagSet) func() error,
	act func(store *db.DB, u db.User) (string, error)) error {
	fs := newFlags(name)
	s := addConfigFlags(fs, e.getenv)
	var pre func() error
	if extra != nil {
		pre = extra(fs)
	}
	rest, err := parse(e, fs, args, summary, 1)
	if err != nil {
		return err
	}
	if pre != nil {
		if err := pre(); err != nil {
			return err
		}
	}
	store, _, err := openStore(e.ctx, s, true)
	if err != nil {
		return err
	}
	defer store.Close()
	u, err := store.UserByUsername(e.ctx, rest[0])
	if errors.Is(err, db.ErrNotFound) {
		return fmt.Errorf("no user %q", rest[0])
	}
	if err != nil {
		return err
	}
	msg, err := act(store, u)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, msg)
	return nil
}

func cmdUserDisable(e env, args []string) error {
	return userCommand(e, args, "user disable", "disable U and end their sessions", nil, func(store *db.DB, u db.User) (string, error) {
		n, err := store.DisableUser(e.ctx, u.ID, cliEvent("user.disabled", u.Username))
		if errors.Is(err, db.ErrLastAdmin) {
			return "", fmt.Errorf("%s is the last active admin; make someone else an admin first", u.Username)
		}
		return fmt.Sprintf("disabled %s; %d sessions ended", u.Username, n), err
	})
}

func cmdUserEnable(e env, args []string) error {
	return userCommand(e, args, "user enable", "enable U", nil, func(store *db.DB, u db.User) (string, error) {
		_, err := store.SetDisabled(e.ctx, u.ID, false, cliEvent("user.enabled", u.Username))
		return "enabled " + u.Username, err
	})
}

func cmdUserSetPassword(e env, args []string) error {
	var fromStdin *bool
	var password string
	var prompt func() ([]byte, error)
	return userCommand(e, args, "user set-password", "set U's password (final, not temporary)",
		func(fs flagSet) func() error {
			fromStdin = fs.Bool("password-stdin", false, "read the password, one line, from standard input (default: ask at the terminal)")
			return func() error {
				if *fromStdin {
					var err error
					password, err = readPassword(e.stdin)
					return err
				}
				if prompt = terminalReader(e.ctx, e.stdin); prompt == nil {
					return usageError{"--password-stdin is required"}
				}
				return nil
			}
		},
		func(store *db.DB, u db.User) (string, error) {
			// Asked only once U is known to exist, so nobody types a password for a typo.
			if prompt != nil {
				var err error
				if password, err = promptPassword(e.stderr, prompt); err != nil {
					return "", err
				}
			}
			hash, err := hashNewPassword(e.ctx, password, u.Username)
			if err != nil {
				return "", err
			}
			ev := cliEvent("user.password_set", u.Username)
			ev.Detail = "all sessions ended"
			if err := store.SetPassword(e.ctx, u.ID, hash, false, -1, ev); err != nil {
				return "", err
			}
			return "password set for " + u.Username + "; their sessions ended", nil
		})
}

func cmdUserResetMFA(e env, args []string) error {
	return userCommand(e, args, "user reset-mfa", "remove U's second factors (authenticator app, passkeys) and recovery codes", nil, func(store *db.DB, u db.User) (string, error) {
		had, err := store.ResetMFA(e.ctx, u.ID, cliEvent("mfa.reset", u.Username))
		if err != nil {
			return "", err
		}
		if !had {
			return u.Username + " had no second factor; recovery codes and sessions cleared", nil
		}
		return "second factor removed for " + u.Username + "; they enroll again at next sign-in", nil
	})
}

func cmdUserUnlock(e env, args []string) error {
	return userCommand(e, args, "user unlock", "clear U's sign-in throttle", nil, func(store *db.DB, u db.User) (string, error) {
		had, err := store.ClearThrottle(e.ctx, auth.UsernameKey(u.Username), cliEvent("user.unlocked", u.Username))
		if err != nil {
			return "", err
		}
		if !had {
			return u.Username + " was not throttled", nil
		}
		return "unlocked " + u.Username, nil
	})
}

func cmdSessionsRevoke(e env, args []string) error {
	fs := newFlags("sessions revoke")
	s := addConfigFlags(fs, e.getenv)
	username := fs.String("user", "", "end every session of this user")
	all := fs.Bool("all", false, "end every session of every user")
	if _, err := parse(e, fs, args, "end sessions; accounts, passwords and MFA are untouched", 0); err != nil {
		return err
	}
	if (*username == "") == !*all {
		return usageError{"give exactly one of --user U or --all"}
	}
	store, _, err := openStore(e.ctx, s, true)
	if err != nil {
		return err
	}
	defer store.Close()
	if *all {
		n, err := store.RevokeAllSessions(e.ctx, cliEvent("sessions.revoked_all", "everyone"))
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "ended %d sessions; accounts, passwords and MFA are untouched\n", n)
		return nil
	}
	u, err := store.UserByUsername(e.ctx, *username)
	if errors.Is(err, db.ErrNotFound) {
		return fmt.Errorf("no user %q", *username)
	}
	if err != nil {
		return err
	}
	n, err := store.RevokeSessions(e.ctx, u.ID, 0, cliEvent("sessions.revoked", u.Username))
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "ended %d sessions of %s\n", n, u.Username)
	return nil
}

func cmdUserDelete(e env, args []string) error {
	return userCommand(e, args, "user delete", "delete U with their sessions, factor and receipts (audit rows keep the name)", nil,
		func(store *db.DB, u db.User) (string, error) {
			err := store.DeleteUser(e.ctx, u.ID, cliEvent("user.deleted", u.Username))
			if errors.Is(err, db.ErrLastAdmin) {
				return "", fmt.Errorf("%s is the last active admin; make someone else an admin first", u.Username)
			}
			return "deleted " + u.Username, err
		})
}
