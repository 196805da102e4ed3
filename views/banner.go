package views

import (
	"context"
	"html"
	"io"
	"strconv"
	"strings"

	"github.com/a-h/templ"

	"gatehouse/db"
)

// Banner is a current notice on a page, with its button. It is written here rather than in
// a template because it is on every signed-in page, and each value a template writes costs
// allocations; every value is escaped as a template would escape it.
func Banner(p Page, n db.Notice) templ.Component {
	return templ.ComponentFunc(func(_ context.Context, w io.Writer) error {
		var b strings.Builder
		b.Grow(512 + len(n.Title)*2 + len(n.Body)*2)
		b.WriteString(`<section class="banner ` + html.EscapeString(n.Severity) + `" aria-label="` +
			html.EscapeString(bannerLabel(n)) + `" data-notice-id="` + strconv.FormatInt(n.ID, 10) +
			`" data-must-read="` + strconv.FormatBool(n.MustRead()) + `">`)
		writeBannerContent(&b, p, n, true)
		b.WriteString(`</section>`)
		_, err := io.WriteString(w, b.String())
		return err
	})
}

// bannerContent is what a banner and its preview share: the title, the body and, on a live
// banner, the form that acknowledges or dismisses it.
func bannerContent(p Page, n db.Notice, live bool) templ.Component {
	return templ.ComponentFunc(func(_ context.Context, w io.Writer) error {
		var b strings.Builder
		writeBannerContent(&b, p, n, live)
		_, err := io.WriteString(w, b.String())
		return err
	})
}

func writeBannerContent(b *strings.Builder, p Page, n db.Notice, live bool) {
	b.WriteString(`<h2>`)
	if n.MustRead() {
		b.WriteString(`<span class="tag">Must read</span> `)
	}
	title := html.EscapeString(n.Title)
	if live {
		b.WriteString(`<a href="` + string(noticeURL(n.ID, "")) + `">` + title + `</a>`)
	} else {
		b.WriteString(title)
	}
	b.WriteString(`</h2><div class="notice-body">` + renderedBodies.html(n.Body) + `</div>`)
	if !live {
		return
	}
	action, button := "dismiss", `<button type="submit" class="secondary">Dismiss</button>`
	if n.MustRead() {
		action, button = "ack", `<button type="submit">I have read this</button>`
	}
	b.WriteString(`<form method="post" action="` + string(noticeURL(n.ID, action)) + `"><input type="hidden" name="_csrf" value="` +
		html.EscapeString(p.CSRF) + `"><input type="hidden" name="return" value="` + html.EscapeString(p.Path) + `"> ` +
		button + `</form>`)
}
