package framework

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer is a log sink the tests can read while the server writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// captureLogs redirects both loggers for the duration of a test.
func captureLogs(t *testing.T) (out, errs *syncBuffer) {
	t.Helper()
	out, errs = &syncBuffer{}, &syncBuffer{}
	oldOut, oldErr := Logger, ErrorLogger
	Logger, ErrorLogger = log.New(out, "", 0), log.New(errs, "", 0)
	t.Cleanup(func() { Logger, ErrorLogger = oldOut, oldErr })
	return out, errs
}

func TestHTTPFunction(t *testing.T) {
	out, _ := captureLogs(t)
	h := HTTPHandler(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, "hello %s", r.URL.Query().Get("name"))
	})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/greet?name=kiln", nil))
	if rec.Code != http.StatusCreated || rec.Body.String() != "hello kiln" {
		t.Fatalf("got %d %q", rec.Code, rec.Body.String())
	}
	line := strings.TrimSpace(out.String())
	if strings.Count(line, "\n") != 0 || !strings.HasPrefix(line, "GET /greet?name=kiln 201 ") {
		t.Fatalf("log line %q", line)
	}
}

func TestHTTPFunctionImplicitOK(t *testing.T) {
	out, _ := captureLogs(t)
	h := HTTPHandler(func(w http.ResponseWriter, r *http.Request) {})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	if !strings.HasPrefix(out.String(), "POST / 200 ") {
		t.Fatalf("log %q", out.String())
	}
}

func TestHTTPPanic(t *testing.T) {
	out, errs := captureLogs(t)
	h := HTTPHandler(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]int
		m["boom"] = 1 // nil map: panics
	})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/p", nil))
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status %d", rec.Code)
	}
	if !strings.Contains(rec.Body.String(), "panicked") {
		t.Fatalf("body %q", rec.Body.String())
	}
	if !strings.Contains(errs.String(), "assignment to entry in nil map") || !strings.Contains(errs.String(), "goroutine ") {
		t.Fatalf("stack not logged: %q", errs.String())
	}
	if !strings.HasPrefix(out.String(), "GET /p 500 ") || !strings.Contains(out.String(), "panic: assignment to entry in nil map") {
		t.Fatalf("log %q", out.String())
	}
}

func TestHTTPPanicAfterWrite(t *testing.T) {
	out, _ := captureLogs(t)
	h := HTTPHandler(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "partial")
		panic("late")
	})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Body.String() != "partial" {
		t.Fatalf("body %q", rec.Body.String())
	}
	if !strings.Contains(out.String(), "panic: late") {
		t.Fatalf("log %q", out.String())
	}
}

func TestServerKeepsRunningAfterPanic(t *testing.T) {
	captureLogs(t)
	srv := httptest.NewServer(HTTPHandler(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			panic("boom")
		}
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/panic")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 500 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	resp, err = http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "ok" {
		t.Fatalf("body %q", b)
	}
}

func TestServeGracefulShutdown(t *testing.T) {
	out, _ := captureLogs(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	h := HTTPHandler(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(300 * time.Millisecond)
		io.WriteString(w, "finished")
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, h) }()

	type result struct {
		body string
		err  error
	}
	resc := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/slow")
		if err != nil {
			resc <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		resc <- result{string(b), err}
	}()
	<-started
	cancel()
	res := <-resc
	if res.err != nil || res.body != "finished" {
		t.Fatalf("request in flight: %q %v", res.body, res.err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if !strings.Contains(out.String(), "shutting down") {
		t.Fatalf("log %q", out.String())
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Fatal("still accepting connections after shutdown")
	}
}

func TestServeShutdownGraceExpires(t *testing.T) {
	captureLogs(t)
	old := ShutdownGrace
	ShutdownGrace = 100 * time.Millisecond
	defer func() { ShutdownGrace = old }()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	release := make(chan struct{})
	defer close(release)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, h) }()
	go http.Get("http://" + ln.Addr().String() + "/stuck")
	<-started
	cancel()
	select {
	case err := <-done:
		if err == nil || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Serve returned %v, want a deadline error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the grace period")
	}
}

// TestSIGTERM runs ServeHTTP in a child process (this test binary) and
// stops it with SIGTERM: it must log, finish, and exit 0.
func TestSIGTERM(t *testing.T) {
	if os.Getenv("KILN_FF_CHILD") == "1" {
		ServeHTTP(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "child") })
		os.Exit(0)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSIGTERM$")
	cmd.Env = append(os.Environ(), "KILN_FF_CHILD=1", "PORT="+port, "FUNCTION_TARGET=Child")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() || !strings.Contains(sc.Text(), "serving http function Child on :"+port) {
		t.Fatalf("first line %q", sc.Text())
	}
	resp, err := http.Get("http://127.0.0.1:" + port + "/x")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "child" {
		t.Fatalf("body %q", b)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var rest []string
	for sc.Scan() {
		rest = append(rest, sc.Text())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child exit: %v (output %q)", err, rest)
	}
	all := strings.Join(rest, "\n")
	if !strings.Contains(all, "GET /x 200 ") || !strings.Contains(all, "shutting down") || !strings.Contains(all, "stopped") {
		t.Fatalf("child output %q", all)
	}
}
