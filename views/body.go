package views

import (
	"context"
	"html"
	"io"
	"net/url"
	"strings"
	"sync"

	"github.com/a-h/templ"
)

// NoticeBody renders plain text with line breaks and bare links. It writes escaped text
// directly instead of going through a template expression per piece, because it runs for
// every banner on every page; html.EscapeString escapes the five characters that matter in
// text and in a quoted attribute, and links are only ever http(s) URLs without quotes,
// angle brackets or spaces.
func NoticeBody(body string) templ.Component {
	return templ.ComponentFunc(func(_ context.Context, w io.Writer) error {
		_, err := io.WriteString(w, renderedBodies.html(body))
		return err
	})
}

// renderedBodies keeps the HTML of recent notice bodies: the same few banners are on every
// page, and their HTML depends on the text alone, so each is worked out once.
var renderedBodies = bodyCache{m: map[string]string{}}

// bodyCacheSize bounds the kept bodies; when full, the cache starts over empty.
const bodyCacheSize = 256

type bodyCache struct {
	mu sync.Mutex
	m  map[string]string
}

func (bc *bodyCache) html(body string) string {
	bc.mu.Lock()
	defer bc.mu.Unlock()
	if h, ok := bc.m[body]; ok {
		return h
	}
	h := bodyHTML(body)
	if len(bc.m) >= bodyCacheSize {
		clear(bc.m)
	}
	bc.m[body] = h
	return h
}

// bodyHTML is the HTML of a notice body.
func bodyHTML(body string) string {
	var b strings.Builder
	for _, part := range splitBody(body) {
		switch {
		case part.Break:
			b.WriteString("<br>")
		case part.URL != "":
			b.WriteString(`<a href="` + html.EscapeString(part.URL) + `" rel="noopener noreferrer nofollow">` +
				html.EscapeString(part.Text) + "</a>")
		default:
			b.WriteString(html.EscapeString(part.Text))
		}
	}
	return b.String()
}

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
