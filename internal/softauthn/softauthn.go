// Package softauthn is a WebAuthn authenticator in software, for tests: each credential is a
// P-256 key; registrations answer with an attestation object of format "none" and sign-ins
// with an assertion signed the way a security key signs one. It reads the options the
// portal sends the browser and writes the JSON the portal's script would post back.
package softauthn

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/fxamacker/cbor/v2"
)

// Authenticator flags of the authenticator data.
const (
	FlagUserPresent  = 0x01
	FlagUserVerified = 0x04
	FlagAttested     = 0x40
)

// Authenticator holds credentials for relying parties and answers ceremonies for them.
type Authenticator struct {
	// Origin is what the client data says the page was; a test may set another.
	Origin string
	// VerifiesUser sets the UV flag on every answer (a PIN or biometric was checked).
	VerifiesUser bool
	// Counts makes the sign counter go up with each assertion; off, it stays 0, as with
	// many platform authenticators.
	Counts      bool
	Credentials []*Credential
}

// Credential is one key the authenticator holds.
type Credential struct {
	ID         []byte
	Key        *ecdsa.PrivateKey
	RPID       string
	UserHandle []byte
	// SignCount is the counter the next assertion starts from; a test may set it back.
	SignCount uint32
}

// New is an authenticator that verifies its user and counts, for pages at origin.
func New(origin string) *Authenticator {
	return &Authenticator{Origin: origin, VerifiesUser: true, Counts: true}
}

type creationOptions struct {
	PublicKey struct {
		Challenge string `json:"challenge"`
		RP        struct {
			ID string `json:"id"`
		} `json:"rp"`
		User struct {
			ID string `json:"id"`
		} `json:"user"`
		Exclude []descriptor `json:"excludeCredentials"`
	} `json:"publicKey"`
}

type requestOptions struct {
	PublicKey struct {
		Challenge string       `json:"challenge"`
		RPID      string       `json:"rpId"`
		Allow     []descriptor `json:"allowCredentials"`
	} `json:"publicKey"`
}

type descriptor struct {
	ID string `json:"id"`
}

var b64 = base64.RawURLEncoding

// ErrExcluded is a registration for a credential the options exclude: the authenticator
// already holds one for this account, and a browser would refuse.
var ErrExcluded = errors.New("softauthn: this authenticator is already registered")

// Register creates a credential for the options of a registration ceremony and returns it
// with the JSON answer the browser would post.
func (a *Authenticator) Register(options []byte) (*Credential, []byte, error) {
	var o creationOptions
	if err := json.Unmarshal(options, &o); err != nil {
		return nil, nil, fmt.Errorf("softauthn: creation options: %w", err)
	}
	handle, err := b64.DecodeString(o.PublicKey.User.ID)
	if err != nil {
		return nil, nil, fmt.Errorf("softauthn: user id: %w", err)
	}
	for _, ex := range o.PublicKey.Exclude {
		for _, c := range a.Credentials {
			if b64.EncodeToString(c.ID) == ex.ID {
				return nil, nil, ErrExcluded
			}
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	id := make([]byte, 32)
	_, _ = rand.Read(id)
	c := &Credential{ID: id, Key: key, RPID: o.PublicKey.RP.ID, UserHandle: handle}
	body, err := a.RegistrationAnswer(c, o.PublicKey.Challenge)
	if err != nil {
		return nil, nil, err
	}
	a.Credentials = append(a.Credentials, c)
	return c, body, nil
}

// RegistrationAnswer is the JSON answer registering c for challenge, without keeping c.
func (a *Authenticator) RegistrationAnswer(c *Credential, challenge string) ([]byte, error) {
	cose, err := cbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1,
		-2: c.Key.PublicKey.X.FillBytes(make([]byte, 32)), -3: c.Key.PublicKey.Y.FillBytes(make([]byte, 32))})
	if err != nil {
		return nil, err
	}
	auth := a.authData(c.RPID, FlagAttested, c.SignCount)
	auth = append(auth, make([]byte, 16)...) // AAGUID: none
	auth = binary.BigEndian.AppendUint16(auth, uint16(len(c.ID)))
	auth = append(auth, c.ID...)
	auth = append(auth, cose...)
	att, err := cbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": auth})
	if err != nil {
		return nil, err
	}
	client := a.clientData("webauthn.create", challenge)
	return json.Marshal(map[string]any{
		"id": b64.EncodeToString(c.ID), "rawId": b64.EncodeToString(c.ID), "type": "public-key",
		"authenticatorAttachment": "platform", "clientExtensionResults": map[string]any{},
		"response": map[string]any{"clientDataJSON": b64.EncodeToString(client),
			"attestationObject": b64.EncodeToString(att), "transports": []string{"internal"}},
	})
}

// SignIn answers a sign-in ceremony with the first credential it allows, or, when it
// allows any (a discoverable sign-in), the first credential for its relying party.
func (a *Authenticator) SignIn(options []byte) ([]byte, error) {
	var o requestOptions
	if err := json.Unmarshal(options, &o); err != nil {
		return nil, fmt.Errorf("softauthn: request options: %w", err)
	}
	for _, c := range a.Credentials {
		if c.RPID != o.PublicKey.RPID {
			continue
		}
		if len(o.PublicKey.Allow) == 0 || slices.ContainsFunc(o.PublicKey.Allow, func(d descriptor) bool {
			return d.ID == b64.EncodeToString(c.ID)
		}) {
			return a.Assert(c, o.PublicKey.Challenge), nil
		}
	}
	return nil, errors.New("softauthn: no credential for these options")
}

// Challenge reads the challenge out of a ceremony's options.
func Challenge(options []byte) string {
	var o requestOptions
	_ = json.Unmarshal(options, &o)
	return o.PublicKey.Challenge
}

// Assert is the JSON answer signing challenge with c, whatever the options allowed; the
// counter moves on first when the authenticator counts.
func (a *Authenticator) Assert(c *Credential, challenge string) []byte {
	if a.Counts {
		c.SignCount++
	}
	auth := a.authData(c.RPID, 0, c.SignCount)
	client := a.clientData("webauthn.get", challenge)
	sum := sha256.Sum256(client)
	digest := sha256.Sum256(append(slices.Clone(auth), sum[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, c.Key, digest[:])
	if err != nil {
		panic(err)
	}
	body, _ := json.Marshal(map[string]any{
		"id": b64.EncodeToString(c.ID), "rawId": b64.EncodeToString(c.ID), "type": "public-key",
		"authenticatorAttachment": "platform", "clientExtensionResults": map[string]any{},
		"response": map[string]any{"clientDataJSON": b64.EncodeToString(client),
			"authenticatorData": b64.EncodeToString(auth), "signature": b64.EncodeToString(sig),
			"userHandle": b64.EncodeToString(c.UserHandle)},
	})
	return body
}

func (a *Authenticator) authData(rpID string, flags byte, count uint32) []byte {
	flags |= FlagUserPresent
	if a.VerifiesUser {
		flags |= FlagUserVerified
	}
	h := sha256.Sum256([]byte(rpID))
	out := append(h[:], flags)
	return binary.BigEndian.AppendUint32(out, count)
}

func (a *Authenticator) clientData(kind, challenge string) []byte {
	b, _ := json.Marshal(map[string]any{"type": kind, "challenge": challenge, "origin": a.Origin, "crossOrigin": false})
	return b
}
