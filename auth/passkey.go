package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
)

// PasskeyChallengeTTL is how long a passkey ceremony may take, from the options the browser
// is given to the answer it sends back.
const PasskeyChallengeTTL = 5 * time.Minute

var (
	// ErrPasskeysNeedHostName means the base URL names an IP address: browsers accept only a
	// host name as a relying-party id, so passkeys are off.
	ErrPasskeysNeedHostName = errors.New("auth: passkeys need a host name in the base URL, not an IP address")
	// ErrPasskeyRefused is an answer that proves nothing: malformed, made for another
	// challenge, origin or relying party, badly signed, for a credential the account does
	// not hold, or without the user verification the ceremony asked for.
	ErrPasskeyRefused = errors.New("auth: passkey answer refused")
	// ErrPasskeyCloned is an answer whose sign counter did not move past the stored one: a
	// second copy of the key may be in use, so it is refused.
	ErrPasskeyCloned = errors.New("auth: passkey sign counter did not advance")
)

// RelyingParty runs WebAuthn ceremonies for the portal, whose base URL fixes the
// relying-party id (its host name) and the one origin answers may come from. It speaks in
// bytes: options to hand the browser, a state to keep server-side until the answer comes,
// and the answer's body. It knows nothing of HTTP or storage.
type RelyingParty struct {
	wa *webauthn.WebAuthn
}

// NewRelyingParty configures the ceremonies for a portal served at base. An IP-literal host
// is ErrPasskeysNeedHostName.
func NewRelyingParty(base *url.URL) (*RelyingParty, error) {
	if base == nil || base.Hostname() == "" {
		return nil, errors.New("auth: passkeys need a base URL")
	}
	host := strings.ToLower(base.Hostname())
	if net.ParseIP(host) != nil {
		return nil, ErrPasskeysNeedHostName
	}
	wa, err := webauthn.New(&webauthn.Config{
		RPID:          host,
		RPDisplayName: "Gatehouse",
		RPOrigins:     []string{base.Scheme + "://" + strings.ToLower(base.Host)},
		// No attestation: which make of authenticator a user holds is none of the portal's
		// business, and asking makes browsers show a privacy prompt.
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:      protocol.ResidentKeyRequirementPreferred,
			UserVerification: protocol.VerificationPreferred,
		},
		Timeouts: webauthn.TimeoutsConfig{
			// The browser gives up when the challenge would expire; the store enforces it.
			Login:        webauthn.TimeoutConfig{Timeout: PasskeyChallengeTTL, TimeoutUVD: PasskeyChallengeTTL},
			Registration: webauthn.TimeoutConfig{Timeout: PasskeyChallengeTTL, TimeoutUVD: PasskeyChallengeTTL},
		},
		// The portal asks for no extension and reads none, so one a browser or password
		// manager volunteers changes nothing and must not fail a sign-in.
		ExtensionsUnsolicitedOutputPolicy: protocol.UnsolicitedOutputPolicyIgnore,
	})
	if err != nil {
		return nil, fmt.Errorf("auth: passkeys: %w", err)
	}
	return &RelyingParty{wa: wa}, nil
}

// ID is the relying-party id: the portal's host name.
func (rp *RelyingParty) ID() string { return rp.wa.Config.RPID }

// PasskeyOwner is the account a ceremony is for: its WebAuthn user handle (random, never
// the account id) and the credentials it already holds.
type PasskeyOwner struct {
	Handle      []byte
	Name        string
	DisplayName string
	Credentials []PasskeyCredential
}

// PasskeyCredential is a stored public-key credential.
type PasskeyCredential struct {
	ID        []byte
	PublicKey []byte // COSE key, as the authenticator gave it
	SignCount uint32
	// Flags are the authenticator flags last seen (backup eligibility must never change).
	Flags             byte
	Transports        []string
	AAGUID            []byte
	AttestationFormat string
}

// Ceremony is a ceremony begun: the options the browser passes to navigator.credentials,
// the key the answer will name it by, and the state to keep until then.
type Ceremony struct {
	Options []byte
	// Key is the SHA-256 of the challenge; an answer is matched to its ceremony by it.
	Key   []byte
	State []byte
}

// ChallengeKey is what a ceremony is stored under: the SHA-256 of its challenge as the
// browser returns it in the client data.
func ChallengeKey(challenge string) []byte {
	sum := sha256.Sum256([]byte(challenge))
	return sum[:]
}

