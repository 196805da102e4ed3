package auth

import (
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"

	"gatehouse/internal/softauthn"
)

const testOrigin = "http://localhost:8080"

func testRP(t *testing.T) *RelyingParty {
	t.Helper()
	base, _ := url.Parse(testOrigin)
	rp, err := NewRelyingParty(base)
	if err != nil {
		t.Fatal(err)
	}
	return rp
}

// registered runs a whole registration of a new passkey for o on key, and returns o holding it.
func registered(t *testing.T, rp *RelyingParty, key *softauthn.Authenticator, o PasskeyOwner) PasskeyOwner {
	t.Helper()
	c, err := rp.BeginRegistration(o)
	if err != nil {
		t.Fatal(err)
	}
	_, body, err := key.Register(c.Options)
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseRegistration(body)
	if err != nil {
		t.Fatal(err)
	}
	if string(r.ChallengeKey()) != string(c.Key) {
		t.Fatal("the answer does not name its ceremony")
	}
	cred, err := rp.FinishRegistration(o, c.State, r)
	if err != nil {
		t.Fatalf("FinishRegistration: %v", err)
	}
	o.Credentials = append(o.Credentials, cred)
	return o
}

func signIn(t *testing.T, rp *RelyingParty, key *softauthn.Authenticator, o PasskeyOwner, discoverable bool) (PasskeyUse, error) {
	t.Helper()
	begin := func() (Ceremony, error) { return rp.BeginSecondStep(o) }
	if discoverable {
		begin = rp.BeginSignIn
	}
	c, err := begin()
	if err != nil {
		t.Fatal(err)
	}
	body, err := key.SignIn(c.Options)
	if err != nil {
		t.Fatal(err)
	}
	a, err := ParseAssertion(body)
	if err != nil {
		t.Fatal(err)
	}
	return rp.FinishSignIn(o, c.State, a)
}

