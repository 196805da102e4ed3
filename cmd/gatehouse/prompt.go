package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"
)

// terminalReader returns a reader of one line typed without echo when r is a terminal, and
// nil otherwise: a pipe or file must say so with --password-stdin, so a script never hangs
// on a prompt nobody sees.
func terminalReader(ctx context.Context, r io.Reader) func() ([]byte, error) {
	f, ok := r.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	fd := int(f.Fd())
	return func() ([]byte, error) {
		state, err := term.GetState(fd)
		if err != nil {
			return nil, err
		}
		type result struct {
			b   []byte
			err error
		}
		done := make(chan result, 1)
		go func() {
			b, err := term.ReadPassword(fd)
			done <- result{b, err}
		}()
		select {
		case r := <-done:
			return r.b, r.err
		case <-ctx.Done():
			// Ctrl-C only cancels the context, and the read would go on blocking: give the
			// terminal its echo back before leaving.
			_ = term.Restore(fd, state)
			return nil, errors.New("interrupted")
		}
	}
}

// promptPassword asks for the password twice on w, reading each with read, so a typo
// cannot set a password nobody knows. Like --password-stdin, it keeps every character.
func promptPassword(w io.Writer, read func() ([]byte, error)) (string, error) {
	first, err := askPassword(w, "Password: ", read)
	if err != nil {
		return "", err
	}
	if first == "" {
		return "", errors.New("no password entered; nothing changed")
	}
	again, err := askPassword(w, "Again: ", read)
	if err != nil {
		return "", err
	}
	if again != first {
		return "", errors.New("the two passwords differ; nothing changed")
	}
	return first, nil
}

func askPassword(w io.Writer, prompt string, read func() ([]byte, error)) (string, error) {
	fmt.Fprint(w, prompt)
	b, err := read()
	fmt.Fprintln(w) // the Enter key was not echoed either
	if err != nil {
		return "", fmt.Errorf("reading the password from the terminal: %w", err)
	}
	return string(b), nil
}
