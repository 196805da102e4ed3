package auth

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func newTestKeyring(tb testing.TB) *Keyring {
	tb.Helper()
	k, err := NewKeyring(randomBytes(32))
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func mustSeal(tb testing.TB, k *Keyring, plaintext, aad string) []byte {
	tb.Helper()
	c, err := k.Seal([]byte(plaintext), []byte(aad))
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func writeFile(tb testing.TB, path, content string, mode os.FileMode) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		tb.Fatal(err)
	}
	// WriteFile's mode is narrowed by the umask; set it exactly.
	if err := os.Chmod(path, mode); err != nil {
		tb.Fatal(err)
	}
}

func TestKeyringSealOpen(t *testing.T) {
	k := newTestKeyring(t)

	t.Run("a sealed value opens with the same aad", func(t *testing.T) {
		c := mustSeal(t, k, "JBSWY3DPEHPK3PXP", "totp:user:42")
		got, err := k.Open(c, []byte("totp:user:42"))
		if err != nil || string(got) != "JBSWY3DPEHPK3PXP" {
			t.Fatalf("Open = %q, %v", got, err)
		}
		if len(c) != 12+len("JBSWY3DPEHPK3PXP")+16 {
			t.Errorf("ciphertext length %d, want nonce + plaintext + tag", len(c))
		}
		if bytes.Contains(c, []byte("JBSWY3DP")) {
			t.Error("ciphertext contains the plaintext")
		}
	})

	t.Run("empty plaintext and nil aad round trip", func(t *testing.T) {
		c, err := k.Seal(nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := k.Open(c, nil)
		if err != nil || len(got) != 0 {
			t.Errorf("Open = %q, %v", got, err)
		}
	})

	t.Run("sealing twice gives different ciphertexts", func(t *testing.T) {
		a := mustSeal(t, k, "same", "row")
		b := mustSeal(t, k, "same", "row")
		if bytes.Equal(a, b) || bytes.Equal(a[:12], b[:12]) {
			t.Error("nonce reused")
		}
	})

	t.Run("a ciphertext copied to another row does not open", func(t *testing.T) {
		c := mustSeal(t, k, "secret", "totp:user:42")
		for _, aad := range []string{"totp:user:43", "totp:user:4", "", "TOTP:USER:42"} {
			if got, err := k.Open(c, []byte(aad)); err == nil {
				t.Errorf("opened with aad %q: %q", aad, got)
			}
		}
	})

	t.Run("another key does not open the ciphertext", func(t *testing.T) {
		c := mustSeal(t, k, "secret", "row")
		if _, err := newTestKeyring(t).Open(c, []byte("row")); err == nil {
			t.Error("opened with another key")
		}
	})

	t.Run("any altered byte is detected", func(t *testing.T) {
		c := mustSeal(t, k, "secret", "row")
		for i := range c {
			bad := bytes.Clone(c)
			bad[i] ^= 0x01
			if _, err := k.Open(bad, []byte("row")); err == nil {
				t.Fatalf("flipped byte %d went unnoticed", i)
			}
		}
	})

	t.Run("short or truncated input is an error, not a panic", func(t *testing.T) {
		c := mustSeal(t, k, "secret", "row")
		for _, bad := range [][]byte{nil, {}, c[:11], c[:12], c[:27], c[:len(c)-1]} {
			if _, err := k.Open(bad, []byte("row")); err == nil {
				t.Errorf("Open of %d bytes succeeded", len(bad))
			} else if !strings.HasPrefix(err.Error(), "auth: ") {
				t.Errorf("error %q lacks the auth: prefix", err)
			}
		}
	})
}

func TestKeyringCanary(t *testing.T) {
	k := newTestKeyring(t)
	canary, err := k.NewCanary()
	if err != nil {
		t.Fatal(err)
	}

	t.Run("the canary checks with its own key", func(t *testing.T) {
		if err := k.CheckCanary(canary); err != nil {
			t.Errorf("CheckCanary: %v", err)
		}
	})

	t.Run("another key fails with ErrWrongKey", func(t *testing.T) {
		if err := newTestKeyring(t).CheckCanary(canary); !errors.Is(err, ErrWrongKey) {
			t.Errorf("CheckCanary = %v, want ErrWrongKey", err)
		}
	})

	t.Run("garbage fails with ErrWrongKey", func(t *testing.T) {
		for _, c := range [][]byte{nil, []byte("not a canary"), canary[:20]} {
			if err := k.CheckCanary(c); !errors.Is(err, ErrWrongKey) {
				t.Errorf("CheckCanary(%x) = %v, want ErrWrongKey", c, err)
			}
		}
	})

	t.Run("a value sealed with the key but another plaintext is not a canary", func(t *testing.T) {
		other := mustSeal(t, k, "something else", "gatehouse:key-canary")
		if err := k.CheckCanary(other); !errors.Is(err, ErrWrongKey) {
			t.Errorf("CheckCanary = %v, want ErrWrongKey", err)
		}
	})

	t.Run("a row ciphertext is not a canary", func(t *testing.T) {
		row := mustSeal(t, k, "gatehouse key canary v1", "totp:user:1")
		if err := k.CheckCanary(row); !errors.Is(err, ErrWrongKey) {
			t.Errorf("CheckCanary = %v, want ErrWrongKey", err)
		}
	})
}

func TestCreateAndLoadKey(t *testing.T) {
	t.Run("CreateKey writes a 0600 hex key file that LoadKey reads back", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "gatehouse.key")
		k, err := CreateKey(path)
		if err != nil {
			t.Fatal(err)
		}
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if runtime.GOOS != "windows" && info.Mode().Perm() != 0o600 {
			t.Errorf("mode %v, want 0600", info.Mode().Perm())
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) != 65 || data[64] != '\n' {
			t.Fatalf("file content %q is not 64 hex digits and a newline", data)
		}
		if raw, err := hex.DecodeString(string(data[:64])); err != nil || !bytes.Equal(raw, k.key) {
			t.Errorf("file does not hold the key: %v", err)
		}

		loaded, err := LoadKey(path)
		if err != nil {
			t.Fatal(err)
		}
		c := mustSeal(t, k, "secret", "row")
		if got, err := loaded.Open(c, []byte("row")); err != nil || string(got) != "secret" {
			t.Errorf("loaded key cannot open: %q, %v", got, err)
		}
		canary, _ := k.NewCanary()
		if err := loaded.CheckCanary(canary); err != nil {
			t.Errorf("loaded key fails the canary: %v", err)
		}
	})

	t.Run("CreateKey refuses to overwrite an existing file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "gatehouse.key")
		if _, err := CreateKey(path); err != nil {
			t.Fatal(err)
		}
		before, _ := os.ReadFile(path)
		k, err := CreateKey(path)
		if err == nil || k != nil {
			t.Fatal("second CreateKey succeeded")
		}
		if !errors.Is(err, fs.ErrExist) {
			t.Errorf("error %v does not wrap fs.ErrExist", err)
		}
		if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
			t.Error("existing key file was changed")
		}
	})

	t.Run("CreateKey fails in a missing directory", func(t *testing.T) {
		if _, err := CreateKey(filepath.Join(t.TempDir(), "nope", "gatehouse.key")); err == nil {
			t.Error("CreateKey succeeded")
		}
	})

	t.Run("two created keys differ", func(t *testing.T) {
		dir := t.TempDir()
		a, errA := CreateKey(filepath.Join(dir, "a.key"))
		b, errB := CreateKey(filepath.Join(dir, "b.key"))
		if errA != nil || errB != nil {
			t.Fatal(errA, errB)
		}
		if bytes.Equal(a.key, b.key) {
			t.Error("keys are equal")
		}
	})

	t.Run("a missing file is ErrKeyMissing naming the path", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "absent.key")
		_, err := LoadKey(path)
		if !errors.Is(err, ErrKeyMissing) {
			t.Fatalf("LoadKey = %v, want ErrKeyMissing", err)
		}
		if !strings.Contains(err.Error(), path) {
			t.Errorf("error %q does not name %s", err, path)
		}
	})

	garbage := map[string]string{
		"an empty file":          "",
		"a newline only":         "\n",
		"text":                   "this is not a key\n",
		"63 hex digits":          strings.Repeat("a", 63) + "\n",
		"65 hex digits":          strings.Repeat("a", 65) + "\n",
		"a 16-byte key":          strings.Repeat("ab", 16) + "\n",
		"64 non-hex characters":  strings.Repeat("g", 64) + "\n",
		"two keys":               strings.Repeat("a", 64) + "\n" + strings.Repeat("b", 64) + "\n",
		"raw key bytes":          string(randomBytes(32)),
		"base64 instead of hex":  "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=\n",
		"a space inside the key": strings.Repeat("a", 32) + " " + strings.Repeat("a", 32) + "\n",
		"a huge file":            strings.Repeat("a", 64) + strings.Repeat(" ", 1<<20),
	}
	for name, content := range garbage {
		t.Run("a key file with "+name+" is ErrKeyInvalid", func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.key")
			writeFile(t, path, content, 0o600)
			if _, err := LoadKey(path); !errors.Is(err, ErrKeyInvalid) {
				t.Errorf("LoadKey = %v, want ErrKeyInvalid", err)
			}
		})
	}

	t.Run("a directory is ErrKeyInvalid", func(t *testing.T) {
		if _, err := LoadKey(t.TempDir()); !errors.Is(err, ErrKeyInvalid) {
			t.Errorf("LoadKey = %v, want ErrKeyInvalid", err)
		}
	})

	t.Run("uppercase hex and surrounding whitespace are accepted", func(t *testing.T) {
		raw := randomBytes(32)
		path := filepath.Join(t.TempDir(), "edited.key")
		writeFile(t, path, "  "+strings.ToUpper(hex.EncodeToString(raw))+"\r\n\n", 0o600)
		k, err := LoadKey(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(k.key, raw) {
			t.Error("loaded the wrong key")
		}
	})

	t.Run("a group- or world-readable file still loads, so a running site is not locked out", func(t *testing.T) {
		if runtime.GOOS == "windows" {
			t.Skip("no Unix permission bits")
		}
		for _, mode := range []os.FileMode{0o640, 0o604, 0o644, 0o666, 0o400} {
			path := filepath.Join(t.TempDir(), "open.key")
			writeFile(t, path, hex.EncodeToString(randomBytes(32))+"\n", mode)
			if _, err := LoadKey(path); err != nil {
				t.Errorf("mode %v: %v", mode, err)
			}
		}
	})
}

