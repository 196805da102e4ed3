// Command gatehouse is the staff portal: the server and the commands that run beside it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	// Every file this binary writes holds secrets (the database with its -wal and -shm,
	// backups, key files), and each is already created 0600. The umask is the second line:
	// a file made by a path that forgot, here or inside SQLite, stays owner-only too. It is
	// set here and not in run, which tests call in their own process.
	syscall.Umask(0o077)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "gatehouse: "+oneLine(err.Error()))
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// oneLine keeps the failure a single line whatever a wrapped error contained.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

var errUsage = errors.New("usage")

type usageError struct{ msg string }

func (e usageError) Error() string   { return e.msg + " (see gatehouse --help)" }
func (e usageError) Is(t error) bool { return t == errUsage }

// env is what every command gets: streams, environment, and the context.
type env struct {
	ctx    context.Context
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

type command struct {
	name    string
	summary string
	run     func(e env, args []string) error
}

func commands() []command {
	return []command{
		{"serve", "migrate the database, then serve the portal", cmdServe},
		{"user add", "create a user: --username U --role staff|publisher|admin [--display-name N] [--email ADDR] [--password-stdin] (asks at a terminal without it)", cmdUserAdd},
		{"user list", "list users [--json]", cmdUserList},
		{"user disable", "disable U and end their sessions: user disable U", cmdUserDisable},
		{"user enable", "enable U again: user enable U", cmdUserEnable},
		{"user set-password", "set U's password: user set-password U [--password-stdin] (asks at a terminal without it)", cmdUserSetPassword},
		{"user reset-mfa", "remove U's second factors (authenticator app, passkeys) and recovery codes; U enrolls again at next sign-in", cmdUserResetMFA},
		{"user unlock", "clear U's sign-in throttle", cmdUserUnlock},
		{"user delete", "delete U with their sessions, factor and receipts: user delete U", cmdUserDelete},
		{"sessions revoke", "end sessions: sessions revoke --user U | --all", cmdSessionsRevoke},
		{"mfa pause", "suspend MFA enforcement at once, keeping every rule (the way out of a rollout gone wrong)", cmdMFAPause},
		{"mfa resume", "enforce the MFA rules again", cmdMFAResume},
		{"mfa status", "print the MFA rules and enrollment progress [--json]", cmdMFAStatus},
		{"notice post", "post a notice and print its id: notice post --as U --title T --body-file F --kind normal|must_read --severity info|warning|critical [--audience A]… [--starts-at T] [--ends-at T] [--email] [--remind R] [--due-at T] [--renew-every D]", cmdNoticePost},
		{"notice list", "list notices with their audience and acknowledgements [--json]", cmdNoticeList},
		{"notice archive", "take a notice off every page: notice archive --as U ID", cmdNoticeArchive},
		{"group add", "create a group: group add NAME", cmdGroupAdd},
		{"group list", "list groups [--json]", cmdGroupList},
		{"group members", "list a group's members: group members NAME", cmdGroupMembers},
		{"group add-member", "put U in a group: group add-member NAME U", cmdGroupAddMember},
		{"group remove-member", "take U out of a group: group remove-member NAME U", cmdGroupRemoveMember},
		{"key rotate", "re-encrypt every TOTP secret under a new key (stop serve first); the old key is kept as a dated backup", cmdKeyRotate},
		{"mail test", "send one mail now and print the server's answer: mail test --to ADDR", cmdMailTest},
		{"app add", "register HOST behind forward auth: app add [--audience A]… [--require-mfa] [--must-read-first] HOST", cmdAppAdd},
		{"app list", "list the apps behind forward auth [--json]", cmdAppList},
		{"app remove", "remove the app at HOST; requests to it are refused from then on: app remove HOST", cmdAppRemove},
		{"check", "validate config, key file and database without changing anything", cmdCheck},
		{"backup", "copy the live database to DEST and its key to DEST.key: backup DEST", cmdBackup},
		{"version", "print the version", cmdVersion},
	}
}

// run is main without the process: tests call it with their own arguments and streams.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	e := env{ctx: ctx, getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	rest := args[1:]
	if len(rest) == 0 || rest[0] == "--help" || rest[0] == "-h" || rest[0] == "help" {
		usage(stdout)
		if len(rest) == 0 {
			return usageError{"no command given"}
		}
		return flag.ErrHelp
	}
	// The longest command whose words start the arguments wins ("user add" over "user").
	var match *command
	words := 0
	for _, c := range commands() {
		cw := strings.Fields(c.name)
		if len(cw) <= len(rest) && strings.Join(rest[:len(cw)], " ") == c.name && len(cw) > words {
			c := c
			match, words = &c, len(cw)
		}
	}
	if match == nil {
		return usageError{fmt.Sprintf("unknown command %q", strings.Join(rest[:min(2, len(rest))], " "))}
	}
	return match.run(e, rest[words:])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: gatehouse <command> [flags] [args]")
	fmt.Fprintln(w, "\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-20s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun gatehouse <command> --help for the flags of a command.")
}

// newFlags makes a command's flag set; errors are returned, not printed twice.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parse parses flags and positional arguments, printing help on --help.
func parse(e env, fs *flag.FlagSet, args []string, summary string, positional int) ([]string, error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(e.stdout, "Usage: gatehouse %s [flags]\n  %s\n\nFlags:\n", fs.Name(), summary)
			fs.SetOutput(e.stdout)
			fs.PrintDefaults()
			return nil, flag.ErrHelp
		}
		return nil, usageError{fmt.Sprintf("%s: %v", fs.Name(), err)}
	}
	if fs.NArg() != positional {
		if positional == 0 {
			return nil, usageError{fmt.Sprintf("%s takes no arguments, got %q", fs.Name(), fs.Args())}
		}
		return nil, usageError{fmt.Sprintf("%s needs %d argument(s), got %d", fs.Name(), positional, fs.NArg())}
	}
	return fs.Args(), nil
}

func newLogger(w io.Writer, format string) *slog.Logger {
	if format == "" {
		format = "json"
		if f, ok := w.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				format = "text"
			}
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, nil))
	}
	return slog.New(slog.NewJSONHandler(w, nil))
}

func cmdVersion(e env, args []string) error {
	fs := newFlags("version")
	if _, err := parse(e, fs, args, "print the version", 0); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "gatehouse %s (schema %d)\n", version, schemaVersion())
	return nil
}
