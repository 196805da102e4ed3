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
