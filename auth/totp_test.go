package auth

import (
	"bytes"
	"encoding/base32"
	"fmt"
	"image/png"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"
	"github.com/pquerna/otp"
)

// rfcSecret is the SHA-1 key of the RFC 6238 test vectors, "12345678901234567890".
const rfcSecret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"

func TestTOTPCode(t *testing.T) {
	// RFC 6238 appendix B, SHA-1; six digits are the last six of eight.
	vectors := []struct {
		unix int64
		code string
	}{
		{59, "287082"},
		{1111111109, "081804"},
		{1111111111, "050471"},
		{1234567890, "005924"},
		{2000000000, "279037"},
		{20000000000, "353130"},
	}
	for _, v := range vectors {
		t.Run(fmt.Sprintf("the code at %d matches RFC 6238", v.unix), func(t *testing.T) {
			if got := TOTPCode(rfcSecret, time.Unix(v.unix, 0)); got != v.code {
				t.Errorf("TOTPCode = %q, want %q", got, v.code)
			}
		})
	}

	t.Run("a lowercase secret gives the same code", func(t *testing.T) {
		now := time.Unix(1234567890, 0)
		if TOTPCode(strings.ToLower(rfcSecret), now) != "005924" {
			t.Error("lowercase secret gave a different code")
		}
	})

	t.Run("an unusable secret gives no code", func(t *testing.T) {
		for _, s := range []string{"", "not base32!", "A", "GEZDGNBV GY3TQOJQ"} {
			if got := TOTPCode(s, time.Unix(59, 0)); got != "" {
				t.Errorf("TOTPCode(%q) = %q, want empty", s, got)
			}
		}
	})
}

func TestTOTPStep(t *testing.T) {
	t.Run("steps are 30-second counters from the epoch", func(t *testing.T) {
		cases := map[int64]int64{0: 0, 29: 0, 30: 1, 59: 1, 60: 2, 1234567890: 41152263}
		for unix, want := range cases {
			if got := TOTPStep(time.Unix(unix, 0)); got != want {
				t.Errorf("TOTPStep(%d) = %d, want %d", unix, got, want)
			}
		}
	})

	t.Run("the time zone does not matter", func(t *testing.T) {
		utc := time.Unix(1700000000, 0).UTC()
		far := utc.In(time.FixedZone("UTC+13", 13*3600))
		if TOTPStep(utc) != TOTPStep(far) {
			t.Error("steps differ between zones")
		}
	})
}

func TestCheckTOTP(t *testing.T) {
	// Fixed secrets and clock keep the test deterministic: with random
	// ones, a code for one step could by chance equal another step's.
	const secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
	// Mid-step, so that ±30 s lands squarely in the neighbouring steps.
	now := time.Unix(1700000015, 0)
	base := TOTPStep(now)

	t.Run("codes within one step either way are accepted with their step", func(t *testing.T) {
		for _, off := range []int64{-1, 0, 1} {
			code := TOTPCode(secret, now.Add(time.Duration(off)*30*time.Second))
			step, ok := CheckTOTP(secret, code, now)
			if !ok {
				t.Errorf("code for offset %d refused", off)
				continue
			}
			if step != base+off {
				t.Errorf("offset %d matched step %d, want %d", off, step, base+off)
			}
		}
	})

	t.Run("codes two steps away are refused", func(t *testing.T) {
		for _, off := range []int64{-2, 2, -10, 10} {
			code := TOTPCode(secret, now.Add(time.Duration(off)*30*time.Second))
			if step, ok := CheckTOTP(secret, code, now); ok {
				t.Errorf("code for offset %d accepted as step %d", off, step)
			}
		}
	})

	t.Run("the window follows the clock at step edges", func(t *testing.T) {
		edge := time.Unix(base*30, 0) // first second of the step
		code := TOTPCode(secret, edge.Add(-time.Second))
		if step, ok := CheckTOTP(secret, code, edge); !ok || step != base-1 {
			t.Errorf("previous step at edge = %d, %v", step, ok)
		}
		if _, ok := CheckTOTP(secret, code, edge.Add(30*time.Second)); ok {
			t.Error("code accepted two steps later")
		}
	})

	t.Run("the RFC secret checks against its published code", func(t *testing.T) {
		step, ok := CheckTOTP(rfcSecret, "005924", time.Unix(1234567890, 0))
		if !ok || step != 41152263 {
			t.Errorf("CheckTOTP = %d, %v", step, ok)
		}
	})

	t.Run("spaces in the code are ignored", func(t *testing.T) {
		code := TOTPCode(secret, now)
		for _, typed := range []string{code[:3] + " " + code[3:], " " + code + " ", code[:3] + "\u00a0" + code[3:], "\t" + code + "\n"} {
			if step, ok := CheckTOTP(secret, typed, now); !ok || step != base {
				t.Errorf("CheckTOTP(%q) = %d, %v", typed, step, ok)
			}
		}
	})

	t.Run("anything but six ASCII digits is refused", func(t *testing.T) {
		code := TOTPCode(secret, now)
		for _, typed := range []string{
			"", code[:5], code + "0", "0" + code, code[:5] + "a", "abcdef",
			"+" + code[1:], "-" + code[1:], code[:3] + "-" + code[3:],
			"１２３４５６", "١٢٣٤٥٦", code + "\x00",
		} {
			if _, ok := CheckTOTP(secret, typed, now); ok {
				t.Errorf("CheckTOTP(%q) accepted", typed)
			}
		}
	})

	t.Run("the wrong secret refuses the code", func(t *testing.T) {
		code := TOTPCode(secret, now)
		if _, ok := CheckTOTP(rfcSecret, code, now); ok {
			t.Error("code accepted under another secret")
		}
	})

	t.Run("an empty or broken secret refuses every code", func(t *testing.T) {
		// An empty HMAC key still yields codes, so this must be refused
		// explicitly rather than by luck.
		for _, s := range []string{"", "!!!!", "A"} {
			for _, c := range []string{"000000", "123456", "328482"} {
				if _, ok := CheckTOTP(s, c, now); ok {
					t.Errorf("CheckTOTP(%q, %q) accepted", s, c)
				}
			}
		}
	})
}