type owner struct{ PasskeyOwner }

func (o owner) WebAuthnID() []byte          { return o.Handle }
func (o owner) WebAuthnName() string        { return o.Name }
func (o owner) WebAuthnDisplayName() string { return o.DisplayName }
func (o owner) WebAuthnCredentials() []webauthn.Credential {
	creds := make([]webauthn.Credential, len(o.Credentials))
	for i, c := range o.Credentials {
		transports := make([]protocol.AuthenticatorTransport, len(c.Transports))
		for j, t := range c.Transports {
			transports[j] = protocol.AuthenticatorTransport(t)
		}
		creds[i] = webauthn.Credential{ID: c.ID, PublicKey: c.PublicKey, AttestationFormat: c.AttestationFormat,
			Transport: transports, Flags: webauthn.NewCredentialFlags(protocol.AuthenticatorFlags(c.Flags)),
			Authenticator: webauthn.Authenticator{AAGUID: c.AAGUID, SignCount: c.SignCount}}
	}
	return creds
}

func (o owner) descriptors() []protocol.CredentialDescriptor {
	return webauthn.Credentials(o.WebAuthnCredentials()).CredentialDescriptors()
}

func ceremony(options any, state *webauthn.SessionData) (Ceremony, error) {
	opts, err := json.Marshal(options)
	if err != nil {
		return Ceremony{}, fmt.Errorf("auth: passkey options: %w", err)
	}
	st, err := json.Marshal(state)
	if err != nil {
		return Ceremony{}, fmt.Errorf("auth: passkey state: %w", err)
	}
	return Ceremony{Options: opts, Key: ChallengeKey(state.Challenge), State: st}, nil
}

func readState(state []byte) (webauthn.SessionData, error) {
	var s webauthn.SessionData
	if err := json.Unmarshal(state, &s); err != nil {
		return s, fmt.Errorf("auth: passkey state: %w", err)
	}
	return s, nil
}

// BeginRegistration starts adding a passkey to o. The authenticator is asked for a
// discoverable credential (so it can sign in without a username later) and for user
// verification where it can; the credentials o holds are excluded, so one authenticator is
// not registered twice.
func (rp *RelyingParty) BeginRegistration(o PasskeyOwner) (Ceremony, error) {
	opts, state, err := rp.wa.BeginRegistration(owner{o}, webauthn.WithExclusions(owner{o}.descriptors()))
	if err != nil {
		return Ceremony{}, fmt.Errorf("auth: begin passkey registration: %w", err)
	}
	return ceremony(opts, state)
}

// Registration is a parsed answer to a registration ceremony, not yet verified.
type Registration struct {
	parsed *protocol.ParsedCredentialCreationData
}

// ParseRegistration reads a browser's answer to a registration; anything malformed is
// ErrPasskeyRefused.
func ParseRegistration(body []byte) (*Registration, error) {
	parsed, err := protocol.ParseCredentialCreationResponseBytes(body)
	if err != nil {
		return nil, refused("registration", err)
	}
	return &Registration{parsed: parsed}, nil
}

// ChallengeKey names the ceremony the answer claims to answer.
func (r *Registration) ChallengeKey() []byte {
	return ChallengeKey(r.parsed.Response.CollectedClientData.Challenge)
}

// FinishRegistration verifies the answer against the ceremony's state for o and returns
// the new credential.
func (rp *RelyingParty) FinishRegistration(o PasskeyOwner, state []byte, r *Registration) (PasskeyCredential, error) {
	s, err := readState(state)
	if err != nil {
		return PasskeyCredential{}, err
	}
	cred, err := rp.wa.CreateCredential(owner{o}, s, r.parsed)
	if err != nil {
		return PasskeyCredential{}, refused("registration", err)
	}
	transports := make([]string, 0, len(cred.Transport))
	for _, t := range cred.Transport {
		transports = append(transports, string(t))
	}
	return PasskeyCredential{ID: cred.ID, PublicKey: cred.PublicKey, SignCount: cred.Authenticator.SignCount,
		Flags: byte(cred.Flags.ProtocolValue()), Transports: transports, AAGUID: cred.Authenticator.AAGUID,
		AttestationFormat: cred.AttestationFormat}, nil
}

