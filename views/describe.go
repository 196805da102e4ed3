package views

import (
	"strings"

	"github.com/a-h/templ"
)

// describe gives a form field its aria-describedby: the hint's id, if any, and the error's id
// only while an error is shown, so the reference never points at a missing element. A shown
// error also marks the field aria-invalid.
func describe(hintID, errID, errMsg string) templ.Attributes {
	a := describeGroup(hintID, errID, errMsg)
	if errMsg != "" {
		a["aria-invalid"] = "true"
	}
	return a
}

// describeGroup is describe for a fieldset, which takes no aria-invalid.
func describeGroup(hintID, errID, errMsg string) templ.Attributes {
	var ids []string
	if hintID != "" {
		ids = append(ids, hintID)
	}
	if errMsg != "" {
		ids = append(ids, errID)
	}
	a := templ.Attributes{}
	if len(ids) > 0 {
		a["aria-describedby"] = strings.Join(ids, " ")
	}
	return a
}
