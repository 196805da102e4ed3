package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"gatehouse/auth"
)

// lockKeyFile takes an advisory lock on the key file: serve holds a shared one while it
// runs, and key rotation needs an exclusive one, so the key is never swapped under a
// running server that would go on sealing secrets with the old key.
func lockKeyFile(path string, exclusive bool) (release func(), err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	if err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// cmdKeyRotate re-encrypts every TOTP secret under a new key in one transaction and keeps
// the old key file as a dated backup.
//
// Order matters for a crash at any point: the new key is written beside the old one first;
// the database switches in one commit; only then is the new file renamed into place. If the
// process dies between the commit and the rename, serve finds the new key beside the old
// one and finishes the swap (see openKeys).
func cmdKeyRotate(e env, args []string) error {
	fs := newFlags("key rotate")
	s := addConfigFlags(fs, e.getenv)
	if _, err := parse(e, fs, args, "re-encrypt every TOTP secret under a new key; stop serve first", 0); err != nil {
		return err
	}
	store, cfg, err := openStore(e.ctx, s, true)
	if err != nil {
		return err
	}
	defer store.Close()
	old, exists, err := openKeys(e.ctx, store, cfg.KeyFile, false)
	if err != nil {
		return err
	}
	if !exists {
		return fmt.Errorf("key file %s (--key-file) does not exist yet; serve creates it on first start", cfg.KeyFile)
	}
	release, err := lockKeyFile(cfg.KeyFile, true)
	if err != nil {
		return fmt.Errorf("key file %s is in use by a running serve; stop it, rotate, then start it again", cfg.KeyFile)
	}
	defer release()

	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return err
	}
	fresh, err := auth.NewKeyring(raw)
	if err != nil {
		return err
	}
	pending := rotatingKeyPath(cfg.KeyFile)
	_ = os.Remove(pending) // a leftover from a rotation that never reached its commit
	if err := fresh.WriteKeyFile(pending); err != nil {
		return fmt.Errorf("writing the new key: %w", err)
	}
	canary, err := fresh.NewCanary()
	if err != nil {
		return err
	}
	ev := cliEvent("key.rotated", cfg.KeyFile)
	n, err := store.ResealSecrets(e.ctx, func(sealed, aad []byte) ([]byte, error) {
		plain, err := old.Open(sealed, aad)
		if err != nil {
			return nil, err
		}
		return fresh.Seal(plain, aad)
	}, auth.TOTPSecretAAD, canary, ev)
	if err != nil {
		_ = os.Remove(pending)
		return fmt.Errorf("nothing changed: %w", err)
	}
	backup := cfg.KeyFile + "." + time.Now().UTC().Format("20060102T150405Z") + ".old"
	if err := finishRotation(cfg.KeyFile, backup); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "rotated: %d secrets re-encrypted; new key in %s, old key kept as %s\n", n, cfg.KeyFile, backup)
	return nil
}

func rotatingKeyPath(keyFile string) string { return keyFile + ".rotating" }

// finishRotation keeps the old key as backup and puts the new one in its place.
func finishRotation(keyFile, backup string) error {
	if err := os.Link(keyFile, backup); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("keeping the old key as %s: %w", backup, err)
	}
	if err := os.Rename(rotatingKeyPath(keyFile), keyFile); err != nil {
		return fmt.Errorf("putting the new key in place (it is in %s): %w", rotatingKeyPath(keyFile), err)
	}
	// The backup is a second name for the old key file, so it kept that file's mode, which
	// may have let others read it. A key is owner-only. Best effort: the swap is done, and a
	// failure here must not stop serve from finishing an interrupted rotation.
	_ = os.Chmod(backup, 0o600)
	return nil
}

// recoverRotation finishes a rotation interrupted after its commit: if the key file does
// not open the canary but the new key beside it does, the new key takes its place. With
// finish unset (check) it only reports that serve would do so.
func recoverRotation(keyFile string, canary []byte, finish bool) (*auth.Keyring, bool) {
	next, err := auth.LoadKey(rotatingKeyPath(keyFile))
	if err != nil || next.CheckCanary(canary) != nil {
		return nil, false
	}
	if !finish {
		return next, true
	}
	backup := keyFile + "." + time.Now().UTC().Format("20060102T150405Z") + ".old"
	if finishRotation(keyFile, backup) != nil {
		return nil, false
	}
	return next, true
}
