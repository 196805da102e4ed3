package views

import (
	"context"
	"html"
	"io"
	"strconv"

	"github.com/a-h/templ"

	"gatehouse/db"
)

// Banner is a current notice on a page, with its button. It is written here rather than in
// a template because it is on every signed-in page, and each value a template writes costs
// allocations; every value is escaped as a template would escape it.
func Banner(p Page, n db.Notice) templ.Component {
	return templ.ComponentFunc(func(_ context.Context, w io.Writer) error {
		bw := bannerWriter{w: w, id: strconv.FormatInt(n.ID, 10)}
		bw.put(`<section class="banner `, html.EscapeString(n.Severity), `" aria-label="`)
		if n.MustRead() {
			bw.put("Must read: ", html.EscapeString(n.Title))
		} else {
			bw.put("Notice: ", html.EscapeString(n.Title))
		}
		bw.put(`" data-notice-id="`, bw.id, `" data-must-read="`, strconv.FormatBool(n.MustRead()), `">`)
		bw.content(p, n, true)
		bw.put(`</section>`)
		return bw.err
	})
}

// bannerContent is what a banner and its preview share: the title, the body and, on a live
// banner, the form that acknowledges or dismisses it.
func bannerContent(p Page, n db.Notice, live bool) templ.Component {
	return templ.ComponentFunc(func(_ context.Context, w io.Writer) error {
		bw := bannerWriter{w: w, id: strconv.FormatInt(n.ID, 10)}
		bw.content(p, n, live)
		return bw.err
	})
}

// bannerWriter writes the pieces of one notice's markup, keeping the first error.
type bannerWriter struct {
	w   io.Writer
	id  string // the notice's
	err error
}

func (bw *bannerWriter) put(pieces ...string) {
	for _, s := range pieces {
		if bw.err == nil {
			_, bw.err = io.WriteString(bw.w, s)
		}
	}
}

func (bw *bannerWriter) content(p Page, n db.Notice, live bool) {
	bw.put(`<h2>`)
	if n.MustRead() {
		bw.put(`<span class="tag">Must read</span> `)
	}
	title := html.EscapeString(n.Title)
	if live {
		bw.put(`<a href="/notices/`, bw.id, `">`, title, `</a>`)
	} else {
		bw.put(title)
	}
	bw.put(`</h2><div class="notice-body">`, renderedBodies.html(n.Body), `</div>`)
	if !live {
		return
	}
	action, button := "dismiss", `<button type="submit" class="secondary">Dismiss</button>`
	if n.MustRead() {
		action, button = "ack", `<button type="submit">I have read this</button>`
	}
	bw.put(`<form method="post" action="/notices/`, bw.id, `/`, action, `"><input type="hidden" name="_csrf" value="`,
		html.EscapeString(p.CSRF), `"><input type="hidden" name="return" value="`, html.EscapeString(p.Path), `"> `,
		button, `</form>`)
}
