package views

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/a-h/templ"

	"gatehouse/db"
)

// Mail is the content of one mail: the subject, the plain text, and the short HTML
// alternative rendered by the components of mail.templ.
type Mail struct {
	Subject string
	Text    string
	HTML    string
}

func renderString(c templ.Component) (string, error) {
	var b bytes.Buffer
	if err := c.Render(context.Background(), &b); err != nil {
		return "", fmt.Errorf("views: mail: %w", err)
	}
	return b.String(), nil
}

// mailFooter ends every plain-text mail, as mailLayout ends the HTML.
const mailFooter = "\n\n-- \nSent by Gatehouse. This mail was written by a machine; replies are not read.\n"

func mailWhen(t time.Time, loc *time.Location) string {
	if loc == nil {
		loc = time.Local
	}
	return t.In(loc).Format("Monday 2 January 2006, 15:04 MST")
}

// noticeLines are what a notice's mail says about it beyond its text: what the reader must
// do, by when, and why reminders come.
func noticeLines(n db.Notice, reminder bool, loc *time.Location) []string {
	var lines []string
	if n.MustRead() {
		if reminder {
			lines = append(lines, "You have not yet confirmed that you read this notice. Open it and choose \u201cI have read this\u201d.")
		} else {
			lines = append(lines, "You must read this notice: open it and choose \u201cI have read this\u201d.")
		}
		if !n.DueAt.IsZero() {
			lines = append(lines, "Please do so by "+mailWhen(n.DueAt, loc)+".")
		}
		if n.Remind != db.RemindNone && n.Remind != "" {
			lines = append(lines, "Until you do, you get a reminder by mail "+n.Remind+"; reading and confirming it is what stops them.")
		}
		if n.RenewEvery > 0 {
			lines = append(lines, "It must be confirmed again every "+db.FormatDays(n.RenewEvery)+".")
		}
	}
	return lines
}

// NoticeMail is the mail of notice n to its audience: its text and a link to it, never a
// link that signs anyone in. reminder makes it the reminder of a must-read notice.
func NoticeMail(n db.Notice, link string, reminder bool, loc *time.Location) (Mail, error) {
	subject := n.Title
	switch {
	case reminder:
		subject = "Reminder: please read \u201c" + n.Title + "\u201d"
	case n.MustRead():
		subject = "Must read: " + n.Title
	}
	lines := noticeLines(n, reminder, loc)
	var text strings.Builder
	text.WriteString(n.Title + "\n\n")
	for _, l := range lines {
		text.WriteString(l + "\n")
	}
	if len(lines) > 0 {
		text.WriteString("\n")
	}
	text.WriteString(n.Body + "\n\nRead it in the portal:\n" + link + mailFooter)
	html, err := renderString(mailNoticeHTML(n, link, lines))
	if err != nil {
		return Mail{}, err
	}
	return Mail{Subject: subject, Text: text.String(), HTML: html}, nil
}

// linkMail is a mail whose point is one link: some sentences, the link, some more.
func linkMail(subject string, before []string, link, label string, after []string) (Mail, error) {
	var text strings.Builder
	text.WriteString(strings.Join(before, "\n\n"))
	if link != "" {
		text.WriteString("\n\n" + link)
	}
	if len(after) > 0 {
		text.WriteString("\n\n" + strings.Join(after, "\n\n"))
	}
	text.WriteString(mailFooter)
	html, err := renderString(mailLinkHTML(subject, before, link, label, after))
	if err != nil {
		return Mail{}, err
	}
	return Mail{Subject: subject, Text: text.String(), HTML: html}, nil
}

func minutes(d time.Duration) string {
	if d >= time.Hour && d%time.Hour == 0 {
		return plural(int(d/time.Hour), "hour")
	}
	return plural(int(d/time.Minute), "minute")
}

// ResetMail carries a password-reset link for the account named username.
func ResetMail(username, link string, ttl time.Duration) (Mail, error) {
	return linkMail("Reset your Gatehouse password",
		[]string{"Someone, probably you, asked to reset the password of the Gatehouse account \u201c" + username + "\u201d. Open this link to choose a new one:"},
		link, "Choose a new password",
		[]string{"The link works once, for " + minutes(ttl) + ". Your second step (authenticator or passkey) is still asked for when you sign in.",
			"If you did not ask for this, ignore this mail: your password stays as it is."})
}

// ConfirmMail carries the link that confirms addr as the address of the account username.
func ConfirmMail(username, addr, link string, ttl time.Duration) (Mail, error) {
	return linkMail("Confirm your address for Gatehouse",
		[]string{"Someone, probably you, asked to use " + addr + " as the address of the Gatehouse account \u201c" + username + "\u201d. Open this link and confirm it:"},
		link, "Confirm this address",
		[]string{"The link works once, for " + minutes(ttl) + ". Until it is confirmed, the account keeps its old address.",
			"If you did not ask for this, ignore this mail."})
}

// EmailChangedMail tells the old address of the account username that it was replaced.
func EmailChangedMail(username, old, addr string) (Mail, error) {
	return linkMail("Your Gatehouse address was changed",
		[]string{"The address of the Gatehouse account \u201c" + username + "\u201d was changed from " + old + " to " + addr + ". Mail from the portal now goes there.",
			"If you did not do this, tell an administrator at once."}, "", "", nil)
}

// TestMail is what `gatehouse mail test` sends.
func TestMail(portal string) (Mail, error) {
	return linkMail("Gatehouse test mail",
		[]string{"This is a test mail from the Gatehouse portal at " + portal + ". If you can read it, mail from the portal works."},
		"", "", nil)
}
