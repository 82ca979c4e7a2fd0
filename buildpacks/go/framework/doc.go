// Package framework is kiln's Go functions framework: it serves one user
// function over HTTP on $PORT (default 8080).
//
// The Go buildpack generates a main package that calls ServeHTTP or
// ServeCloudEvent with the function named by FUNC_NAME. A function imports
// this package only for the Event type:
//
//	import framework "kiln.dev/functions-framework"
//
//	func Receive(ctx context.Context, e framework.Event) error { ... }
//
// Behaviour shared by both kinds of function:
//   - the server listens on all interfaces, port $PORT (default 8080);
//   - every request is logged to stdout as one line: method, path, status,
//     duration (and, for a rejected event, why);
//   - a panic in the function answers 500 and logs the panic and its stack
//     to stderr; the server keeps running;
//   - SIGTERM or SIGINT stops accepting connections and waits up to
//     ShutdownGrace for requests in flight, then exits 0.
//
// The package uses the standard library only.
package framework
