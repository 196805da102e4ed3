package db

import (
	"strconv"
	"strings"
)

// ParseAudience reads audience values (everyone, role:NAME, group:ID) against the groups
// that exist; an unknown value refuses the whole list rather than being dropped.
func ParseAudience(values []string, groups map[int64]string) (Audience, bool) {
	var a Audience
	seenRole := map[string]bool{}
	seenGroup := map[int64]bool{}
	for _, v := range values {
		kind, arg, _ := strings.Cut(v, ":")
		switch kind {
		case "everyone":
			a.Everyone = true
		case "role":
			if !ValidRole(arg) {
				return Audience{}, false
			}
			if !seenRole[arg] {
				seenRole[arg] = true
				a.Roles = append(a.Roles, arg)
			}
		case "group":
			id, err := strconv.ParseInt(arg, 10, 64)
			if _, ok := groups[id]; err != nil || !ok {
				return Audience{}, false
			}
			if !seenGroup[id] {
				seenGroup[id] = true
				a.GroupIDs = append(a.GroupIDs, id)
			}
		default:
			return Audience{}, false
		}
	}
	if a.Everyone { // everyone includes every role and group
		a.Roles, a.GroupIDs = nil, nil
	}
	return a, true
}

// AudienceValues is the inverse of ParseAudience: the form values that name a.
func AudienceValues(a Audience) []string {
	if a.Everyone {
		return []string{"everyone"}
	}
	var vs []string
	for _, r := range a.Roles {
		vs = append(vs, "role:"+r)
	}
	for _, g := range a.GroupIDs {
		vs = append(vs, "group:"+strconv.FormatInt(g, 10))
	}
	return vs
}
