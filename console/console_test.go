package console

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, host, target string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, http.NoBody)
	req.Host = host
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

// TestPagesCarryTheSecurityHeaders: every asset is served with the CSP and the
// other headers, with its content type.
func TestPagesCarryTheSecurityHeaders(t *testing.T) {
	h := Handler()
	for target, ctype := range map[string]string{
		"/console/":           "text/html; charset=utf-8",
		"/console/app.css":    "text/css; charset=utf-8",
		"/console/js/app.js":  "text/javascript; charset=utf-8",
		"/console/js/csv.js":  "text/javascript; charset=utf-8",
		"/console/missing.js": "text/plain; charset=utf-8",
		"/console/js/":        "text/plain; charset=utf-8", // no listing
	} {
		resp := get(t, h, "localhost", target)
		if got := resp.Header.Get("Content-Security-Policy"); got != CSP {
			t.Errorf("%s: CSP %q", target, got)
		}
		for k, want := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"} {
			if got := resp.Header.Get(k); got != want {
				t.Errorf("%s: %s %q, want %q", target, k, got, want)
			}
		}
		if got := resp.Header.Get("Content-Type"); got != ctype {
			t.Errorf("%s: Content-Type %q, want %q", target, got, ctype)
		}
	}
	if !strings.Contains(CSP, "default-src 'self'") || strings.Contains(CSP, "unsafe") {
		t.Errorf("CSP is not strict: %s", CSP)
	}
}

// TestHosts: loopback names, the API address's own host and the configured
// names pass; another name (a DNS-rebinding page's) is 421.
func TestHosts(t *testing.T) {
	h := NewHosts("10.1.2.3:8081", []string{"Console.Example.com"})
	for host, want := range map[string]bool{
		"localhost:8081": true, "LOCALHOST": true, "127.0.0.1:8081": true, "127.9.9.9": true, "[::1]:8081": true,
		"10.1.2.3:8081": true, "console.example.com:8081": true, "console.example.com.": true,
		"evil.example:8081": false, "10.1.2.4:8081": false, "": false, "0.0.0.0:8081": false, "localhost.evil.example": false,
	} {
		if got := h.Allowed(host); got != want {
			t.Errorf("Allowed(%q) = %v, want %v", host, got, want)
		}
	}
	if NewHosts("0.0.0.0:8081", nil).Allowed("0.0.0.0") {
		t.Error("an unspecified API address made 0.0.0.0 a host")
	}
	checked := h.Check(Handler())
	if resp := get(t, checked, "evil.example:8081", "/console/"); resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("evil host: %d", resp.StatusCode)
	}
	if resp := get(t, checked, "127.0.0.1:8081", "/console/"); resp.StatusCode != http.StatusOK {
		t.Errorf("loopback: %d", resp.StatusCode)
	}
}

// TestAssetsAreSelfContained: every file the pages name (link, script, module
// import) is embedded, and nothing names another origin, inline script or
// style, or a style attribute.
func TestAssetsAreSelfContained(t *testing.T) {
	sub, _ := fs.Sub(static, "static")
	refs := regexp.MustCompile(`(?:href|src)="([^"#:]+)"|from '(\./[^']+)'|import '(\./[^']+)'`)
	err := fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := fs.ReadFile(sub, p)
		// The SVG namespace is a name, not a request.
		text := strings.ReplaceAll(string(b), "http://www.w3.org/2000/svg", "")
		for _, bad := range []string{"http://", "https://", "style=", "<style", "innerHTML", "eval(", "new Function", "localStorage", "document.cookie"} {
			if strings.Contains(text, bad) {
				t.Errorf("%s contains %q", p, bad)
			}
		}
		if strings.HasSuffix(p, ".html") && regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`).MatchString(text) {
			t.Errorf("%s has an inline script", p)
		}
		for _, m := range refs.FindAllStringSubmatch(text, -1) {
			ref := m[1] + m[2] + m[3]
			target := path.Join(path.Dir(p), ref)
			if _, err := fs.Stat(sub, target); err != nil {
				t.Errorf("%s names %s, which is not embedded", p, ref)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestIndexServed: the page itself is served whole, naming its module; the
// sign-in's fields have no name, so that the form sends nothing even without
// its script; a directory is not listed.
func TestIndexServed(t *testing.T) {
	resp := get(t, Handler(), "localhost", "/console/")
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(b), `<script type="module" src="js/app.js">`) {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	form := regexp.MustCompile(`(?s)<form id="signin-form".*?</form>`).FindString(string(b))
	if form == "" || strings.Contains(form, " name=") {
		t.Errorf("the sign-in form's fields must have no name: %s", form)
	}
	if resp := get(t, Handler(), "localhost", "/console/js/"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("/console/js/: %s, want 404 (no listing)", resp.Status)
	}
}

// FuzzHostsAllowed: any Host header is answered without a panic, and one that
// is allowed names localhost, a loopback address or a configured name.
func FuzzHostsAllowed(f *testing.F) {
	for _, s := range []string{"localhost:8081", "[::1]:1", "127.0.0.1", "console.example.com.", "evil:80", "[", "", ":", "LOCALHOST."} {
		f.Add(s)
	}
	h := NewHosts("0.0.0.0:8081", []string{"console.example.com"})
	f.Fuzz(func(t *testing.T, host string) {
		if !h.Allowed(host) {
			return
		}
		name := strings.ToLower(host)
		if !strings.Contains(name, "localhost") && !strings.Contains(name, "console.example.com") &&
			!strings.Contains(name, "127.") && !strings.Contains(name, "::1") && !strings.Contains(name, ":") {
			t.Errorf("Allowed(%q)", host)
		}
	})
}
