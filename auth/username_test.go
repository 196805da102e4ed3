package auth

import (
	"strings"
	"testing"
)

// Names that look or read the same must be one account: otherwise ＡＭＹ, Amy and amy are three
// accounts, and a decomposed é escapes the throttle of the precomposed one.
func TestUsernameVariantsShareOneKey(t *testing.T) {
	same := [][]string{
		{"amy", "AMY", "Amy", "ａｍｙ", "ＡＭＹ"},
		{"Émile", "émile", "ÉMILE", "e\u0301mile", "E\u0301MILE", "ｅ\u0301ｍｉｌｅ"},
		{"straße", "STRASSE", "strasse"},
		{"kelvin", "\u212Aelvin"}, // KELVIN SIGN
		{"ﬁona", "fiona"},         // the fi ligature is two letters
		{"amy@example.com", "AMY＠EXAMPLE．COM"},
	}
	for _, group := range same {
		want := UsernameKey(group[0])
		for _, u := range group[1:] {
			if got := UsernameKey(u); got != want {
				t.Errorf("UsernameKey(%q) = %q, want %q, the key of %q", u, got, want, group[0])
			}
		}
	}
	if got := UsernameKey("ÉMILE"); got != "émile" {
		t.Errorf("UsernameKey(ÉMILE) = %q, want the lower-case NFC émile", got)
	}
	different := [][2]string{
		{"amy", "\u0430my"}, // Cyrillic а is another letter, refused at creation but never the same key
		{"emile", "émile"},
		{"amy", "amy2"},
	}
	for _, d := range different {
		if UsernameKey(d[0]) == UsernameKey(d[1]) {
			t.Errorf("%q and %q have the same key %q", d[0], d[1], UsernameKey(d[0]))
		}
	}
	// A key is its own key, so keying a stored key (the throttle table holds keys) is harmless.
	for _, u := range []string{"ÉMILE", "STRASSE", "ｅ\u0301ｍｉｌｅ", "İstanbul", "ΣΊΣΥΦΟΣ", "ﬃ", "ǅemal"} {
		if k := UsernameKey(u); UsernameKey(k) != k {
			t.Errorf("UsernameKey(UsernameKey(%q)) = %q, want %q", u, UsernameKey(k), k)
		}
	}
}

func TestNormalizeUsernameKeepsCaseAndMakesWidthPlain(t *testing.T) {
	cases := map[string]string{
		"ａｍｙ":         "amy",
		"Ａｍｙ":         "Amy",
		"E\u0301mile": "Émile", // composed, case kept
		"émile":       "émile",
		"Amy":         "Amy",
	}
	for in, want := range cases {
		if got := NormalizeUsername(in); got != want {
			t.Errorf("NormalizeUsername(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCheckUsernameRefusesMixedScriptLookAlikes(t *testing.T) {
	accepted := []string{
		"amy", "amy.o-neil_2", "amy@example.com",
		"ａｍｙ", // fullwidth: checked, and stored, as amy
		"Émile", "émile", "e\u0301mile",
		"иван", "Ελένη", // one script each, not Latin
		"田中さくら", "タナカ", "ラーメン", "김민준", "王小明", // Han with kana, katakana with the Common ー, Hangul, Han
		"علي٣", // Arabic letters with an Arabic-Indic digit
		"ivan2026",
	}
	for _, u := range accepted {
		if err := CheckUsername(u); err != nil {
			t.Errorf("CheckUsername(%q) = %v, want accepted", u, err)
		}
	}
	refused := []struct {
		name, username, reason string
	}{
		{"Cyrillic а among Latin letters", "\u0430my", "Cyrillic and Latin"},
		{"a Cyrillic а inside a Latin name", "iv\u0430n", "Latin and Cyrillic"},
		{"a Greek omicron in a Latin name", "b\u03BFb", "Latin and Greek"},
		{"Latin beside Japanese", "tanaka田中", "one script"},
		{"an Arabic-Indic digit in a Latin name", "amy٣", "one script"},
		{"empty", "", "Enter a username"},
		{"a space", "amy smith", "letters, digits"},
		{"a fullwidth space", "amy\u3000smith", "letters, digits"},
		{"a combining mark with nothing to compose with", "q\u0301", "letters, digits"},
		{"a ligature that normalises past the limit", strings.Repeat("\uFB00", 33), "at most 64"},
		{"invalid UTF-8", "amy\xff", "could not be read"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			reason := policyReason(t, CheckUsername(tt.username))
			if reason == "" {
				t.Fatalf("CheckUsername(%q) accepted it", tt.username)
			}
			if !strings.Contains(reason, tt.reason) {
				t.Errorf("reason %q does not contain %q", reason, tt.reason)
			}
		})
	}
	if CheckUsername(strings.Repeat("ａ", MaxUsernameLen)) != nil {
		t.Error("64 fullwidth letters, 64 letters once normalised, were refused")
	}
}

func TestPasswordThatIsTheUsernameInAnotherWidthIsRefused(t *testing.T) {
	reason := policyReason(t, CheckPassword("ＥＭＩＬＥ．ＤＵＰＯＮＴ", "emile.dupont"))
	if reason == "" || !strings.Contains(reason, "username") {
		t.Errorf("reason %q, want the username refusal", reason)
	}
}
