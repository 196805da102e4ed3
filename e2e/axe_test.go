package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
)

// axePath is axe-core as installed from e2e/axe/package-lock.json by `npm ci --prefix e2e/axe`
// (make test does it); go test runs in this directory.
var axePath = filepath.Join("axe", "node_modules", "axe-core", "axe.min.js")

var axeSource = sync.OnceValues(func() (string, error) {
	b, err := os.ReadFile(axePath)
	return string(b), err
})

// axeViolation is one failed axe rule with the elements it failed on.
type axeViolation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target  string `json:"target"`
		Summary string `json:"summary"`
	} `json:"nodes"`
	Count int `json:"count"`
}

// axeRun runs every default axe rule on the document and keeps only the serious and critical
// violations. Targets are flattened to strings because rules inside frames or shadow roots
// report nested selector lists.
const axeRun = `axe.run(document, {resultTypes: ["violations"]}).then(r => r.violations
	.filter(v => v.impact === "serious" || v.impact === "critical")
	.map(v => ({
		id: v.id, impact: v.impact, help: v.help, count: v.nodes.length,
		nodes: v.nodes.slice(0, 4).map(n => ({
			target: n.target.map(String).join(" >>> "),
			summary: (n.failureSummary || "").replace(/\s+/g, " "),
		})),
	})))`

// requireAxe returns axe-core's script. Without it the test is skipped, except under CI=true,
// where it fails: the accessibility checks must never silently vanish.
func requireAxe(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("browser test skipped in short mode")
	}
	src, err := axeSource()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("axe-core missing (%v); run: npm ci --prefix e2e/axe", err)
		}
		t.Skipf("axe-core missing (%v); run `npm ci --prefix e2e/axe` (CI=true makes this a failure)", err)
	}
	return src
}

// Axe checks the page the browser shows now with axe-core and fails t, without stopping it,
// listing every serious or critical violation. The script is injected over the DevTools
// protocol, which the page's CSP does not govern.
func (b *Browser) Axe(t testing.TB) {
	t.Helper()
	src := requireAxe(t)
	ctx, cancel := context.WithTimeout(b.Ctx, stepTimeout)
	defer cancel()
	// Where, in which colour scheme and at what width: the same page can pass in one and fail
	// in another.
	where, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + " (" +
		(matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light") + ", " + innerWidth + "px wide)"`))
	if err != nil {
		t.Fatalf("axe: location: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](src)); err != nil {
		t.Fatalf("axe: inject into %s: %v", where, err)
	}
	vs, err := chromedp.Run(ctx, chromedp.Evaluate[[]axeViolation](axeRun, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("axe: run on %s: %v", where, err)
	}
	if len(vs) == 0 {
		return
	}
	var msg strings.Builder
	fmt.Fprintf(&msg, "axe: %d serious or critical violations on %s", len(vs), where)
	for _, v := range vs {
		fmt.Fprintf(&msg, "\n  %s (%s): %s, %d elements", v.ID, v.Impact, v.Help, v.Count)
		for _, n := range v.Nodes {
			fmt.Fprintf(&msg, "\n    %s: %s", n.Target, n.Summary)
		}
	}
	t.Error(msg.String())
}
