package handlers

import (
	"strconv"
	"strings"

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

// typedConfirmation checks the typed phrase and the count the admin was shown.
func typedConfirmation(c echo.Context, phrase string) (expected int, ok bool) {
	typed := strings.ToLower(strings.Join(strings.Fields(c.FormValue("confirm")), " "))
	n, err := strconv.Atoi(c.FormValue("expected"))
	if err != nil || n < 0 {
		return 0, false
	}
	return n, typed == strings.ToLower(phrase)
}
