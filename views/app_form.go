package views

import (
	"errors"
	"slices"

	"gatehouse/db"
)

// AppForm is the state of the register and edit forms of an app behind forward auth: the
// fields as typed, and after Validate, their problems by field name.
type AppForm struct {
	ID            int64
	Host          string
	RequireMFA    bool
	MustReadFirst bool
	Audience      []string
	Errors        map[string]string
	Preview       *AppPreview
	Options       []AudienceOption
}

// AppPreview is how many users the audience chosen would let pass.
type AppPreview struct {
	Reach      db.AppReach
	RequireMFA bool
}

// AppFormFrom is the edit form of a.
func AppFormFrom(a db.App) AppForm {
	return AppForm{ID: a.ID, Host: a.Host, RequireMFA: a.RequireMFA, MustReadFirst: a.MustReadFirst,
		Audience: db.AudienceValues(a.Audience)}
}

func (f AppForm) chosen(v string) bool { return slices.Contains(f.Audience, v) }

// Validate checks the form against the groups that exist and the hosts the session cookie
// reaches (db.CheckAppHost, the rule of the command line too), returning the app to store
// and whether the form has no problems.
func (f *AppForm) Validate(groups map[int64]string, reach db.CookieReach) (db.AppInput, bool) {
	f.Errors = map[string]string{}
	in := db.AppInput{RequireMFA: f.RequireMFA, MustReadFirst: f.MustReadFirst}
	host, err := db.CheckAppHost(f.Host, reach)
	var he *db.HostError
	switch {
	case errors.As(err, &he):
		f.Errors["host"] = he.Reason
	case err == nil:
		f.Host, in.Host = host, host
	}
	aud, ok := db.ParseAudience(f.Audience, groups)
	switch {
	case !ok:
		f.Errors["audience"] = "One of the chosen audiences does not exist any more. Choose again."
	case aud.Empty():
		f.Errors["audience"] = "Choose who may pass."
	}
	in.Audience = aud
	return in, len(f.Errors) == 0
}

// appReachText says how many users an audience lets through.
func appReachText(pv AppPreview) string {
	if !pv.RequireMFA {
		return plural(pv.Reach.Users, "user") + " may pass."
	}
	s := plural(pv.Reach.Users, "user") + " in the audience; "
	if pv.Reach.WithFactor == 1 {
		return s + "1 of them has two-step verification and may pass."
	}
	return s + itoa(pv.Reach.WithFactor) + " of them have two-step verification and may pass."
}