func TestWriteKeyFile(t *testing.T) {
	t.Run("an existing keyring is written and reloads to the same key", func(t *testing.T) {
		k := newTestKeyring(t)
		path := filepath.Join(t.TempDir(), "backup.key")
		if err := k.WriteKeyFile(path); err != nil {
			t.Fatal(err)
		}
		if info, _ := os.Stat(path); runtime.GOOS != "windows" && info.Mode().Perm() != 0o600 {
			t.Errorf("mode %v, want 0600", info.Mode().Perm())
		}
		loaded, err := LoadKey(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(loaded.key, k.key) {
			t.Error("reloaded key differs")
		}
	})

	t.Run("an existing file is not overwritten", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "backup.key")
		writeFile(t, path, "keep me\n", 0o600)
		err := newTestKeyring(t).WriteKeyFile(path)
		if !errors.Is(err, fs.ErrExist) {
			t.Errorf("WriteKeyFile = %v, want fs.ErrExist", err)
		}
		if data, _ := os.ReadFile(path); string(data) != "keep me\n" {
			t.Errorf("file now holds %q", data)
		}
	})
}

func TestNewKeyring(t *testing.T) {
	t.Run("keys that are not 32 bytes are ErrKeyInvalid", func(t *testing.T) {
		for _, n := range []int{0, 16, 24, 31, 33, 64} {
			if _, err := NewKeyring(make([]byte, n)); !errors.Is(err, ErrKeyInvalid) {
				t.Errorf("%d bytes: %v, want ErrKeyInvalid", n, err)
			}
		}
	})

	t.Run("the key is copied", func(t *testing.T) {
		raw := randomBytes(32)
		k, err := NewKeyring(raw)
		if err != nil {
			t.Fatal(err)
		}
		c := mustSeal(t, k, "secret", "row")
		raw[0] ^= 0xff
		same, _ := NewKeyring(bytes.Clone(k.key))
		if _, err := same.Open(c, []byte("row")); err != nil {
			t.Error("changing the caller's slice changed the keyring")
		}
	})

	t.Run("the same key bytes open each other's ciphertexts", func(t *testing.T) {
		raw := randomBytes(32)
		a, _ := NewKeyring(raw)
		b, _ := NewKeyring(raw)
		c := mustSeal(t, a, "rotated", "row")
		if got, err := b.Open(c, []byte("row")); err != nil || string(got) != "rotated" {
			t.Errorf("Open = %q, %v", got, err)
		}
	})

	t.Run("printing a keyring does not reveal the key", func(t *testing.T) {
		k := newTestKeyring(t)
		out := fmt.Sprintf("%v %+v %#v %s", k, k, k, k)
		if strings.Contains(out, hex.EncodeToString(k.key)) || strings.Contains(out, fmt.Sprint(k.key)) {
			t.Errorf("key visible in %q", out)
		}
	})
}
