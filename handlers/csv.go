package handlers

import "strings"

// csvCell keeps a cell from being read as a formula by spreadsheet programs.
func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
