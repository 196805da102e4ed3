package views

import (
	"bytes"
	"context"
	"testing"

	"gatehouse/db"
)

// The banner is written by hand, so its markup is pinned here: every value escaped, the
// body's links made, the form of its kind with the page's CSRF token and return path.
func TestBannerMarkup(t *testing.T) {
	p := Page{CSRF: "tok&<\"en", Path: "/?next=%2Fa&b=\"c\""}
	for _, tc := range []struct {
		n             db.Notice
		live, preview string
	}{
		{db.Notice{ID: 7, Title: "VPN <move> & \"more\"", Body: "Line one https://example.com/a?b=1&c=2.\nLine <two>",
			Kind: db.NoticeMustRead, Severity: db.SeverityWarning},
			"<section class=\"banner warning\" aria-label=\"Must read: VPN &lt;move&gt; &amp; &#34;more&#34;\" data-notice-id=\"7\" data-must-read=\"true\"><h2><span class=\"tag\">Must read</span> <a href=\"/notices/7\">VPN &lt;move&gt; &amp; &#34;more&#34;</a></h2><div class=\"notice-body\">Line one <a href=\"https://example.com/a?b=1&amp;c=2\" rel=\"noopener noreferrer nofollow\">https://example.com/a?b=1&amp;c=2</a>.<br>Line &lt;two&gt;</div><form method=\"post\" action=\"/notices/7/ack\"><input type=\"hidden\" name=\"_csrf\" value=\"tok&amp;&lt;&#34;en\"><input type=\"hidden\" name=\"return\" value=\"/?next=%2Fa&amp;b=&#34;c&#34;\"> <button type=\"submit\">I have read this</button></form></section>",
			"<section class=\"banner warning\" aria-label=\"Preview: VPN &lt;move&gt; &amp; &#34;more&#34;\"><h2><span class=\"tag\">Must read</span> VPN &lt;move&gt; &amp; &#34;more&#34;</h2><div class=\"notice-body\">Line one <a href=\"https://example.com/a?b=1&amp;c=2\" rel=\"noopener noreferrer nofollow\">https://example.com/a?b=1&amp;c=2</a>.<br>Line &lt;two&gt;</div></section>"},
		{db.Notice{ID: 8, Title: "Lunch", Body: "Pizza", Kind: db.NoticeNormal, Severity: db.SeverityInfo},
			"<section class=\"banner info\" aria-label=\"Notice: Lunch\" data-notice-id=\"8\" data-must-read=\"false\"><h2><a href=\"/notices/8\">Lunch</a></h2><div class=\"notice-body\">Pizza</div><form method=\"post\" action=\"/notices/8/dismiss\"><input type=\"hidden\" name=\"_csrf\" value=\"tok&amp;&lt;&#34;en\"><input type=\"hidden\" name=\"return\" value=\"/?next=%2Fa&amp;b=&#34;c&#34;\"> <button type=\"submit\" class=\"secondary\">Dismiss</button></form></section>",
			"<section class=\"banner info\" aria-label=\"Preview: Lunch\"><h2>Lunch</h2><div class=\"notice-body\">Pizza</div></section>"},
	} {
		var live, preview bytes.Buffer
		if err := Banner(p, tc.n).Render(context.Background(), &live); err != nil {
			t.Fatal(err)
		}
		if err := BannerPreview(tc.n).Render(context.Background(), &preview); err != nil {
			t.Fatal(err)
		}
		if live.String() != tc.live {
			t.Errorf("banner of notice %d:\n got %q\nwant %q", tc.n.ID, live.String(), tc.live)
		}
		if preview.String() != tc.preview {
			t.Errorf("preview of notice %d:\n got %q\nwant %q", tc.n.ID, preview.String(), tc.preview)
		}
	}
}
