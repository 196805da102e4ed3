package db

import "testing"

func TestRewritePlaceholders(t *testing.T) {
	for in, want := range map[string]string{
		`SELECT ? , ?`:      `SELECT $1 , $2`,
		`SELECT ?1, ?2, ?1`: `SELECT $1, $2, $1`,
		`SELECT '?', "a?b", ? -- why?` + "\n" + `, ?`: `SELECT '?', "a?b", $1 -- why?` + "\n" + `, $2`,
		`SELECT 'it''s ?', ? /* ? */ , ?`:             `SELECT 'it''s ?', $1 /* ? */ , $2`,
		`DO $$ BEGIN RAISE '?'; END $$; SELECT ?`:     `DO $$ BEGIN RAISE '?'; END $$; SELECT $1`,
		`SELECT $tag$ ? $tag$, ?`:                     `SELECT $tag$ ? $tag$, $1`,
		`SELECT 1`:                                    `SELECT 1`,
		`SELECT 'open ?`:                              `SELECT 'open ?`,
	} {
		if got := rewritePlaceholders(in); got != want {
			t.Errorf("rewrite %q = %q, want %q", in, got, want)
		}
	}
}
