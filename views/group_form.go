package views

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"gatehouse/auth"
)

// MaxGroupNameLen is the longest group name, in characters.
const MaxGroupNameLen = 64

// GroupForm is the new-group form's state.
type GroupForm struct {
	Name  string
	Error string
}

// Validate trims the name and checks it: 1 to MaxGroupNameLen characters on one line, as
// groups are named in lists, audit rows and CSV exports, and without a comma, as apps
// behind forward auth get a user's groups as one comma-separated header.
func (f *GroupForm) Validate() bool {
	f.Name = strings.TrimSpace(f.Name)
	switch {
	case f.Name == "" || utf8.RuneCountInString(f.Name) > MaxGroupNameLen || !auth.SingleLine(f.Name):
		f.Error = fmt.Sprintf("Give the group a name of at most %d characters.", MaxGroupNameLen)
	case strings.ContainsRune(f.Name, ','):
		f.Error = "Leave commas out of the name: apps behind the portal receive group names as a comma-separated list."
	}
	return f.Error == ""
}
