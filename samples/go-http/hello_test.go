package hello

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHelloWorld(t *testing.T) {
	rec := httptest.NewRecorder()
	HelloWorld(rec, httptest.NewRequest("GET", "/?name=kiln", nil))
	if got := rec.Body.String(); got != "Hello, kiln!\n" {
		t.Fatalf("got %q", got)
	}
	rec = httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/", strings.NewReader(`{"name":"JSON"}`))
	req.Header.Set("Accept", "application/json")
	HelloWorld(rec, req)
	if got := rec.Body.String(); got != "{\"message\":\"Hello, JSON!\"}\n" {
		t.Fatalf("got %q", got)
	}
}
