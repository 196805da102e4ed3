package db

import (
	"testing"

	"gatehouse/internal/dbtest"
)

func TestMain(m *testing.M) { dbtest.RunBoth(m) }