func TestNewTOTPSecret(t *testing.T) {
	t.Run("a secret is 32 base32 characters encoding 20 bytes", func(t *testing.T) {
		s := NewTOTPSecret()
		if len(s) != 32 || strings.ContainsAny(s, "=") {
			t.Fatalf("secret %q", s)
		}
		raw, err := base32.StdEncoding.DecodeString(s)
		if err != nil || len(raw) != 20 {
			t.Fatalf("secret %q decodes to %d bytes, %v", s, len(raw), err)
		}
	})

	t.Run("50 secrets are distinct", func(t *testing.T) {
		seen := map[string]bool{}
		for range 50 {
			s := NewTOTPSecret()
			if seen[s] {
				t.Fatalf("secret %q repeated", s)
			}
			seen[s] = true
		}
	})
}

func TestTOTPURI(t *testing.T) {
	secret := NewTOTPSecret()

	t.Run("the URI has the key-URI shape apps expect", func(t *testing.T) {
		raw := TOTPURI("alice", secret)
		want := "otpauth://totp/Gatehouse:alice?secret=" + secret + "&issuer=Gatehouse&algorithm=SHA1&digits=6&period=30"
		if raw != want {
			t.Errorf("TOTPURI = %q, want %q", raw, want)
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if u.Scheme != "otpauth" || u.Host != "totp" || u.Path != "/Gatehouse:alice" {
			t.Errorf("scheme %q host %q path %q", u.Scheme, u.Host, u.Path)
		}
		q := u.Query()
		wantQuery := map[string]string{"secret": secret, "issuer": "Gatehouse", "algorithm": "SHA1", "digits": "6", "period": "30"}
		for k, v := range wantQuery {
			if q.Get(k) != v {
				t.Errorf("query %s = %q, want %q", k, q.Get(k), v)
			}
		}
		if len(q) != len(wantQuery) {
			t.Errorf("query has extra keys: %v", q)
		}
	})

	t.Run("the otp library reads the URI back", func(t *testing.T) {
		key, err := otp.NewKeyFromURL(TOTPURI("alice", secret))
		if err != nil {
			t.Fatal(err)
		}
		if key.Issuer() != Issuer || key.AccountName() != "alice" || key.Secret() != secret ||
			key.Period() != 30 || key.Digits() != otp.DigitsSix || key.Algorithm() != otp.AlgorithmSHA1 {
			t.Errorf("key read back as %s", key)
		}
	})

	t.Run("awkward usernames are escaped in the label", func(t *testing.T) {
		for _, name := range []string{"ann marie", "a/b", "x?y#z", "j:doe", "zoë", "a&b=c", "50%"} {
			raw := TOTPURI(name, secret)
			u, err := url.Parse(raw)
			if err != nil {
				t.Errorf("%q: %v", name, err)
				continue
			}
			if u.Path != "/Gatehouse:"+name {
				t.Errorf("%q: path %q", name, u.Path)
			}
			if u.Query().Get("secret") != secret || u.Fragment != "" {
				t.Errorf("%q: username leaked into query or fragment: %q", name, raw)
			}
			label := strings.TrimPrefix(u.EscapedPath(), "/Gatehouse:")
			if strings.Contains(label, ":") || strings.Contains(label, "/") || strings.Contains(label, " ") {
				t.Errorf("%q: label %q is not escaped", name, label)
			}
		}
	})
}

func TestQRPNG(t *testing.T) {
	t.Run("the PNG decodes back to the URI", func(t *testing.T) {
		uri := TOTPURI("alice", NewTOTPSecret())
		data, err := QRPNG(uri)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("not a PNG: %v", err)
		}
		if b := img.Bounds(); b.Dx() != 256 || b.Dy() != 256 {
			t.Errorf("image is %dx%d, want 256x256", b.Dx(), b.Dy())
		}
		bmp, err := gozxing.NewBinaryBitmapFromImage(img)
		if err != nil {
			t.Fatal(err)
		}
		res, err := qrcode.NewQRCodeReader().Decode(bmp, nil)
		if err != nil {
			t.Fatalf("QR code does not decode: %v", err)
		}
		if res.GetText() != uri {
			t.Errorf("decoded %q, want %q", res.GetText(), uri)
		}
	})
}

func TestFormatSecret(t *testing.T) {
	cases := map[string]string{
		"":                                 "",
		"ABC":                              "ABC",
		"ABCD":                             "ABCD",
		"ABCDEF":                           "ABCD EF",
		"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567": "ABCD EFGH IJKL MNOP QRST UVWX YZ23 4567",
	}
	for in, want := range cases {
		t.Run(fmt.Sprintf("%q is grouped in fours", in), func(t *testing.T) {
			if got := FormatSecret(in); got != want {
				t.Errorf("FormatSecret = %q, want %q", got, want)
			}
		})
	}

	t.Run("grouping keeps every character", func(t *testing.T) {
		s := NewTOTPSecret()
		if strings.ReplaceAll(FormatSecret(s), " ", "") != s {
			t.Error("grouping lost characters")
		}
	})
}
