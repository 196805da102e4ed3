package views

import (
	"net/url"
	"strings"
)

// bodyPart is a piece of a notice body: text, a link, or a line break.
type bodyPart struct {
	Text  string
	URL   string
	Break bool
}

// splitBody turns plain text into parts: line breaks become breaks and bare http(s) URLs
// become links; everything else stays text, escaped when rendered. No markup in the body
// is ever interpreted.
func splitBody(s string) []bodyPart {
	var parts []bodyPart
	lines := strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
	for i, line := range lines {
		if i > 0 {
			parts = append(parts, bodyPart{Break: true})
		}
		parts = append(parts, linkify(line)...)
	}
	return parts
}

func linkify(line string) []bodyPart {
	var parts []bodyPart
	for line != "" {
		start := indexURL(line)
		if start < 0 {
			parts = append(parts, bodyPart{Text: line})
			break
		}
		end := start + strings.IndexFunc(line[start:], func(r rune) bool {
			return r == ' ' || r == '\t' || r == '<' || r == '>' || r == '"' || r == '\'' || r == '`' || r < 0x20
		})
		if end < start {
			end = len(line)
		}
		// Trailing punctuation belongs to the sentence, not the link.
		for end > start && strings.ContainsRune(".,;:!?)]}", rune(line[end-1])) {
			end--
		}
		candidate := line[start:end]
		if u, err := url.Parse(candidate); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
			if start > 0 {
				parts = append(parts, bodyPart{Text: line[:start]})
			}
			parts = append(parts, bodyPart{URL: candidate, Text: candidate})
		} else {
			parts = append(parts, bodyPart{Text: line[:end]})
		}
		if end == start { // nothing consumed: emit one byte as text to make progress
			end = start + 1
			parts = append(parts, bodyPart{Text: line[start:end]})
		}
		line = line[end:]
	}
	return parts
}

// indexURL finds the next "http://" or "https://" (any case). Only ASCII letters are
// folded, so byte offsets in the folded copy are offsets in s.
func indexURL(s string) int {
	folded := []byte(s)
	for i, c := range folded {
		if c >= 'A' && c <= 'Z' {
			folded[i] = c + ('a' - 'A')
		}
	}
	lower := string(folded)
	a, b := strings.Index(lower, "http://"), strings.Index(lower, "https://")
	switch {
	case a < 0:
		return b
	case b < 0:
		return a
	default:
		return min(a, b)
	}
}
