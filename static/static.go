// Package static holds the portal's stylesheet, icon and small scripts, embedded so the
// binary is the whole deployment.
package static

import "embed"

//go:embed css img js
var FS embed.FS
