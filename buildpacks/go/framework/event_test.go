package framework

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// post sends req through an event handler that records the event it got.
func post(t *testing.T, req *http.Request, ret error) (*httptest.ResponseRecorder, *Event, string) {
	t.Helper()
	out, _ := captureLogs(t)
	var got *Event
	h := CloudEventHandler(func(ctx context.Context, e Event) error {
		got = &e
		return ret
	})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec, got, out.String()
}

func binaryRequest(body string, headers map[string]string) *http.Request {
	r := httptest.NewRequest("POST", "/", strings.NewReader(body))
	for k, v := range headers {
		r.Header.Set(k, v)
	}
	return r
}

func validBinaryHeaders() map[string]string {
	return map[string]string{
		"ce-id":          "evt-1",
		"ce-source":      "/kiln/test",
		"ce-specversion": "1.0",
		"ce-type":        "dev.kiln.test",
		"Content-Type":   "application/json",
	}
}

func TestBinaryEvent(t *testing.T) {
	h := validBinaryHeaders()
	h["ce-subject"] = "thing"
	h["ce-time"] = "2024-05-01T12:00:00Z"
	h["ce-dataschema"] = "https://example.com/schema"
	h["ce-traceparent"] = "00-abc-def-01"
	h["Ce-Partitionkey"] = "p%201"
	rec, ev, log := post(t, binaryRequest(`{"name":"kiln"}`, h), nil)
	if rec.Code != http.StatusNoContent {
		t.Fatalf("status %d body %q", rec.Code, rec.Body.String())
	}
	if ev == nil {
		t.Fatal("function not called")
	}
	if ev.ID != "evt-1" || ev.Source != "/kiln/test" || ev.SpecVersion != "1.0" || ev.Type != "dev.kiln.test" ||
		ev.Subject != "thing" || ev.DataSchema != "https://example.com/schema" || ev.DataContentType != "application/json" {
		t.Fatalf("attributes %+v", *ev)
	}
	if !ev.Time.Equal(time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)) {
		t.Fatalf("time %v", ev.Time)
	}
	if ev.Extension("traceparent") != "00-abc-def-01" || ev.Extensions["partitionkey"] != "p 1" || len(ev.Extensions) != 2 {
		t.Fatalf("extensions %v", ev.Extensions)
	}
	var v struct{ Name string }
	if err := ev.DataAs(&v); err != nil || v.Name != "kiln" {
		t.Fatalf("DataAs: %v %+v", err, v)
	}
	if !strings.HasPrefix(log, "POST / 204 ") {
		t.Fatalf("log %q", log)
	}
}

func TestBinaryEventNoBody(t *testing.T) {
	h := validBinaryHeaders()
	delete(h, "Content-Type")
	rec, ev, _ := post(t, binaryRequest("", h), nil)
	if rec.Code != http.StatusNoContent || ev == nil || ev.Data != nil || ev.DataContentType != "" {
		t.Fatalf("status %d event %+v", rec.Code, ev)
	}
}

func TestStructuredEvent(t *testing.T) {
	body := `{"specversion":"1.0","id":"s-1","source":"urn:src","type":"t.s","subject":"sub",
		"time":"2024-05-01T12:00:00.5+02:00","datacontenttype":"application/json",
		"myext":"x","count":3,"flag":true,"nothing":null,"data":{"a":[1,2]}}`
	r := binaryRequest(body, map[string]string{"Content-Type": "application/cloudevents+json; charset=utf-8"})
	rec, ev, _ := post(t, r, nil)
	if rec.Code != http.StatusNoContent {
		t.Fatalf("status %d body %q", rec.Code, rec.Body.String())
	}
	if ev.ID != "s-1" || ev.Source != "urn:src" || ev.Type != "t.s" || ev.Subject != "sub" || ev.DataContentType != "application/json" {
		t.Fatalf("attributes %+v", *ev)
	}
	if ev.Time.UTC() != time.Date(2024, 5, 1, 10, 0, 0, 5e8, time.UTC) {
		t.Fatalf("time %v", ev.Time)
	}
	if ev.Extensions["myext"] != "x" || ev.Extensions["count"] != "3" || ev.Extensions["flag"] != "true" || len(ev.Extensions) != 3 {
		t.Fatalf("extensions %v", ev.Extensions)
	}
	var v struct{ A []int }
	if err := ev.DataAs(&v); err != nil || len(v.A) != 2 {
		t.Fatalf("DataAs %v %+v (data %s)", err, v, ev.Data)
	}
}

func TestStructuredTextData(t *testing.T) {
	body := `{"specversion":"1.0","id":"s-2","source":"s","type":"t","datacontenttype":"text/plain","data":"hello"}`
	rec, ev, _ := post(t, binaryRequest(body, map[string]string{"Content-Type": "application/cloudevents+json"}), nil)
	if rec.Code != http.StatusNoContent || string(ev.Data) != "hello" {
		t.Fatalf("status %d data %q", rec.Code, ev.Data)
	}
	var s string
	if err := ev.DataAs(&s); err != nil || s != "hello" {
		t.Fatalf("DataAs string: %v %q", err, s)
	}
	var m map[string]any
	if err := ev.DataAs(&m); err == nil {
		t.Fatal("DataAs decoded text/plain as JSON")
	}
}

func TestStructuredBase64(t *testing.T) {
	body := `{"specversion":"1.0","id":"s-3","source":"s","type":"t","datacontenttype":"application/octet-stream","data_base64":"AAEC/w=="}`
	rec, ev, _ := post(t, binaryRequest(body, map[string]string{"Content-Type": "application/cloudevents+json"}), nil)
	if rec.Code != http.StatusNoContent || string(ev.Data) != "\x00\x01\x02\xff" {
		t.Fatalf("status %d data %q", rec.Code, ev.Data)
	}
}