// BeginSecondStep asks for any of o's passkeys after the password: user verification is
// welcome but not needed, since the password was the first factor.
func (rp *RelyingParty) BeginSecondStep(o PasskeyOwner) (Ceremony, error) {
	opts, state, err := rp.wa.BeginLogin(owner{o}, webauthn.WithUserVerification(protocol.VerificationPreferred))
	if err != nil {
		return Ceremony{}, fmt.Errorf("auth: begin passkey second step: %w", err)
	}
	return ceremony(opts, state)
}

// BeginSignIn asks for a discoverable passkey of any account, which must verify its user
// (a PIN or biometric): it then stands for both factors.
func (rp *RelyingParty) BeginSignIn() (Ceremony, error) {
	opts, state, err := rp.wa.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return Ceremony{}, fmt.Errorf("auth: begin passkey sign-in: %w", err)
	}
	return ceremony(opts, state)
}

// Assertion is a parsed answer to a sign-in or second step, not yet verified.
type Assertion struct {
	parsed *protocol.ParsedCredentialAssertionData
}

// ParseAssertion reads a browser's answer to a sign-in; anything malformed is
// ErrPasskeyRefused.
func ParseAssertion(body []byte) (*Assertion, error) {
	parsed, err := protocol.ParseCredentialRequestResponseBytes(body)
	if err != nil {
		return nil, refused("assertion", err)
	}
	return &Assertion{parsed: parsed}, nil
}

// ChallengeKey names the ceremony the answer claims to answer.
func (a *Assertion) ChallengeKey() []byte {
	return ChallengeKey(a.parsed.Response.CollectedClientData.Challenge)
}

// CredentialID is the credential the answer claims to be signed with.
func (a *Assertion) CredentialID() []byte { return a.parsed.RawID }

// PasskeyUse is what a verified assertion changes about its credential.
type PasskeyUse struct {
	CredentialID []byte
	SignCount    uint32
	Flags        byte
	UserVerified bool
}

// FinishSignIn verifies an answer against the ceremony's state for o, the account that
// holds the credential it names: the credential must be o's, the user handle (for a
// discoverable sign-in) must be o's, and the sign counter must have moved on
// (ErrPasskeyCloned), unless the authenticator never counts and it stays at 0.
func (rp *RelyingParty) FinishSignIn(o PasskeyOwner, state []byte, a *Assertion) (PasskeyUse, error) {
	s, err := readState(state)
	if err != nil {
		return PasskeyUse{}, err
	}
	var cred *webauthn.Credential
	if len(s.UserID) == 0 {
		// A discoverable sign-in: the library asks whose credential it is; it is o's or no one's.
		_, cred, err = rp.wa.ValidatePasskeyLogin(func(rawID, userHandle []byte) (webauthn.User, error) {
			return owner{o}, nil
		}, s, a.parsed)
	} else {
		if !bytes.Equal(s.UserID, o.Handle) {
			return PasskeyUse{}, fmt.Errorf("%w: the ceremony was begun for another account", ErrPasskeyRefused)
		}
		cred, err = rp.wa.ValidateLogin(owner{o}, s, a.parsed)
	}
	if err != nil {
		return PasskeyUse{}, refused("assertion", err)
	}
	flags := a.parsed.Response.AuthenticatorData.Flags
	if s.UserVerification == protocol.VerificationRequired && !flags.HasUserVerified() {
		return PasskeyUse{}, fmt.Errorf("%w: the authenticator did not verify its user", ErrPasskeyRefused)
	}
	use := PasskeyUse{CredentialID: cred.ID, SignCount: a.parsed.Response.AuthenticatorData.Counter,
		Flags: byte(cred.Flags.ProtocolValue()), UserVerified: flags.HasUserVerified()}
	if cred.Authenticator.CloneWarning {
		return use, ErrPasskeyCloned
	}
	return use, nil
}

// refused wraps a library error as ErrPasskeyRefused, with the library's words for the log.
func refused(what string, err error) error {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		detail := pe.Details
		if pe.DevInfo != "" {
			detail += ": " + pe.DevInfo
		}
		return fmt.Errorf("%w: %s: %s", ErrPasskeyRefused, what, detail)
	}
	return fmt.Errorf("%w: %s: %v", ErrPasskeyRefused, what, err)
}
