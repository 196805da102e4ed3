package handlers

import (
	"context"
	"strconv"
	"strings"

	"gatehouse/views"

	"github.com/labstack/echo/v4"
)

// pathID reads the :id parameter; anything but a positive integer is a 404, like an id
// that does not exist.
func pathID(c echo.Context) (int64, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, errNotFound
	}
	return id, nil
}

// byPathID loads the resource named by :id with load: a malformed id is the same 404 as
// one that does not exist, and the store's not-found is turned into one by handleError.
func byPathID[T any](c echo.Context, load func(context.Context, int64) (T, error)) (T, error) {
	id, err := pathID(c)
	if err != nil {
		var none T
		return none, err
	}
	return load(c.Request().Context(), id)
}

// typedConfirmation checks the typed phrase and the count the admin was shown.
func typedConfirmation(c echo.Context, phrase string) (expected int, ok bool) {
	typed := strings.ToLower(strings.Join(strings.Fields(c.FormValue("confirm")), " "))
	n, err := strconv.Atoi(c.FormValue("expected"))
	if err != nil || n < 0 {
		return 0, false
	}
	return n, typed == strings.ToLower(phrase)
}

// accountFields reads the fields of a form that makes an account; their Validate checks
// them.
func accountFields(c echo.Context) views.AccountFields {
	return views.AccountFields{Username: c.FormValue("username"), DisplayName: c.FormValue("display_name")}
}
