package auth

import (
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func policyReason(tb testing.TB, err error) string {
	tb.Helper()
	if err == nil {
		return ""
	}
	var pe *PolicyError
	if !errors.As(err, &pe) {
		tb.Fatalf("error %v is not a *PolicyError", err)
	}
	return pe.Reason
}

func TestCheckPassword(t *testing.T) {
	cases := []struct {
		name     string
		password string
		username string
		ok       bool
		reason   string // substring of the reason when refused
	}{
		{"an 11-character password is too short", "abcdefghijk", "alice", false, "at least 12"},
		{"an empty password is too short", "", "alice", false, "at least 12"},
		{"a 12-character password is accepted", "mzq7 fjw ktr", "alice", true, ""},
		{"a 1024-character password is accepted", strings.Repeat("x", 1024), "alice", true, ""},
		{"a 1025-character password is refused", strings.Repeat("x", 1025), "alice", false, "at most 1024"},
		{"length counts characters, not bytes", strings.Repeat("ж", 12), "alice", true, ""},
		{"11 emoji are too short even though they are 44 bytes", strings.Repeat("🔑", 11), "alice", false, "at least 12"},
		{"12 emoji are accepted", strings.Repeat("🔑", 12), "alice", true, ""},
		{"1024 multibyte characters are accepted", strings.Repeat("密", 1024), "alice", true, ""},
		{"1025 multibyte characters are refused", strings.Repeat("密", 1025), "alice", false, "at most 1024"},
		{"a passphrase with spaces is accepted", "correct horse battery staple", "alice", true, ""},
		{"only lowercase letters is accepted", "glimmeringtoadstool", "alice", true, ""},
		{"passwordpassword is refused as common", "passwordpassword", "alice", false, "commonly used"},
		{"a common password in capitals is refused", "PasswordPassword", "alice", false, "commonly used"},
		{"a common password padded with spaces is refused", "   password   ", "alice", false, "commonly used"},
		{"a long common password from the source list is refused", "1qaz2wsx3edc", "alice", false, "commonly used"},
		{"a local addition is refused", "qwertyuiopas", "alice", false, "commonly used"},
		{"invalid UTF-8 is refused", "abcdefghijk\xff", "alice", false, "could not be read"},
		{"a lone surrogate encoding is refused", "abcdefghijkl\xed\xa0\x80", "alice", false, "could not be read"},
		{"the username is refused", "alice.wonderland", "alice.wonderland", false, "username"},
		{"the username in other case is refused", "Alice.Wonderland", "alice.wonderland", false, "username"},
		{"the username padded with spaces is refused", "  alice.wonderland  ", "alice.wonderland", false, "username"},
		{"a password containing the username is accepted", "alice.wonderland rabbit", "alice.wonderland", true, ""},
		{"an empty username refuses nothing extra", "unrelated phrase here", "", true, ""},
		{"the site name padded to length is refused", "   GateHouse   ", "alice", false, "name of this site"},
		{"a phrase containing the site name is accepted", "gatehouse of the north wind", "alice", true, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckPassword(tc.password, tc.username)
			if tc.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			reason := policyReason(t, err)
			if reason == "" {
				t.Fatal("accepted")
			}
			if !strings.Contains(reason, tc.reason) {
				t.Errorf("reason %q does not mention %q", reason, tc.reason)
			}
		})
	}
}

func TestPolicyError(t *testing.T) {
	t.Run("reasons are plain sentences", func(t *testing.T) {
		inputs := [][2]string{
			{"short", ""}, {strings.Repeat("x", 2000), ""}, {"passwordpassword", ""},
			{"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7\xf6\xf5\xf4", ""},
			{"bob.the.builder", "bob.the.builder"}, {"  gatehouse  ", ""},
		}
		for _, in := range inputs {
			reason := policyReason(t, CheckPassword(in[0], in[1]))
			first, _ := utf8.DecodeRuneInString(reason)
			if !unicode.IsUpper(first) || !strings.HasSuffix(reason, ".") {
				t.Errorf("reason %q is not a sentence", reason)
			}
		}
	})

	t.Run("the error string is prefixed and carries the reason", func(t *testing.T) {
		err := CheckPassword("short", "")
		if !strings.HasPrefix(err.Error(), "auth: ") || !strings.Contains(err.Error(), "Use at least 12 characters.") {
			t.Errorf("error = %q", err)
		}
	})
}

func TestCommonPasswords(t *testing.T) {
	t.Run("the list file is lowercased, deduplicated and large enough", func(t *testing.T) {
		seen := map[string]bool{}
		long := 0
		for line := range strings.Lines(commonPasswordsFile) {
			line = strings.TrimSuffix(line, "\n")
			if strings.HasPrefix(line, "#") {
				continue
			}
			if line == "" || strings.TrimSpace(line) != line {
				t.Fatalf("blank or padded entry %q", line)
			}
			if strings.ToLower(line) != line {
				t.Errorf("entry %q is not lowercase", line)
			}
			if seen[line] {
				t.Errorf("entry %q appears twice", line)
			}
			seen[line] = true
			if utf8.RuneCountInString(line) >= MinPasswordLen {
				long++
			}
		}
		if len(seen) < 10000 {
			t.Errorf("%d entries, want at least 10000", len(seen))
		}
		if long < 250 {
			t.Errorf("%d entries of 12+ characters, want the source's long entries", long)
		}
		if len(commonPasswords()) != len(seen) {
			t.Errorf("map has %d entries, file has %d", len(commonPasswords()), len(seen))
		}
	})

	t.Run("the header names the source, version and licence", func(t *testing.T) {
		for _, want := range []string{"@zxcvbn-ts/language-common", "4.1.3", "MIT", "Local additions"} {
			if !strings.Contains(commonPasswordsFile, want) {
				t.Errorf("list file does not mention %q", want)
			}
		}
	})

	t.Run("lookups ignore case and surrounding spaces", func(t *testing.T) {
		for _, p := range []string{"123456", "password", "PASSWORD", " Dragon ", "passwordpassword", "123456789012", "qwertyuiopas"} {
			if !IsCommonPassword(p) {
				t.Errorf("%q is not common", p)
			}
		}
		for _, p := range []string{"", "# comment", "glimmeringtoadstool", "pass word", "correct horse battery staple"} {
			if IsCommonPassword(p) {
				t.Errorf("%q is common", p)
			}
		}
	})
}

func TestCheckDisplayName(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		ok          bool
	}{
		{"empty is fine", "", true},
		{"a plain name is fine", "Alice Adams", true},
		{"any script is fine", "Zoë Ωmega 山田", true},
		{"100 characters are fine", strings.Repeat("é", 100), true},
		{"101 characters are too many", strings.Repeat("é", 101), false},
		{"a line feed is refused", "Alice\nAdams", false},
		{"a carriage return is refused", "Alice\rAdams", false},
		{"a tab is refused", "Alice\tAdams", false},
		{"a Unicode line separator is refused", "Alice\u2028Adams", false},
		{"a next-line character is refused", "Alice\u0085Adams", false},
		{"invalid UTF-8 is refused", "Alice\xffAdams", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckDisplayName(tc.value)
			var pe *PolicyError
			switch {
			case tc.ok && err != nil:
				t.Fatalf("refused: %v", err)
			case !tc.ok && !errors.As(err, &pe):
				t.Fatalf("err = %v, want a *PolicyError", err)
			case !tc.ok && pe.Reason != "Use at most 100 characters on one line.":
				t.Fatalf("reason %q", pe.Reason)
			}
		})
	}
}
