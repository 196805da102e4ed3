package views

import (
	"gatehouse/auth"
	"gatehouse/db"
)

// The admin pages' filter fields take the longest value they can match, as the rule that
// owns that value allows, so whatever is stored can be looked for.
const (
	// MaxUserFilterLen bounds a part of a username: the sessions' user, the audit's actor.
	MaxUserFilterLen = auth.MaxUsernameLen
	// MaxUserSearchLen bounds the users list's search, which matches usernames, display
	// names and group names.
	MaxUserSearchLen = max(auth.MaxUsernameLen, auth.MaxDisplayNameLen, MaxGroupNameLen)
	// MaxSubjectFilterLen bounds a part of an audit subject: a user, a group or an app's host.
	MaxSubjectFilterLen = max(auth.MaxUsernameLen, MaxGroupNameLen, db.MaxAppHostLen)
)
