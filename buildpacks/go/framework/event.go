package framework

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// MaxEventSize bounds the body of an incoming event (bytes).
var MaxEventSize int64 = 32 << 20

// Event is a CloudEvents 1.0 event.
type Event struct {
	ID              string
	Source          string
	SpecVersion     string
	Type            string
	DataContentType string
	DataSchema      string
	Subject         string
	Time            time.Time // zero when the event has no time attribute
	// Extensions holds every other attribute, by lower-case name. Values
	// that are JSON numbers or booleans in structured mode are kept as
	// their JSON text.
	Extensions map[string]string
	// Data is the event payload: the HTTP body in binary mode; in structured
	// mode the JSON value of "data" (a JSON string is unquoted when the
	// content type is not JSON) or the decoded "data_base64".
	Data []byte
}

// DataAs decodes Data into v: a *[]byte or *string receives the bytes as
// they are; anything else is decoded as JSON (the content type must be
// empty or a JSON type).
func (e Event) DataAs(v any) error {
	switch p := v.(type) {
	case *[]byte:
		*p = append([]byte(nil), e.Data...)
		return nil
	case *string:
		*p = string(e.Data)
		return nil
	}
	if e.DataContentType != "" && !isJSON(e.DataContentType) {
		return fmt.Errorf("event %s: cannot decode data of type %q as JSON", e.ID, e.DataContentType)
	}
	if len(e.Data) == 0 {
		return fmt.Errorf("event %s: no data", e.ID)
	}
	if err := json.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("event %s: data: %w", e.ID, err)
	}
	return nil
}

// Extension returns the extension attribute name ("" when absent).
func (e Event) Extension(name string) string {
	return e.Extensions[strings.ToLower(name)]
}

// String describes the event's context attributes on one line.
func (e Event) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "id=%s source=%s type=%s specversion=%s", e.ID, e.Source, e.Type, e.SpecVersion)
	if e.Subject != "" {
		fmt.Fprintf(&b, " subject=%s", e.Subject)
	}
	if !e.Time.IsZero() {
		fmt.Fprintf(&b, " time=%s", e.Time.Format(time.RFC3339Nano))
	}
	if e.DataContentType != "" {
		fmt.Fprintf(&b, " datacontenttype=%s", e.DataContentType)
	}
	names := make([]string, 0, len(e.Extensions))
	for k := range e.Extensions {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(&b, " %s=%s", k, e.Extensions[k])
	}
	return b.String()
}

