package console

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

// Path is where the console is mounted on the API port.
const Path = "/console/"

// static holds the pages: index.html, app.css and the modules under js/.
//
//go:embed static
var static embed.FS

// CSP is the Content-Security-Policy of every console response: scripts,
// styles and fetches from the server itself only (no inline script or style
// attribute, no eval), nothing framed, no plugin, forms posted nowhere else.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Handler serves the console's assets under Path with the security headers of
// secureHeaders. It answers GET and HEAD only (the ServeMux pattern that mounts
// it says so).
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree always has static/
	}
	files := http.FileServerFS(sub)
	return secureHeaders(http.StripPrefix(Path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "" && strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r) // no directory listings: the pages name their files
			return
		}
		files.ServeHTTP(w, r)
	})))
}

// secureHeaders sets the headers every console response carries: the CSP, no
// MIME sniffing, no referrer (a page's URL never leaves it), no framing, and no
// caching by shared caches.
func secureHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Cache-Control", "no-cache")
		next.ServeHTTP(w, r)
	})
}