func TestPasskeyCeremonies(t *testing.T) {
	rp := testRP(t)
	key := softauthn.New(testOrigin)
	alice := registered(t, rp, key, PasskeyOwner{Handle: []byte("handle-of-alice-0123456789abcdef"), Name: "alice"})
	cred := alice.Credentials[0]
	if len(cred.ID) == 0 || len(cred.PublicKey) == 0 || cred.AttestationFormat != "none" {
		t.Fatalf("stored credential %+v", cred)
	}

	t.Run("the options ask for no attestation, a discoverable key and excluded known ones", func(t *testing.T) {
		c, err := rp.BeginRegistration(alice)
		if err != nil {
			t.Fatal(err)
		}
		var o struct {
			PublicKey struct {
				Attestation string `json:"attestation"`
				Selection   struct {
					ResidentKey      string `json:"residentKey"`
					UserVerification string `json:"userVerification"`
				} `json:"authenticatorSelection"`
				RP struct {
					ID string `json:"id"`
				} `json:"rp"`
				Exclude []json.RawMessage `json:"excludeCredentials"`
			} `json:"publicKey"`
		}
		if err := json.Unmarshal(c.Options, &o); err != nil {
			t.Fatal(err)
		}
		pk := o.PublicKey
		if pk.Attestation != "none" || pk.Selection.ResidentKey != "preferred" || pk.Selection.UserVerification != "preferred" ||
			pk.RP.ID != "localhost" || len(pk.Exclude) != 1 {
			t.Fatalf("options %s", c.Options)
		}
		if _, _, err := key.Register(c.Options); !errors.Is(err, softauthn.ErrExcluded) {
			t.Fatalf("the same authenticator registered twice: %v", err)
		}
	})
	t.Run("the second step accepts the account's passkey", func(t *testing.T) {
		use, err := signIn(t, rp, key, alice, false)
		if err != nil || string(use.CredentialID) != string(cred.ID) || use.SignCount != 1 {
			t.Fatalf("use %+v, %v", use, err)
		}
		alice.Credentials[0].SignCount = use.SignCount
	})
	t.Run("a discoverable sign-in needs and gets user verification", func(t *testing.T) {
		use, err := signIn(t, rp, key, alice, true)
		if err != nil || !use.UserVerified {
			t.Fatalf("use %+v, %v", use, err)
		}
		alice.Credentials[0].SignCount = use.SignCount
		key.VerifiesUser = false
		defer func() { key.VerifiesUser = true }()
		if _, err := signIn(t, rp, key, alice, true); !errors.Is(err, ErrPasskeyRefused) {
			t.Fatalf("a sign-in without user verification: %v", err)
		}
	})
	t.Run("a counter that goes back is a clone warning", func(t *testing.T) {
		alice.Credentials[0].SignCount = 50
		if _, err := signIn(t, rp, key, alice, false); !errors.Is(err, ErrPasskeyCloned) {
			t.Fatalf("counter regression: %v", err)
		}
	})
	t.Run("a counter that stays 0 is accepted", func(t *testing.T) {
		quiet := softauthn.New(testOrigin)
		quiet.Counts = false
		bob := registered(t, rp, quiet, PasskeyOwner{Handle: []byte("handle-of-bob-0123456789abcdefgh"), Name: "bob"})
		for range 2 {
			if use, err := signIn(t, rp, quiet, bob, true); err != nil || use.SignCount != 0 {
				t.Fatalf("use %+v, %v", use, err)
			}
		}
	})
	t.Run("another account's credential is refused", func(t *testing.T) {
		mallory := registered(t, rp, softauthn.New(testOrigin), PasskeyOwner{Handle: []byte("handle-of-mallory-0123456789abcd"), Name: "mallory"})
		// Alice's authenticator answers a second step begun for mallory.
		c, _ := rp.BeginSecondStep(mallory)
		body := key.Assert(key.Credentials[0], softauthn.Challenge(c.Options))
		a, err := ParseAssertion(body)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rp.FinishSignIn(mallory, c.State, a); !errors.Is(err, ErrPasskeyRefused) {
			t.Fatalf("alice's credential passed for mallory: %v", err)
		}
		// A discoverable sign-in presented as mallory's with alice's credential.
		c, _ = rp.BeginSignIn()
		a, _ = ParseAssertion(key.Assert(key.Credentials[0], softauthn.Challenge(c.Options)))
		if _, err := rp.FinishSignIn(mallory, c.State, a); !errors.Is(err, ErrPasskeyRefused) {
			t.Fatalf("alice's credential signed in as mallory: %v", err)
		}
		// A second step begun for alice cannot be finished as mallory.
		c, _ = rp.BeginSecondStep(alice)
		a, _ = ParseAssertion(key.Assert(key.Credentials[0], softauthn.Challenge(c.Options)))
		if _, err := rp.FinishSignIn(mallory, c.State, a); !errors.Is(err, ErrPasskeyRefused) {
			t.Fatalf("a ceremony for alice finished for mallory: %v", err)
		}
	})
	t.Run("an answer from another origin or for another challenge is refused", func(t *testing.T) {
		phish := softauthn.New("http://localhost.evil.example")
		phish.Credentials = key.Credentials
		c, _ := rp.BeginSignIn()
		a, _ := ParseAssertion(phish.Assert(key.Credentials[0], softauthn.Challenge(c.Options)))
		if _, err := rp.FinishSignIn(alice, c.State, a); !errors.Is(err, ErrPasskeyRefused) {
			t.Fatalf("another origin: %v", err)
		}
		other, _ := rp.BeginSignIn()
		a, _ = ParseAssertion(key.Assert(key.Credentials[0], softauthn.Challenge(c.Options)))
		if _, err := rp.FinishSignIn(alice, other.State, a); !errors.Is(err, ErrPasskeyRefused) {
			t.Fatalf("another ceremony's challenge: %v", err)
		}
	})
	t.Run("a tampered signature is refused", func(t *testing.T) {
		c, _ := rp.BeginSignIn()
		body := key.Assert(key.Credentials[0], softauthn.Challenge(c.Options))
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		resp := m["response"].(map[string]any)
		sig := []byte(resp["signature"].(string))
		sig[10] ^= 1
		resp["signature"] = string(sig)
		body, _ = json.Marshal(m)
		a, err := ParseAssertion(body)
		if err == nil {
			_, err = rp.FinishSignIn(alice, c.State, a)
		}
		if !errors.Is(err, ErrPasskeyRefused) {
			t.Fatalf("a tampered signature: %v", err)
		}
	})
}

func TestMalformedPasskeyAnswersAreRefused(t *testing.T) {
	for _, body := range []string{"", "{", "[]", `{"id":"x"}`, `{"id":"AAAA","rawId":"AAAA","type":"public-key"}`,
		`{"id":"AAAA","rawId":"AAAA","type":"public-key","response":{"clientDataJSON":"e30","authenticatorData":"AAAA","signature":"AA"}}`,
		strings.Repeat(`{"a":`, 1000)} {
		if _, err := ParseAssertion([]byte(body)); !errors.Is(err, ErrPasskeyRefused) {
			t.Errorf("assertion %.40q: %v", body, err)
		}
		if _, err := ParseRegistration([]byte(body)); !errors.Is(err, ErrPasskeyRefused) {
			t.Errorf("registration %.40q: %v", body, err)
		}
	}
}

func TestPasskeysNeedAHostName(t *testing.T) {
	for _, raw := range []string{"http://127.0.0.1:8080", "https://[::1]", "http://192.0.2.7"} {
		base, _ := url.Parse(raw)
		if _, err := NewRelyingParty(base); !errors.Is(err, ErrPasskeysNeedHostName) {
			t.Errorf("%s: %v", raw, err)
		}
	}
	base, _ := url.Parse("https://Portal.Example.com")
	rp, err := NewRelyingParty(base)
	if err != nil || rp.ID() != "portal.example.com" {
		t.Fatalf("rp %v, %v", rp, err)
	}
}
