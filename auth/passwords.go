// Package auth holds Gatehouse's credential primitives: password hashing and
// policy, TOTP, recovery codes, opaque tokens and the key that encrypts
// secrets at rest. It does no I/O beyond reading and writing the key file.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes over memory
	Threads uint8  // lanes
	KeyLen  uint32 // bytes of derived key
	SaltLen uint32 // bytes of random salt
}

// DefaultParams is one of the argon2id configurations the OWASP Password
// Storage Cheat Sheet lists as equal in strength to its minimum
// (m=12288 KiB, t=3, p=1), with a 32-byte key and a 16-byte salt.
//
// The cheat sheet's rows trade memory for passes at the same cost to an
// attacker. This one keeps each check at 12 MiB instead of 19 MiB, because a
// flood of sign-in attempts allocates that for every check and the portal
// must stay within about 100 MiB on a small machine, while three passes keep
// GPU guessing as costly as the headline row. One lane keeps a check from
// occupying every core, and the Hasher's concurrency limit bounds the total.
// Hashes record their own parameters, so changing these later only needs
// NeedsRehash at sign-in.
var DefaultParams = Params{
	Memory:  12288,
	Time:    3,
	Threads: 1,
	KeyLen:  32,
	SaltLen: 16,
}

// ErrBusy is returned when no hashing slot became free before the context
// was done.
var ErrBusy = errors.New("auth: too many password checks in progress")

var errMalformedHash = errors.New("auth: malformed password hash")

// Bounds on parameters read back from stored hashes, so a corrupted or
// planted hash cannot make one check allocate gigabytes or run for minutes.
const (
	maxMemoryKiB = 1 << 20 // 1 GiB
	maxTime      = 64
	minKeyLen    = 16
	maxKeyLen    = 1024
	minSaltLen   = 8
	maxSaltLen   = 1024
)

// Hasher hashes and verifies passwords with argon2id, running at most a fixed
// number of computations at once.
type Hasher struct {
	params Params
	// sem holds one token per running computation.
	sem   chan struct{}
	dummy func() string
	rate  *rateLimit // nil: no limit on checks per second
	// runs counts argon2 derivations, the unit of cost a client can ask for.
	runs atomic.Int64
}

// Computations reports how many argon2 derivations the Hasher has run.
func (h *Hasher) Computations() int64 { return h.runs.Load() }

// LimitRate caps password computations at perSecond on average, with bursts of burst.
// Slots bound how many run at once; the rate bounds how much CPU and allocation a flood of
// sign-in attempts can take in all, so pages stay fast while attackers wait or are refused.
func (h *Hasher) LimitRate(perSecond float64, burst int) {
	h.rate = &rateLimit{perSecond: perSecond, burst: float64(burst), tokens: float64(burst), last: time.Now()}
}

// rateLimit is a token bucket.
type rateLimit struct {
	mu        sync.Mutex
	perSecond float64
	burst     float64
	tokens    float64
	last      time.Time
}

// wait takes a token, waiting for one until ctx is done.
func (r *rateLimit) wait(ctx context.Context) error {
	for {
		r.mu.Lock()
		now := time.Now()
		r.tokens = min(r.burst, r.tokens+now.Sub(r.last).Seconds()*r.perSecond)
		r.last = now
		if r.tokens >= 1 {
			r.tokens--
			r.mu.Unlock()
			return nil
		}
		need := time.Duration((1 - r.tokens) / r.perSecond * float64(time.Second))
		r.mu.Unlock()
		t := time.NewTimer(need)
		select {
		case <-ctx.Done():
			t.Stop()
			return ErrBusy
		case <-t.C:
		}
	}
}

// NewHasher returns a Hasher that creates hashes with p and runs at most
// concurrency argon2 computations at once, so a flood of sign-in attempts
// queues instead of exhausting memory and CPU. A concurrency below 1 is
// treated as 1. It panics if p is unusable, which is a programming error.
func NewHasher(p Params, concurrency int) *Hasher {
	if err := p.validate(); err != nil {
		panic(err)
	}
	if concurrency < 1 {
		concurrency = 1
	}
	h := &Hasher{params: p, sem: make(chan struct{}, concurrency)}
	h.dummy = sync.OnceValue(func() string {
		// Verify's cost depends only on the parameters, not on what the
		// hash was made from, so random salt and key bytes serve as well
		// as a real hash and need no argon2 run of their own.
		return encodePHC(p, randomBytes(int(p.SaltLen)), randomBytes(int(p.KeyLen)))
	})
	return h
}

