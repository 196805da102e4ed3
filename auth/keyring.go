package auth

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// Key errors. Some are returned wrapped with details such as the path, so
// compare with errors.Is.
var (
	ErrKeyMissing = errors.New("auth: key file does not exist")
	ErrKeyInvalid = errors.New("auth: key file is not a 64-character hex key")
	ErrWrongKey   = errors.New("auth: key does not match the one the data was encrypted with")
)

var errOpen = errors.New("auth: cannot decrypt: wrong key, wrong row or damaged data")

const (
	keyLen      = 32 // AES-256
	nonceLen    = 12 // the GCM standard nonce size
	canaryAAD   = "gatehouse:key-canary"
	canaryPlain = "gatehouse key canary v1"
	// maxKeyFile bounds how much of a wrongly chosen file LoadKey reads.
	maxKeyFile = 4096
)

// Keyring encrypts small secrets, such as TOTP secrets, with AES-256-GCM.
type Keyring struct {
	key  []byte
	aead cipher.AEAD
}

// NewKeyring returns a Keyring for a raw 32-byte key. The key is copied.
func NewKeyring(key []byte) (*Keyring, error) {
	if len(key) != keyLen {
		return nil, fmt.Errorf("%w: need %d bytes, got %d", ErrKeyInvalid, keyLen, len(key))
	}
	k := bytes.Clone(key)
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return &Keyring{key: k, aead: aead}, nil
}

// CreateKey generates a new random key and writes it to path, which must not
// exist yet; see WriteKeyFile for the file format.
func CreateKey(path string) (*Keyring, error) {
	k, err := NewKeyring(randomBytes(keyLen))
	if err != nil {
		return nil, err
	}
	if err := k.WriteKeyFile(path); err != nil {
		return nil, err
	}
	return k, nil
}

// LoadKey reads a key file written by CreateKey or WriteKeyFile. A missing
// file gives ErrKeyMissing and unusable content ErrKeyInvalid. A file that
// group or others may read still loads, so a running site is not locked out;
// warning about its mode is the caller's job, beside the database's files.
func LoadKey(path string) (*Keyring, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrKeyMissing, path)
	}
	if err != nil {
		return nil, fmt.Errorf("auth: open key file: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("auth: stat key file: %w", err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrKeyInvalid, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("auth: read key file: %w", err)
	}
	// Surrounding whitespace is allowed because editors add newlines.
	text := strings.TrimSpace(string(data))
	if len(data) > maxKeyFile || len(text) != 2*keyLen {
		return nil, fmt.Errorf("%w: %s", ErrKeyInvalid, path)
	}
	raw, err := hex.DecodeString(text)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrKeyInvalid, path)
	}
	return NewKeyring(raw)
}

// WriteKeyFile writes the key to a new file at path as 64 hex characters and
// a newline, mode 0600. It refuses to overwrite an existing file (the error
// wraps fs.ErrExist), because replacing a key makes every secret encrypted
// with it unreadable. The file and its directory are synced so the key
// survives a crash that follows.
func (k *Keyring) WriteKeyFile(path string) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("auth: create key file: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			// O_EXCL made the file ours, so removing a partial one is safe.
			os.Remove(path)
		}
	}()
	// The umask can only narrow the mode; set it exactly so that a narrowed
	// 0400 does not surprise a later rotation.
	if err := f.Chmod(0o600); err != nil && runtime.GOOS != "windows" {
		return fmt.Errorf("auth: chmod key file: %w", err)
	}
	if _, err := f.WriteString(hex.EncodeToString(k.key) + "\n"); err != nil {
		return fmt.Errorf("auth: write key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("auth: sync key file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("auth: close key file: %w", err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("auth: sync key directory: %w", err)
	}
	return nil
}

// syncDir makes a new directory entry durable. Windows cannot sync
// directories and does not need to.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Seal encrypts plaintext and returns a random 12-byte nonce followed by the
// ciphertext. aad is authenticated but not stored: it binds the ciphertext
// to its row (for example "totp:user:42"), so a value copied into another
// row fails to open.
func (k *Keyring) Seal(plaintext, aad []byte) ([]byte, error) {
	nonce := randomBytes(nonceLen)
	out := make([]byte, nonceLen, nonceLen+len(plaintext)+k.aead.Overhead())
	copy(out, nonce)
	return k.aead.Seal(out, nonce, plaintext, aad), nil
}

// Open decrypts a value from Seal with the same aad. It fails if the key or
// aad differ or the value was altered.
func (k *Keyring) Open(ciphertext, aad []byte) ([]byte, error) {
	if len(ciphertext) < nonceLen+k.aead.Overhead() {
		return nil, errOpen
	}
	plain, err := k.aead.Open(nil, ciphertext[:nonceLen], ciphertext[nonceLen:], aad)
	if err != nil {
		return nil, errOpen
	}
	return plain, nil
}

// NewCanary returns a known value sealed with k. Stored next to the data, it
// lets CheckCanary tell at startup that a different key file was supplied,
// before anything is encrypted under the wrong key.
func (k *Keyring) NewCanary() ([]byte, error) {
	return k.Seal([]byte(canaryPlain), []byte(canaryAAD))
}

// CheckCanary returns ErrWrongKey unless c is a canary made with this key.
func (k *Keyring) CheckCanary(c []byte) error {
	plain, err := k.Open(c, []byte(canaryAAD))
	if err != nil || !bytes.Equal(plain, []byte(canaryPlain)) {
		return ErrWrongKey
	}
	return nil
}

// String keeps the key out of logs if a Keyring is ever printed.
func (k *Keyring) String() string { return "auth.Keyring{REDACTED}" }

// GoString does the same for %#v.
func (k *Keyring) GoString() string { return k.String() }

// Derive returns a 32-byte key for one purpose (such as signing form tokens), computed
// from the key file so that it survives restarts without another secret to manage, and so
// that no purpose ever uses the encryption key itself.
func (k *Keyring) Derive(purpose string) []byte {
	m := hmac.New(sha256.New, k.key)
	m.Write([]byte("gatehouse derive\x00" + purpose))
	return m.Sum(nil)
}

// TOTPSecretAAD is the associated data a user's TOTP secret is sealed with. Binding the
// ciphertext to the user id means a secret copied into another user's row does not open,
// so no write, buggy or hostile, can hand one user's authenticator to another.
func TOTPSecretAAD(userID int64) []byte {
	return []byte("totp:user:" + strconv.FormatInt(userID, 10))
}