// CloudEventHandler wraps an event function: it parses the request as a
// CloudEvent (400 with a one-line reason when it is not a valid one), calls
// fn, and answers 204, or 500 when fn returns an error or panics.
func CloudEventHandler(fn func(context.Context, Event) error) http.Handler {
	return logged(func(w *recorder, r *http.Request) {
		ev, err := ParseEvent(r)
		if err != nil {
			code := http.StatusBadRequest
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				code = http.StatusRequestEntityTooLarge
			}
			w.fail(code, err.Error())
			return
		}
		if err := fn(r.Context(), ev); err != nil {
			ErrorLogger.Printf("function failed on event %s: %v", ev.ID, err)
			w.fail(http.StatusInternalServerError, "function failed on event "+ev.ID)
			w.note = "function error: " + err.Error()
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// ParseEvent reads a CloudEvent from r in binary mode (ce-* headers) or
// structured mode (Content-Type application/cloudevents+json). Errors are
// one line and start with "malformed CloudEvent: " or "not a CloudEvent: ".
func ParseEvent(r *http.Request) (Event, error) {
	mt := ""
	if ct := r.Header.Get("Content-Type"); ct != "" {
		var err error
		mt, _, err = mime.ParseMediaType(ct)
		if err != nil {
			mt = strings.ToLower(strings.TrimSpace(strings.SplitN(ct, ";", 2)[0]))
		}
	}
	var body io.Reader = http.NoBody
	if r.Body != nil {
		body = http.MaxBytesReader(nil, r.Body, MaxEventSize)
	}
	switch {
	case mt == "application/cloudevents+json":
		data, err := io.ReadAll(body)
		if err != nil {
			return Event{}, fmt.Errorf("malformed CloudEvent: reading body: %w", err)
		}
		return parseStructured(data)
	case mt == "application/cloudevents-batch+json":
		return Event{}, errors.New("not a CloudEvent: batched events (application/cloudevents-batch+json) are not supported")
	case strings.HasPrefix(mt, "application/cloudevents"):
		return Event{}, fmt.Errorf("not a CloudEvent: unsupported structured format %q (want application/cloudevents+json)", mt)
	case r.Header.Get("Ce-Specversion") == "" && r.Header.Get("Ce-Id") == "":
		return Event{}, errors.New("not a CloudEvent: no ce-specversion header and Content-Type is not application/cloudevents+json")
	}
	data, err := io.ReadAll(body)
	if err != nil {
		return Event{}, fmt.Errorf("malformed CloudEvent: reading body: %w", err)
	}
	return parseBinary(r.Header, data)
}

func parseBinary(h http.Header, data []byte) (Event, error) {
	attrs := map[string]string{}
	for k, vs := range h {
		lk := strings.ToLower(k)
		if !strings.HasPrefix(lk, "ce-") || len(vs) == 0 {
			continue
		}
		name := lk[3:]
		if name == "" {
			continue
		}
		attrs[name] = decodeHeader(vs[0])
	}
	delete(attrs, "datacontenttype")
	ev, err := fromAttributes(attrs)
	if err != nil {
		return Event{}, err
	}
	ev.DataContentType = h.Get("Content-Type")
	if len(data) > 0 {
		ev.Data = data
	}
	return ev, nil
}

// decodeHeader undoes the percent-encoding the HTTP binding applies to
// header values; a value that does not decode is kept as it is.
func decodeHeader(v string) string {
	v = strings.TrimSpace(v)
	if !strings.Contains(v, "%") {
		return v
	}
	if d, err := url.PathUnescape(v); err == nil {
		return d
	}
	return v
}

func parseStructured(body []byte) (Event, error) {
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&raw); err != nil {
		return Event{}, fmt.Errorf("malformed CloudEvent: invalid JSON: %s", jsonError(err))
	}
	if raw == nil {
		return Event{}, errors.New("malformed CloudEvent: invalid JSON: the event must be a JSON object")
	}
	if dec.More() {
		return Event{}, errors.New("malformed CloudEvent: invalid JSON: data after the event object")
	}
	attrs := map[string]string{}
	var data, data64 json.RawMessage
	for k, v := range raw {
		switch k {
		case "data":
			data = v
			continue
		case "data_base64":
			data64 = v
			continue
		}
		t := bytes.TrimSpace(v)
		var s string
		if len(t) > 0 && t[0] == '"' && json.Unmarshal(t, &s) == nil {
			attrs[k] = s
			continue
		}
		switch {
		case string(t) == "null":
			// an absent attribute
		case len(t) > 0 && (t[0] == '{' || t[0] == '['):
			return Event{}, fmt.Errorf("malformed CloudEvent: attribute %q must be a string, number or boolean", k)
		default:
			attrs[k] = string(t)
		}
	}
	for _, k := range []string{"id", "source", "specversion", "type", "datacontenttype", "dataschema", "subject", "time"} {
		if v, ok := raw[k]; ok && !bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			var s string
			if json.Unmarshal(v, &s) != nil {
				return Event{}, fmt.Errorf("malformed CloudEvent: attribute %q must be a JSON string", k)
			}
		}
	}
	ct := attrs["datacontenttype"]
	delete(attrs, "datacontenttype")
	ev, err := fromAttributes(attrs)
	if err != nil {
		return Event{}, err
	}
	ev.DataContentType = ct
	isNull := func(m json.RawMessage) bool { return m == nil || string(bytes.TrimSpace(m)) == "null" }
	switch {
	case !isNull(data) && !isNull(data64):
		return Event{}, errors.New("malformed CloudEvent: both data and data_base64 are present")
	case !isNull(data64):
		var s string
		if err := json.Unmarshal(data64, &s); err != nil {
			return Event{}, errors.New("malformed CloudEvent: data_base64 must be a JSON string")
		}
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
		if err != nil {
			return Event{}, fmt.Errorf("malformed CloudEvent: data_base64 is not valid base64: %v", err)
		}
		ev.Data = b
	case !isNull(data):
		var s string
		if ct != "" && !isJSON(ct) && json.Unmarshal(data, &s) == nil {
			ev.Data = []byte(s)
		} else {
			ev.Data = append([]byte(nil), bytes.TrimSpace(data)...)
		}
	}
	return ev, nil
}

// fromAttributes checks the required attributes and fills an Event; attrs
// holds every context attribute except datacontenttype.
func fromAttributes(attrs map[string]string) (Event, error) {
	for _, k := range []string{"specversion", "id", "source", "type"} {
		if attrs[k] == "" {
			return Event{}, fmt.Errorf("malformed CloudEvent: missing required attribute %q", k)
		}
	}
	if v := attrs["specversion"]; v != "1.0" {
		return Event{}, fmt.Errorf("malformed CloudEvent: unsupported specversion %q (want \"1.0\")", v)
	}
	ev := Event{
		ID:          attrs["id"],
		Source:      attrs["source"],
		SpecVersion: attrs["specversion"],
		Type:        attrs["type"],
		DataSchema:  attrs["dataschema"],
		Subject:     attrs["subject"],
	}
	if t := attrs["time"]; t != "" {
		tm, err := time.Parse(time.RFC3339Nano, t)
		if err != nil {
			return Event{}, fmt.Errorf("malformed CloudEvent: attribute \"time\" is not an RFC 3339 timestamp: %q", t)
		}
		ev.Time = tm
	}
	for k, v := range attrs {
		switch k {
		case "id", "source", "specversion", "type", "dataschema", "subject", "time":
			continue
		}
		if ev.Extensions == nil {
			ev.Extensions = map[string]string{}
		}
		ev.Extensions[k] = v
	}
	return ev, nil
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		mt = strings.ToLower(contentType)
	}
	return mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")
}

func jsonError(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%v (at byte %d)", se, se.Offset)
	}
	if errors.Is(err, io.EOF) {
		return "empty body"
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return "the event must be a JSON object"
	}
	return err.Error()
}
