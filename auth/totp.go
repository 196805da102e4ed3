package auth

import (
	"crypto/subtle"
	"encoding/base32"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"
	"github.com/skip2/go-qrcode"
)

// Issuer names Gatehouse in authenticator apps.
const Issuer = "Gatehouse"

// The TOTP settings every common authenticator app supports; some apps
// silently ignore other values, so these are not configurable.
const (
	totpPeriod = 30
	totpDigits = otp.DigitsSix
)

var totpAlgorithm = otp.AlgorithmSHA1

var secretEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewTOTPSecret returns a new TOTP secret: 20 random bytes (the HMAC-SHA1
// block recommended by RFC 4226) as unpadded base32, 32 characters.
func NewTOTPSecret() string {
	return secretEncoding.EncodeToString(randomBytes(20))
}

// TOTPURI returns the otpauth:// URI that authenticator apps read from a QR
// code, labelled "Gatehouse:username".
func TOTPURI(username, secret string) string {
	// A colon separates issuer from account in the label, so one inside
	// the username must be escaped too, which PathEscape does not do.
	account := strings.ReplaceAll(url.PathEscape(username), ":", "%3A")
	return "otpauth://totp/" + url.PathEscape(Issuer) + ":" + account +
		"?secret=" + url.QueryEscape(secret) +
		"&issuer=" + url.QueryEscape(Issuer) +
		"&algorithm=SHA1&digits=6&period=30"
}

// QRPNG returns a 256-pixel PNG QR code of uri.
func QRPNG(uri string) ([]byte, error) {
	return qrcode.Encode(uri, qrcode.Medium, 256)
}

// TOTPStep returns the TOTP time step (30-second counter) that contains t.
func TOTPStep(t time.Time) int64 {
	return t.Unix() / totpPeriod
}

// CheckTOTP reports whether code is valid for secret at now, allowing one
// step of clock drift either way, and returns the step it matched. Spaces in
// code are ignored; anything else that is not exactly six ASCII digits is
// refused. Callers prevent replay by refusing steps at or before the last one
// they accepted.
func CheckTOTP(secret, code string, now time.Time) (step int64, ok bool) {
	code = strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, code)
	if !sixDigits(code) || !validSecret(secret) {
		return 0, false
	}
	cur := TOTPStep(now)
	// Every candidate is computed and compared, so the time taken does not
	// depend on which step (if any) matched.
	var matched int64
	found := 0
	for _, s := range [...]int64{cur, cur - 1, cur + 1} {
		want, err := stepCode(secret, s)
		if err != nil {
			return 0, false
		}
		eq := subtle.ConstantTimeCompare([]byte(want), []byte(code))
		if eq == 1 && found == 0 {
			matched, found = s, 1
		}
	}
	return matched, found == 1
}

// TOTPCode returns the code for secret at time t, or "" if secret is not
// valid base32.
func TOTPCode(secret string, t time.Time) string {
	if !validSecret(secret) {
		return ""
	}
	code, err := totp.GenerateCodeCustom(secret, t, totp.ValidateOpts{
		Period:    totpPeriod,
		Digits:    totpDigits,
		Algorithm: totpAlgorithm,
	})
	if err != nil {
		return ""
	}
	return code
}

// FormatSecret splits secret into space-separated groups of four characters
// so it can be read aloud or typed into an app by hand.
func FormatSecret(secret string) string {
	var b strings.Builder
	for i := 0; i < len(secret); i += 4 {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(secret[i:min(i+4, len(secret))])
	}
	return b.String()
}

func stepCode(secret string, step int64) (string, error) {
	return hotp.GenerateCodeCustom(secret, uint64(step), hotp.ValidateOpts{
		Digits:    totpDigits,
		Algorithm: totpAlgorithm,
	})
}

// validSecret refuses secrets that decode to nothing, because HMAC with an
// empty key still produces codes and would accept them for anyone.
func validSecret(secret string) bool {
	b, err := secretEncoding.DecodeString(strings.ToUpper(strings.TrimRight(secret, "=")))
	return err == nil && len(b) > 0
}

func sixDigits(s string) bool {
	if len(s) != 6 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
