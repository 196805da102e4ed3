package db

import (
	"strings"
	"testing"
)

// The host field's bound is the rule's own: the longest host the rule reads fits in
// MaxAppHostInput and comes back as MaxAppHostLen; a longer name is refused.
func TestAppHostBoundsAreTheRules(t *testing.T) {
	label := strings.Repeat("a", 63)
	name := strings.Join([]string{label, label, label, strings.Repeat("b", 61)}, ".") // 253 characters
	longest := name + ".:65535"
	if len(longest) != MaxAppHostInput {
		t.Fatalf("the longest input is %d characters, MaxAppHostInput %d", len(longest), MaxAppHostInput)
	}
	got, err := ParseAppHost(longest)
	if err != nil || len(got) != MaxAppHostLen {
		t.Fatalf("ParseAppHost(longest) = %d characters, %v; want %d", len(got), err, MaxAppHostLen)
	}
	if _, err := ParseAppHost("c" + longest); err == nil {
		t.Errorf("a %d-character name was accepted", len(name)+1)
	}
}
