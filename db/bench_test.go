package db

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkSessionLookup is the read every authenticated request starts with, on a store
// holding many sessions.
func BenchmarkSessionLookup(b *testing.B) {
	ctx := context.Background()
	d := openTest(b)
	var hashes [][]byte
	for i := 0; i < 200; i++ {
		u := mkUser(b, d, fmt.Sprintf("user%03d", i))
		for j := 0; j < 5; j++ {
			h := newTokenHash(b)
			if _, err := d.StartSession(ctx, NewSession{TokenHash: h, UserID: u.ID, Stage: StageFull}, Event{At: time.Now()}); err != nil {
				b.Fatal(err)
			}
			hashes = append(hashes, h)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, _, err := d.SessionByTokenHash(ctx, hashes[i%len(hashes)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkChangeSignal is what the change signal costs a request: Generation is what a
// copy kept in memory asks on every request; Check is the exact ask a copy can make when
// it must be right at the very next request (one PRAGMA on the signal's own connection,
// under its lock), alone and from every core at once.
func BenchmarkChangeSignal(b *testing.B) {
	ctx := context.Background()
	d := openTest(b)
	mkUser(b, d, "alice")
	if _, err := d.Changes().Check(ctx); err != nil {
		b.Fatal(err)
	}
	b.Run("generation", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = d.Changes().Generation()
		}
	})
	b.Run("check", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := d.Changes().Check(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("check parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := d.Changes().Check(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
