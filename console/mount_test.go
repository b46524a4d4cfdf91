package console_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sendguard/sendguard/console"
	"github.com/sendguard/sendguard/server"
	"github.com/sendguard/sendguard/storage/badger"
)

// apiHandler is the API port's handler of a server with the API keys given.
func apiHandler(t *testing.T, keys ...server.APIKey) http.Handler {
	t.Helper()
	st, err := badger.Open(badger.Options{InMemory: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.DefaultConfig()
	cfg.HashSecret = []byte("console-test-secret")
	cfg.APIKeys = keys
	cfg.ConsoleHosts = []string{"console.example.com"}
	cfg.Logger = slog.New(slog.DiscardHandler)
	srv, err := server.New(st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close(); st.Close() })
	h, err := srv.APIHandler()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func serve(h http.Handler, host, target, key string) *http.Response {
	req := httptest.NewRequest(http.MethodGet, target, http.NoBody)
	req.Host = host
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

// TestMountedOnTheAPIPort: the API port serves the console (redirecting
// /console to /console/) and a copy of /metrics, both behind the Host check.
func TestMountedOnTheAPIPort(t *testing.T) {
	h := apiHandler(t)
	if resp := serve(h, "127.0.0.1:8081", "/console", ""); resp.StatusCode/100 != 3 || resp.Header.Get("Location") != console.Path {
		t.Errorf("/console: %s → %q", resp.Status, resp.Header.Get("Location"))
	}
	for _, host := range []string{"127.0.0.1:8081", "localhost:8081", "console.example.com"} {
		if resp := serve(h, host, console.Path, ""); resp.StatusCode != 200 || resp.Header.Get("Content-Security-Policy") != console.CSP {
			t.Errorf("%s%s: %s", host, console.Path, resp.Status)
		}
	}
	for _, target := range []string{console.Path, "/metrics"} {
		if resp := serve(h, "rebound.example:8081", target, ""); resp.StatusCode != http.StatusMisdirectedRequest {
			t.Errorf("%s under another host: %s", target, resp.Status)
		}
	}
	resp := serve(h, "127.0.0.1:8081", "/metrics", "")
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(b), "sendguard_build_info") {
		t.Errorf("/metrics without keys: %s %.200s", resp.Status, b)
	}
}

// TestMetricsTakeAnyKnownKey: with API keys, the API port's /metrics answers a
// known key of any scope, and refuses others as the API does (401, Connect's
// JSON error).
func TestMetricsTakeAnyKnownKey(t *testing.T) {
	h := apiHandler(t, server.APIKey{Name: "support", SHA256: server.HashAPIKey("support-key"), Businesses: []string{"acme"}})
	if resp := serve(h, "localhost", "/metrics", "support-key"); resp.StatusCode != 200 {
		t.Errorf("a known key without admin scope: %s", resp.Status)
	}
	for key, want := range map[string]string{"": "missing API key", "other-key": "unknown API key"} {
		resp := serve(h, "localhost", "/metrics", key)
		var e struct{ Code, Message string }
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || resp.StatusCode != 401 || e.Code != "unauthenticated" || !strings.Contains(e.Message, want) {
			t.Errorf("key %q: %s %+v %v", key, resp.Status, e, err)
		}
	}
}