func (p Params) validate() error {
	switch {
	case p.Memory < 8*uint32(p.Threads) || p.Memory > maxMemoryKiB:
		return fmt.Errorf("auth: argon2 memory %d KiB out of range", p.Memory)
	case p.Time < 1 || p.Time > maxTime:
		return fmt.Errorf("auth: argon2 time %d out of range", p.Time)
	case p.Threads < 1:
		return errors.New("auth: argon2 threads must be at least 1")
	case p.KeyLen < minKeyLen || p.KeyLen > maxKeyLen:
		return fmt.Errorf("auth: argon2 key length %d out of range", p.KeyLen)
	case p.SaltLen < minSaltLen || p.SaltLen > maxSaltLen:
		return fmt.Errorf("auth: argon2 salt length %d out of range", p.SaltLen)
	}
	return nil
}

// acquire takes a computation slot, waiting until ctx is done. A free slot is
// taken even if ctx is already done, so an idle server never refuses work.
func (h *Hasher) acquire(ctx context.Context) error {
	if h.rate != nil {
		if err := h.rate.wait(ctx); err != nil {
			return err
		}
	}
	select {
	case h.sem <- struct{}{}:
		return nil
	default:
	}
	select {
	case h.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ErrBusy
	}
}

func (h *Hasher) release() { <-h.sem }

// Hash returns password hashed with a fresh random salt, as a PHC string:
// $argon2id$v=19$m=<KiB>,t=<time>,p=<threads>$<salt>$<key> with unpadded
// standard base64. It returns ErrBusy if no slot frees up before ctx is done.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	p := h.params
	salt := randomBytes(int(p.SaltLen))
	key := h.derive([]byte(password), salt, p)
	return encodePHC(p, salt, key), nil
}

// Verify reports whether password matches encoded. The cost parameters come
// from encoded rather than from the Hasher, so hashes made under older
// parameters keep working. A malformed hash is an error, never a match.
// It returns ErrBusy if no slot frees up before ctx is done.
func (h *Hasher) Verify(ctx context.Context, encoded, password string) (bool, error) {
	p, salt, want, err := decodePHC(encoded)
	if err != nil {
		return false, err
	}
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	defer h.release()
	got := h.derive([]byte(password), salt, p)
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// VerifyDummy does the same work as Verify against a hash made with the
// Hasher's parameters that no password matches. Call it when the username is
// unknown so that the response takes as long as for a wrong password. Like
// Verify it returns ErrBusy when no slot frees up, so an overloaded server
// answers unknown and known usernames alike.
func (h *Hasher) VerifyDummy(ctx context.Context, password string) error {
	_, err := h.Verify(ctx, h.dummy(), password)
	return err
}

// NeedsRehash reports whether encoded was made with parameters other than
// the Hasher's, so the caller should store a fresh hash after a successful
// sign-in. A malformed hash also needs replacing.
func (h *Hasher) NeedsRehash(encoded string) bool {
	p, _, _, err := decodePHC(encoded)
	return err != nil || p != h.params
}

// HashSet hashes a set of secrets that belong together (one user's recovery codes) with
// one shared salt, so that MatchSet checks a typed secret against the whole set with a
// single derivation: a wrong recovery code then costs what one wrong password costs, not
// one derivation per unused code. Sharing a salt within one user's set gives an attacker
// holding the database no more than a tenfold speed-up on codes of 50 bits each.
func (h *Hasher) HashSet(ctx context.Context, secrets []string) ([]string, error) {
	p := h.params
	salt := randomBytes(int(p.SaltLen))
	out := make([]string, len(secrets))
	for i, secret := range secrets {
		if err := h.acquire(ctx); err != nil {
			return nil, err
		}
		key := h.derive([]byte(secret), salt, p)
		h.release()
		out[i] = encodePHC(p, salt, key)
	}
	return out, nil
}

// MatchSet returns the index in encoded of the hash that secret matches, or -1. Hashes
// sharing parameters and salt (a set made by HashSet) cost one derivation together; hashes
// with a salt of their own (sets made before HashSet existed) cost one each. Every
// candidate is compared, so the time taken does not depend on which one matched. A
// malformed hash is an error.
func (h *Hasher) MatchSet(ctx context.Context, encoded []string, secret string) (int, error) {
	type member struct {
		index int
		key   []byte
	}
	type group struct {
		p       Params
		salt    []byte
		members []member
	}
	var groups []*group
	byKey := map[string]*group{}
	for i, e := range encoded {
		p, salt, key, err := decodePHC(e)
		if err != nil {
			return -1, err
		}
		id := fmt.Sprintf("%v/%x", p, salt)
		g := byKey[id]
		if g == nil {
			g = &group{p: p, salt: salt}
			byKey[id] = g
			groups = append(groups, g)
		}
		g.members = append(g.members, member{index: i, key: key})
	}
	match := -1
	for _, g := range groups {
		if err := h.acquire(ctx); err != nil {
			return -1, err
		}
		got := h.derive([]byte(secret), g.salt, g.p)
		h.release()
		for _, m := range g.members {
			if subtle.ConstantTimeCompare(got, m.key) == 1 {
				match = m.index
			}
		}
	}
	return match, nil
}

func (h *Hasher) derive(password, salt []byte, p Params) []byte {
	h.runs.Add(1)
	return argon2.IDKey(password, salt, p.Time, p.Memory, p.Threads, p.KeyLen)
}

func encodePHC(p Params, salt, key []byte) string {
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key))
}