func TestMalformedEvents(t *testing.T) {
	structured := map[string]string{"Content-Type": "application/cloudevents+json"}
	without := func(k string) map[string]string {
		h := validBinaryHeaders()
		delete(h, k)
		return h
	}
	with := func(k, v string) map[string]string {
		h := validBinaryHeaders()
		h[k] = v
		return h
	}
	cases := []struct {
		name    string
		body    string
		headers map[string]string
		want    string
	}{
		{"binary missing id", "{}", without("ce-id"), `missing required attribute "id"`},
		{"binary missing source", "{}", without("ce-source"), `missing required attribute "source"`},
		{"binary missing type", "{}", without("ce-type"), `missing required attribute "type"`},
		{"binary missing specversion", "{}", without("ce-specversion"), `missing required attribute "specversion"`},
		{"binary wrong specversion", "{}", with("ce-specversion", "0.3"), `unsupported specversion "0.3"`},
		{"binary bad time", "{}", with("ce-time", "yesterday"), `"time" is not an RFC 3339 timestamp`},
		{"no event at all", "hello", map[string]string{"Content-Type": "text/plain"}, "not a CloudEvent: no ce-specversion header"},
		{"structured bad JSON", `{"id":`, structured, "malformed CloudEvent: invalid JSON"},
		{"structured empty body", ``, structured, "malformed CloudEvent: invalid JSON: empty body"},
		{"structured not an object", `[1,2]`, structured, "must be a JSON object"},
		{"structured trailing data", `{"specversion":"1.0","id":"1","source":"s","type":"t"} {}`, structured, "data after the event object"},
		{"structured missing id", `{"specversion":"1.0","source":"s","type":"t"}`, structured, `missing required attribute "id"`},
		{"structured numeric id", `{"specversion":"1.0","id":7,"source":"s","type":"t"}`, structured, `attribute "id" must be a JSON string`},
		{"structured wrong specversion", `{"specversion":"0.3","id":"1","source":"s","type":"t"}`, structured, `unsupported specversion "0.3"`},
		{"structured bad base64", `{"specversion":"1.0","id":"1","source":"s","type":"t","data_base64":"%%%"}`, structured, "data_base64 is not valid base64"},
		{"structured base64 not a string", `{"specversion":"1.0","id":"1","source":"s","type":"t","data_base64":5}`, structured, "data_base64 must be a JSON string"},
		{"structured data and data_base64", `{"specversion":"1.0","id":"1","source":"s","type":"t","data":1,"data_base64":"AA=="}`, structured, "both data and data_base64"},
		{"structured object extension", `{"specversion":"1.0","id":"1","source":"s","type":"t","ext":{"a":1}}`, structured, `attribute "ext" must be a string, number or boolean`},
		{"batch", `[]`, map[string]string{"Content-Type": "application/cloudevents-batch+json"}, "batched events"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec, ev, log := post(t, binaryRequest(c.body, c.headers), nil)
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400 (body %q)", rec.Code, rec.Body.String())
			}
			if ev != nil {
				t.Fatal("function called for a malformed event")
			}
			body := rec.Body.String()
			if !strings.Contains(body, c.want) || strings.Count(body, "\n") != 1 || !strings.HasSuffix(body, "\n") {
				t.Fatalf("body %q, want one line containing %q", body, c.want)
			}
			if !strings.HasPrefix(log, "POST / 400 ") || !strings.Contains(log, c.want) || strings.Count(log, "\n") != 1 {
				t.Fatalf("log %q", log)
			}
		})
	}
}

func TestEventTooLarge(t *testing.T) {
	old := MaxEventSize
	MaxEventSize = 10
	defer func() { MaxEventSize = old }()
	rec, ev, _ := post(t, binaryRequest(strings.Repeat("x", 100), validBinaryHeaders()), nil)
	if rec.Code != http.StatusRequestEntityTooLarge || ev != nil {
		t.Fatalf("status %d", rec.Code)
	}
}

func TestEventFunctionError(t *testing.T) {
	out, errs := captureLogs(t)
	h := CloudEventHandler(func(ctx context.Context, e Event) error { return errors.New("database is down") })
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, binaryRequest("{}", validBinaryHeaders()))
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status %d", rec.Code)
	}
	if strings.Contains(rec.Body.String(), "database") {
		t.Fatalf("error detail leaked into the response: %q", rec.Body.String())
	}
	if !strings.Contains(errs.String(), "function failed on event evt-1: database is down") {
		t.Fatalf("stderr %q", errs.String())
	}
	if !strings.HasPrefix(out.String(), "POST / 500 ") || !strings.Contains(out.String(), "database is down") {
		t.Fatalf("log %q", out.String())
	}
}

func TestEventFunctionPanic(t *testing.T) {
	out, errs := captureLogs(t)
	h := CloudEventHandler(func(ctx context.Context, e Event) error { panic("bad event") })
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, binaryRequest("{}", validBinaryHeaders()))
	if rec.Code != http.StatusInternalServerError || !strings.Contains(errs.String(), "bad event") {
		t.Fatalf("status %d stderr %q", rec.Code, errs.String())
	}
	if !strings.Contains(out.String(), "POST / 500 ") {
		t.Fatalf("log %q", out.String())
	}
}

func TestEventString(t *testing.T) {
	e := Event{ID: "1", Source: "s", Type: "t", SpecVersion: "1.0", Extensions: map[string]string{"b": "2", "a": "1"}}
	if got := e.String(); got != "id=1 source=s type=t specversion=1.0 a=1 b=2" {
		t.Fatalf("String() = %q", got)
	}
}
