package main

import (
	"io/fs"
	"os"
	"slices"
	"strings"

	"gatehouse/db"
)

// exposure is the one rule for the files that hold secrets (the database with its -wal and
// -shm, which hold password and recovery-code hashes and the audit log, and the key file):
// nobody but their owner may read or write them. It says how a mode breaks the rule, or "".
func exposure(mode fs.FileMode) string {
	readable, writable := mode.Perm()&0o044 != 0, mode.Perm()&0o022 != 0
	switch {
	case readable && writable:
		return "readable and writable by other users"
	case readable:
		return "readable by other users"
	case writable:
		return "writable by other users"
	}
	return ""
}

// openFiles are files that break the exposure rule in the same way.
type openFiles struct {
	paths []string
	how   string
}

// problem names the files and what is wrong with them.
func (o openFiles) problem() string {
	verb := " is "
	if len(o.paths) > 1 {
		verb = " are "
	}
	return strings.Join(o.paths, ", ") + verb + o.how
}

// fix is the command that puts them right.
func (o openFiles) fix() string { return "chmod 600 " + strings.Join(o.paths, " ") }

// filesOthersCanOpen checks the database, its -wal and -shm, and the key file of cfg. A
// file that does not exist is skipped: the -wal and -shm come and go with open connections,
// and a missing database or key is reported where it is opened. The database's files are
// reported together, so one chmod fixes them.
func filesOthersCanOpen(cfg Config) []openFiles {
	var out []openFiles
	groups := [][]string{{cfg.DB, cfg.DB + "-wal", cfg.DB + "-shm"}, {cfg.KeyFile}}
	if db.IsPostgresURL(cfg.DB) {
		groups = groups[1:] // the server keeps the data
	}
	for _, group := range groups {
		var byHow []openFiles
		for _, path := range group {
			fi, err := os.Stat(path)
			if err != nil {
				continue
			}
			how := exposure(fi.Mode())
			if how == "" {
				continue
			}
			i := slices.IndexFunc(byHow, func(o openFiles) bool { return o.how == how })
			if i < 0 {
				byHow, i = append(byHow, openFiles{how: how}), len(byHow)
			}
			byHow[i].paths = append(byHow[i].paths, path)
		}
		out = append(out, byHow...)
	}
	return out
}
