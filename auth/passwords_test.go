package auth

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// cheapParams keep argon2 fast in tests; only one test uses DefaultParams.
var cheapParams = Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}

func newTestHasher(tb testing.TB, concurrency int) *Hasher {
	tb.Helper()
	return NewHasher(cheapParams, concurrency)
}

func mustHash(tb testing.TB, h *Hasher, password string) string {
	tb.Helper()
	encoded, err := h.Hash(context.Background(), password)
	if err != nil {
		tb.Fatalf("Hash: %v", err)
	}
	return encoded
}

func mustVerify(tb testing.TB, h *Hasher, encoded, password string) bool {
	tb.Helper()
	ok, err := h.Verify(context.Background(), encoded, password)
	if err != nil {
		tb.Fatalf("Verify: %v", err)
	}
	return ok
}

// cancelled returns a context that is already done.
func cancelled(tb testing.TB) context.Context {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func TestHasher(t *testing.T) {
	h := newTestHasher(t, 2)

	t.Run("a hash verifies with its password and not with another", func(t *testing.T) {
		encoded := mustHash(t, h, "correct horse battery staple")
		if !mustVerify(t, h, encoded, "correct horse battery staple") {
			t.Error("right password did not verify")
		}
		if mustVerify(t, h, encoded, "correct horse battery stapler") {
			t.Error("wrong password verified")
		}
		if mustVerify(t, h, encoded, "") {
			t.Error("empty password verified")
		}
	})

	t.Run("a hash is a PHC string with the hasher's parameters", func(t *testing.T) {
		encoded := mustHash(t, h, "some password here")
		const prefix = "$argon2id$v=19$m=64,t=1,p=1$"
		if !strings.HasPrefix(encoded, prefix) {
			t.Fatalf("hash %q does not start with %q", encoded, prefix)
		}
		fields := strings.Split(strings.TrimPrefix(encoded, prefix), "$")
		// 16 and 32 bytes are 22 and 43 characters of unpadded base64.
		if len(fields) != 2 || len(fields[0]) != 22 || len(fields[1]) != 43 {
			t.Errorf("salt and key fields %q have the wrong lengths", fields)
		}
		if strings.Contains(fields[0]+fields[1], "=") {
			t.Errorf("hash %q contains base64 padding", encoded)
		}
	})

	t.Run("two hashes of the same password differ", func(t *testing.T) {
		a := mustHash(t, h, "same password twice")
		b := mustHash(t, h, "same password twice")
		if a == b {
			t.Fatalf("both hashes are %q", a)
		}
		if !mustVerify(t, h, a, "same password twice") || !mustVerify(t, h, b, "same password twice") {
			t.Error("one of the hashes does not verify")
		}
	})

	t.Run("a long password is not truncated", func(t *testing.T) {
		long := strings.Repeat("abcdefghij", 20)
		encoded := mustHash(t, h, long)
		if !mustVerify(t, h, encoded, long) {
			t.Fatal("200-character password did not verify")
		}
		if mustVerify(t, h, encoded, long[:199]) {
			t.Error("199-character prefix verified against the 200-character password")
		}
		if mustVerify(t, h, encoded, long+"k") {
			t.Error("201-character extension verified")
		}
	})

	t.Run("unicode and emoji passwords round trip", func(t *testing.T) {
		for _, pw := range []string{"pässwörd mit Ümlaut", "пароль пароль", "🔑🦊🌍 keys & foxes", "密码密码密码密码密码密码"} {
			encoded := mustHash(t, h, pw)
			if !mustVerify(t, h, encoded, pw) {
				t.Errorf("%q did not verify", pw)
			}
		}
		// Composed and decomposed forms are different bytes and stay different.
		encoded := mustHash(t, h, "caf\u00e9 caf\u00e9 caf\u00e9")
		if mustVerify(t, h, encoded, "cafe\u0301 cafe\u0301 cafe\u0301") {
			t.Error("decomposed form verified against composed form")
		}
	})

	t.Run("verify uses the parameters stored in the hash", func(t *testing.T) {
		old := NewHasher(Params{Memory: 32, Time: 2, Threads: 1, KeyLen: 16, SaltLen: 8}, 1)
		encoded := mustHash(t, old, "hashed under old params")
		if !strings.HasPrefix(encoded, "$argon2id$v=19$m=32,t=2,p=1$") {
			t.Fatalf("unexpected hash %q", encoded)
		}
		if !mustVerify(t, h, encoded, "hashed under old params") {
			t.Error("hash made with other parameters did not verify")
		}
		if mustVerify(t, h, encoded, "hashed under new params") {
			t.Error("wrong password verified against old hash")
		}
	})

	t.Run("NeedsRehash compares stored parameters with the hasher's", func(t *testing.T) {
		current := mustHash(t, h, "a password for rehash")
		if h.NeedsRehash(current) {
			t.Error("hash with current parameters needs rehash")
		}
		variants := map[string]Params{
			"memory":  {Memory: 128, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16},
			"time":    {Memory: 64, Time: 2, Threads: 1, KeyLen: 32, SaltLen: 16},
			"threads": {Memory: 64, Time: 1, Threads: 2, KeyLen: 32, SaltLen: 16},
			"key":     {Memory: 64, Time: 1, Threads: 1, KeyLen: 16, SaltLen: 16},
			"salt":    {Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 8},
		}
		for name, p := range variants {
			encoded := mustHash(t, NewHasher(p, 1), "a password for rehash")
			if !h.NeedsRehash(encoded) {
				t.Errorf("hash with different %s does not need rehash", name)
			}
		}
		if !h.NeedsRehash("not a hash") {
			t.Error("malformed hash does not need rehash")
		}
	})
}

func TestHasherDefaultParams(t *testing.T) {
	t.Run("a default hash starts with the OWASP parameters", func(t *testing.T) {
		h := NewHasher(DefaultParams, 1)
		encoded := mustHash(t, h, "the one expensive hash in the suite")
		const prefix = "$argon2id$v=19$m=12288,t=3,p=1$"
		if !strings.HasPrefix(encoded, prefix) {
			t.Errorf("hash %q does not start with %q", encoded, prefix)
		}
		if h.NeedsRehash(encoded) {
			t.Error("fresh default hash needs rehash")
		}
	})
}

func TestHasherMalformed(t *testing.T) {
	h := newTestHasher(t, 1)
	good := mustHash(t, h, "a valid password")
	parts := strings.Split(good, "$")
	salt, key := parts[4], parts[5]
	with := func(params string) string {
		return "$argon2id$v=19$" + params + "$" + salt + "$" + key
	}

	cases := map[string]string{
		"empty":                     "",
		"plain text":                "a valid password",
		"only dollars":              "$$$$$",
		"bcrypt hash":               "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
		"argon2i":                   strings.Replace(good, "argon2id", "argon2i", 1),
		"argon2d":                   strings.Replace(good, "argon2id", "argon2d", 1),
		"old version":               strings.Replace(good, "v=19", "v=16", 1),
		"missing version":           "$argon2id$m=64,t=1,p=1$" + salt + "$" + key,
		"missing key":               "$argon2id$v=19$m=64,t=1,p=1$" + salt,
		"extra field":               good + "$" + key,
		"leading text":              "x" + good,
		"trailing newline":          good + "\n",
		"newline inside the key":    "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key[:10] + "\n" + key[10:],
		"parameters reordered":      with("t=1,m=64,p=1"),
		"parameter missing":         with("m=64,t=1"),
		"parameter repeated":        with("m=64,t=1,p=1,p=1"),
		"non-numeric memory":        with("m=lots,t=1,p=1"),
		"negative time":             with("m=64,t=-1,p=1"),
		"plus sign":                 with("m=+64,t=1,p=1"),
		"leading zero":              with("m=064,t=1,p=1"),
		"space in parameters":       with("m=64, t=1,p=1"),
		"memory overflows uint32":   with("m=4294967296,t=1,p=1"),
		"threads overflow uint8":    with("m=64,t=1,p=256"),
		"zero time":                 with("m=64,t=0,p=1"),
		"zero threads":              with("m=64,t=1,p=0"),
		"memory below 8 per thread": with("m=8,t=1,p=2"),
		"absurd memory":             with("m=4294967295,t=1,p=1"),
		"absurd time":               with("m=64,t=100000,p=1"),
		"salt not base64":           "$argon2id$v=19$m=64,t=1,p=1$!!!!$" + key,
		"padded salt":               "$argon2id$v=19$m=64,t=1,p=1$" + salt + "==$" + key,
		"url-safe alphabet":         "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + "-_" + key[2:],
		"salt too short":            "$argon2id$v=19$m=64,t=1,p=1$AAAA$" + key,
		"key too short":             "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$AAAA",
		"empty key":                 "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$",
	}
	for name, encoded := range cases {
		t.Run("a hash with "+name+" is an error", func(t *testing.T) {
			ok, err := h.Verify(context.Background(), encoded, "a valid password")
			if err == nil {
				t.Fatalf("Verify(%q) returned no error", encoded)
			}
			if ok {
				t.Error("malformed hash verified")
			}
			if !strings.HasPrefix(err.Error(), "auth: ") {
				t.Errorf("error %q lacks the auth: prefix", err)
			}
			if !h.NeedsRehash(encoded) {
				t.Error("malformed hash does not need rehash")
			}
		})
	}

	t.Run("the untouched hash is accepted", func(t *testing.T) {
		if !mustVerify(t, h, good, "a valid password") {
			t.Error("control hash did not verify")
		}
	})
}

func TestHasherConcurrency(t *testing.T) {
	t.Run("a held slot and a cancelled context give ErrBusy", func(t *testing.T) {
		h := newTestHasher(t, 1)
		encoded := mustHash(t, h, "password for busy test")
		h.sem <- struct{}{} // occupy the only slot
		defer h.release()

		if _, err := h.Hash(cancelled(t), "password for busy test"); !errors.Is(err, ErrBusy) {
			t.Errorf("Hash error = %v, want ErrBusy", err)
		}
		ok, err := h.Verify(cancelled(t), encoded, "password for busy test")
		if !errors.Is(err, ErrBusy) || ok {
			t.Errorf("Verify = %v, %v, want false, ErrBusy", ok, err)
		}
	})

	t.Run("a deadline that passes while waiting gives ErrBusy", func(t *testing.T) {
		h := newTestHasher(t, 1)
		h.sem <- struct{}{}
		defer h.release()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		start := time.Now()
		if _, err := h.Hash(ctx, "password for deadline test"); !errors.Is(err, ErrBusy) {
			t.Errorf("Hash error = %v, want ErrBusy", err)
		}
		if waited := time.Since(start); waited < 20*time.Millisecond {
			t.Errorf("gave up after %v, before the deadline", waited)
		}
	})

	t.Run("VerifyDummy gives up like Verify when busy", func(t *testing.T) {
		h := newTestHasher(t, 1)
		h.sem <- struct{}{}
		defer h.release()
		done := make(chan struct{})
		go func() {
			h.VerifyDummy(cancelled(t), "anything")
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("VerifyDummy blocked despite a cancelled context")
		}
	})

	t.Run("a waiting call runs once a slot frees up", func(t *testing.T) {
		h := newTestHasher(t, 1)
		h.sem <- struct{}{}
		result := make(chan error, 1)
		go func() {
			_, err := h.Hash(context.Background(), "password for waiting test")
			result <- err
		}()
		select {
		case err := <-result:
			t.Fatalf("Hash finished (%v) while the only slot was held", err)
		case <-time.After(50 * time.Millisecond):
		}
		h.release()
		select {
		case err := <-result:
			if err != nil {
				t.Errorf("Hash after release: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Hash still waiting after the slot was released")
		}
	})

	t.Run("slots are returned after every call", func(t *testing.T) {
		h := newTestHasher(t, 1)
		encoded := mustHash(t, h, "pw")
		// With one slot, any leak would make the next call with a
		// cancelled context fail.
		for i := range 5 {
			if _, err := h.Hash(cancelled(t), "pw"); err != nil {
				t.Fatalf("Hash %d: %v", i, err)
			}
			if _, err := h.Verify(cancelled(t), encoded, "pw"); err != nil {
				t.Fatalf("Verify %d: %v", i, err)
			}
			h.VerifyDummy(cancelled(t), "pw")
		}
		if len(h.sem) != 0 {
			t.Errorf("%d slots still held", len(h.sem))
		}
	})

	t.Run("parallel calls beyond the limit all complete", func(t *testing.T) {
		h := newTestHasher(t, 2)
		errs := make(chan error, 8)
		for range 8 {
			go func() {
				_, err := h.Hash(context.Background(), "parallel password")
				errs <- err
			}()
		}
		for range 8 {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
	})

	t.Run("a concurrency below one means one", func(t *testing.T) {
		if c := cap(NewHasher(cheapParams, 0).sem); c != 1 {
			t.Errorf("capacity = %d, want 1", c)
		}
		if c := cap(NewHasher(cheapParams, -3).sem); c != 1 {
			t.Errorf("capacity = %d, want 1", c)
		}
	})
}

func TestVerifyDummy(t *testing.T) {
	h := newTestHasher(t, 1)

	t.Run("the dummy hash uses the hasher's parameters and is fixed", func(t *testing.T) {
		d := h.dummy()
		p, _, _, err := decodePHC(d)
		if err != nil {
			t.Fatalf("dummy hash %q does not parse: %v", d, err)
		}
		if p != cheapParams {
			t.Errorf("dummy params = %+v, want %+v", p, cheapParams)
		}
		if h.dummy() != d {
			t.Error("dummy hash changed between calls")
		}
		if NewHasher(cheapParams, 1).dummy() == d {
			t.Error("two hashers share a dummy hash")
		}
	})

	t.Run("VerifyDummy runs and releases its slot", func(t *testing.T) {
		h.VerifyDummy(context.Background(), "whatever the user typed")
		if len(h.sem) != 0 {
			t.Error("VerifyDummy kept its slot")
		}
	})
}

func TestNewHasherRejectsUnusableParams(t *testing.T) {
	bad := map[string]Params{
		"zero value":     {},
		"zero time":      {Memory: 64, Time: 0, Threads: 1, KeyLen: 32, SaltLen: 16},
		"zero threads":   {Memory: 64, Time: 1, Threads: 0, KeyLen: 32, SaltLen: 16},
		"tiny key":       {Memory: 64, Time: 1, Threads: 1, KeyLen: 4, SaltLen: 16},
		"tiny salt":      {Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 4},
		"too little mem": {Memory: 7, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16},
	}
	for name, p := range bad {
		t.Run("NewHasher panics on "+name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			NewHasher(p, 1)
		})
	}
}

func TestRateLimitBoundsChecksPerSecond(t *testing.T) {
	h := NewHasher(Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}, 4)
	h.LimitRate(20, 2)
	ctx := context.Background()
	start := time.Now()
	for i := 0; i < 6; i++ { // a burst of 2, then 4 more at 20/s: at least 200 ms
		if _, err := h.Hash(ctx, "password"); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("6 checks took %v; the rate limit did not hold", d)
	}
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	for i := 0; i < 3; i++ {
		if _, err := h.Hash(short, "password"); errors.Is(err, ErrBusy) {
			return
		}
	}
	t.Fatal("an exhausted bucket never answered ErrBusy within the deadline")
}

func TestHashSetMatchesWithOneDerivation(t *testing.T) {
	ctx := context.Background()
	h := newTestHasher(t, 1)
	secrets := []string{"aaaaa22222", "bbbbb33333", "ccccc44444", "ddddd55555"}
	set, err := h.HashSet(ctx, secrets)
	if err != nil {
		t.Fatal(err)
	}
	if len(set) != len(secrets) || set[0] == set[1] {
		t.Fatalf("HashSet = %q", set)
	}
	for i, s := range secrets {
		if ok, err := h.Verify(ctx, set[i], s); err != nil || !ok {
			t.Errorf("Verify(set[%d], %q) = %v, %v; each hash must still verify on its own", i, s, ok, err)
		}
	}
	tests := []struct {
		name   string
		secret string
		want   int
	}{
		{"the first one", "aaaaa22222", 0},
		{"the last one", "ddddd55555", 3},
		{"a wrong one", "eeeee66666", -1},
		{"an empty one", "", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.Computations()
			got, err := h.MatchSet(ctx, set, tt.secret)
			if err != nil || got != tt.want {
				t.Errorf("MatchSet(%q) = %d, %v; want %d", tt.secret, got, err, tt.want)
			}
			if n := h.Computations() - before; n != 1 {
				t.Errorf("MatchSet cost %d derivations, want 1", n)
			}
		})
	}
	t.Run("hashes with a salt each still match, at one derivation each", func(t *testing.T) {
		legacy := []string{mustHash(t, h, "aaaaa22222"), mustHash(t, h, "bbbbb33333")}
		before := h.Computations()
		if got, err := h.MatchSet(ctx, legacy, "bbbbb33333"); err != nil || got != 1 {
			t.Errorf("MatchSet = %d, %v; want 1", got, err)
		}
		if n := h.Computations() - before; n != 2 {
			t.Errorf("cost %d derivations, want 2", n)
		}
	})
	t.Run("a malformed hash is an error, never a match", func(t *testing.T) {
		if got, err := h.MatchSet(ctx, []string{set[0], "$argon2id$garbage"}, "aaaaa22222"); err == nil || got != -1 {
			t.Errorf("MatchSet = %d, %v; want -1 and an error", got, err)
		}
	})
}
