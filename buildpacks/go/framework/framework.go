package framework

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"
)

// DefaultPort is the port served when $PORT is unset or empty.
const DefaultPort = "8080"

// ShutdownGrace is how long a SIGTERM or SIGINT waits for requests in flight.
var ShutdownGrace = 10 * time.Second

// HTTPFunction is the signature of an http function.
type HTTPFunction = func(http.ResponseWriter, *http.Request)

// EventFunction is the signature of a cloudevent function. Returning an
// error answers 500 and logs the error; returning nil answers 204.
type EventFunction = func(context.Context, Event) error

// Logger receives request lines and the server's own messages (stdout).
var Logger = log.New(os.Stdout, "", 0)

// ErrorLogger receives panics and their stacks (stderr).
var ErrorLogger = log.New(os.Stderr, "", 0)

// ServeHTTP serves fn on $PORT until SIGTERM or SIGINT, then exits.
func ServeHTTP(fn func(http.ResponseWriter, *http.Request)) {
	if fn == nil {
		ErrorLogger.Fatal("kiln functions framework: ServeHTTP called with a nil function")
	}
	serveMain("http", HTTPHandler(fn))
}

// ServeCloudEvent serves fn, which receives CloudEvents 1.0 in binary or
// structured mode, on $PORT until SIGTERM or SIGINT, then exits.
func ServeCloudEvent(fn func(context.Context, Event) error) {
	if fn == nil {
		ErrorLogger.Fatal("kiln functions framework: ServeCloudEvent called with a nil function")
	}
	serveMain("cloudevent", CloudEventHandler(fn))
}

func serveMain(kind string, h http.Handler) {
	port := os.Getenv("PORT")
	if port == "" {
		port = DefaultPort
	}
	addr := ":" + port
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		ErrorLogger.Printf("kiln functions framework: cannot listen on %s: %v", addr, err)
		os.Exit(1)
	}
	target := os.Getenv("FUNCTION_TARGET")
	if target == "" {
		target = "function"
	}
	Logger.Printf("serving %s function %s on %s", kind, target, addr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := Serve(ctx, ln, h); err != nil {
		ErrorLogger.Printf("kiln functions framework: %v", err)
		os.Exit(1)
	}
	Logger.Printf("stopped")
}

// Serve serves h on ln until ctx is done, then shuts down gracefully,
// waiting up to ShutdownGrace for requests in flight. It returns nil after
// a clean shutdown.
func Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          ErrorLogger,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	Logger.Printf("shutting down (grace period %s)", ShutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", serr)
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// HTTPHandler wraps an http function with request logging and panic
// recovery.
func HTTPHandler(fn func(http.ResponseWriter, *http.Request)) http.Handler {
	return logged(func(w *recorder, r *http.Request) {
		fn(w, r)
	})
}

// recorder remembers the status a handler wrote and any note for the log.
type recorder struct {
	http.ResponseWriter
	status int
	note   string
}

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush lets streaming functions flush through the wrapper.
func (w *recorder) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap gives http.ResponseController access to the real writer.
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// fail answers with a one-line plain-text message and notes it for the log.
func (w *recorder) fail(code int, msg string) {
	w.note = msg
	if w.status != 0 {
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	io.WriteString(w, msg+"\n")
}

func logged(serve func(*recorder, *http.Request)) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		start := time.Now()
		w := &recorder{ResponseWriter: rw}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					logRequest(r, w, start)
					panic(p)
				}
				ErrorLogger.Printf("panic in function serving %s %s: %v\n%s", r.Method, r.URL.Path, p, debug.Stack())
				w.fail(http.StatusInternalServerError, "internal error: the function panicked")
				w.note = fmt.Sprintf("panic: %v", p)
			}
			logRequest(r, w, start)
		}()
		serve(w, r)
	})
}

func logRequest(r *http.Request, w *recorder, start time.Time) {
	status := w.status
	if status == 0 {
		status = http.StatusOK
	}
	line := fmt.Sprintf("%s %s %d %s", r.Method, r.URL.RequestURI(), status, time.Since(start).Round(time.Microsecond))
	if w.note != "" {
		line += " " + oneLine(w.note)
	}
	Logger.Print(line)
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
