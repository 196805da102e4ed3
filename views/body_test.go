package views

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func renderBody(t testing.TB, s string) string {
	t.Helper()
	var buf bytes.Buffer
	if err := NoticeBody(s).Render(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestNoticeBodyIsInert(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
		never    []string
	}{
		{"script tags are escaped", `<script>alert(1)</script>`, []string{"&lt;script&gt;"}, []string{"<script"}},
		{"event handlers stay text", `<img src=x onerror=alert(1)>`, []string{"&lt;img"}, []string{"<img"}},
		{"attribute breakout stays text", `"><svg onload=alert(1)>`, []string{"&#34;&gt;&lt;svg"}, []string{"<svg"}},
		{"javascript links are not linked", `[x](javascript:alert(1)) <a href="JaVaScRiPt:alert(1)">`, nil, []string{`href="javascript`, `href="JaVaScRiPt`, "<a href=\"JaVa"}},
		{"bare URLs become links", "See https://example.com/a?b=1&c=2.", []string{`<a href="https://example.com/a?b=1&amp;c=2" rel="noopener noreferrer nofollow">https://example.com/a?b=1&amp;c=2</a>.`}, nil},
		{"line breaks are kept", "one\ntwo\r\nthree", []string{"one<br>two<br>three"}, nil},
		{"a URL cannot smuggle a quote", `https://x.example/"onmouseover="alert(1)`, []string{`href="https://x.example/"`}, []string{`onmouseover="alert`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := renderBody(t, tc.in)
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("missing %q in %q", w, out)
				}
			}
			for _, n := range tc.never {
				if strings.Contains(out, n) {
					t.Errorf("found %q in %q", n, out)
				}
			}
		})
	}
}

func FuzzSplitBody(f *testing.F) {
	for _, s := range []string{"", "a\nb", "http://x", "see https://a.b/c, then", "<b>https://e.com/\"x</b>", "hTTps://x.y", "http://"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var text strings.Builder
		for _, p := range splitBody(s) {
			if p.Break {
				text.WriteByte('\n')
				continue
			}
			if p.URL != "" && !(strings.HasPrefix(strings.ToLower(p.URL), "http://") || strings.HasPrefix(strings.ToLower(p.URL), "https://")) {
				t.Fatalf("link %q is not http(s)", p.URL)
			}
			if strings.ContainsAny(p.URL, "\"'<> ") {
				t.Fatalf("link %q carries a quote, bracket or space", p.URL)
			}
			text.WriteString(p.Text)
		}
		if want := strings.ReplaceAll(s, "\r\n", "\n"); text.String() != want {
			t.Fatalf("parts lose text: %q → %q", s, text.String())
		}
	})
}