// decodePHC parses a hash written by encodePHC. It is strict (canonical
// numbers, parameters in m,t,p order, no base64 padding or stray bits)
// because the only valid hashes are ones this package wrote.
func decodePHC(encoded string) (Params, []byte, []byte, error) {
	var p Params
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" {
		return p, nil, nil, errMalformedHash
	}
	if parts[1] != "argon2id" {
		return p, nil, nil, fmt.Errorf("auth: unsupported password hash algorithm %q", parts[1])
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, nil, nil, fmt.Errorf("auth: unsupported argon2 version %q", parts[2])
	}
	kv := strings.Split(parts[3], ",")
	if len(kv) != 3 {
		return p, nil, nil, errMalformedHash
	}
	m, err1 := phcNumber(kv[0], "m=", 32)
	t, err2 := phcNumber(kv[1], "t=", 32)
	threads, err3 := phcNumber(kv[2], "p=", 8)
	if err := errors.Join(err1, err2, err3); err != nil {
		return p, nil, nil, errMalformedHash
	}
	b64 := base64.RawStdEncoding.Strict()
	salt, err1 := b64.DecodeString(parts[4])
	key, err2 := b64.DecodeString(parts[5])
	// The decoder skips newlines, so also insist on the canonical encoding.
	if err1 != nil || err2 != nil ||
		b64.EncodeToString(salt) != parts[4] || b64.EncodeToString(key) != parts[5] {
		return p, nil, nil, errMalformedHash
	}
	p = Params{
		Memory:  uint32(m),
		Time:    uint32(t),
		Threads: uint8(threads),
		KeyLen:  uint32(len(key)),
		SaltLen: uint32(len(salt)),
	}
	if err := p.validate(); err != nil {
		return Params{}, nil, nil, fmt.Errorf("%w: parameters out of range", errMalformedHash)
	}
	return p, salt, key, nil
}

// phcNumber parses "name=digits" in canonical decimal form.
func phcNumber(s, name string, bits int) (uint64, error) {
	digits, ok := strings.CutPrefix(s, name)
	if !ok {
		return 0, errMalformedHash
	}
	n, err := strconv.ParseUint(digits, 10, bits)
	if err != nil || strconv.FormatUint(n, 10) != digits {
		return 0, errMalformedHash
	}
	return n, nil
}

// randomBytes returns n bytes from crypto/rand, which never fails on
// supported platforms.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}
