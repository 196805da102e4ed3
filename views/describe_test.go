package views

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestDescribe(t *testing.T) {
	for _, tc := range []struct {
		hint, errID, msg string
		want             map[string]string
	}{
		{"", "x-error", "", map[string]string{}},
		{"x-help", "x-error", "", map[string]string{"aria-describedby": "x-help"}},
		{"", "x-error", "Too short.", map[string]string{"aria-describedby": "x-error", "aria-invalid": "true"}},
		{"x-help", "x-error", "Too short.", map[string]string{"aria-describedby": "x-help x-error", "aria-invalid": "true"}},
	} {
		got := describe(tc.hint, tc.errID, tc.msg)
		if len(got) != len(tc.want) {
			t.Errorf("describe(%q, %q, %q) = %v, want %v", tc.hint, tc.errID, tc.msg, got, tc.want)
			continue
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("describe(%q, %q, %q)[%s] = %v, want %q", tc.hint, tc.errID, tc.msg, k, got[k], v)
			}
		}
	}
	if g := describeGroup("", "a-error", "Pick one."); g["aria-invalid"] != nil || g["aria-describedby"] != "a-error" {
		t.Errorf("describeGroup = %v", g)
	}
}

// A field points at its error message only while the message is on the page.
func TestFieldsReferOnlyToShownErrors(t *testing.T) {
	render := func(f PasswordForm) string {
		var buf bytes.Buffer
		if err := PasswordPage(Page{Title: "Change your password"}, f).Render(context.Background(), &buf); err != nil {
			t.Fatal(err)
		}
		return buf.String()
	}
	clean := render(PasswordForm{})
	if strings.Contains(clean, "new-error") || strings.Contains(clean, "aria-invalid") {
		t.Errorf("without errors the form refers to an error: %s", clean)
	}
	if !strings.Contains(clean, `aria-describedby="new-help"`) {
		t.Errorf("the new password lost its hint")
	}
	failed := render(PasswordForm{Errors: map[string]string{"new_password": "That password is too common."}})
	for _, want := range []string{`aria-describedby="new-help new-error"`, `aria-invalid="true"`, `id="new-error"`} {
		if !strings.Contains(failed, want) {
			t.Errorf("with an error the form lacks %s", want)
		}
	}
}
