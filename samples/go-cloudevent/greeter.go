// Package greeter is a sample cloudevent function for kiln's Go buildpack.
package greeter

import (
	"context"
	"fmt"

	framework "kiln.dev/functions-framework"
)

// Greeting is the event's JSON data.
type Greeting struct {
	Name string `json:"name"`
}

// HandleEvent prints a greeting for each event; an event without a name in
// its data is refused (the framework answers 500 and logs the error).
func HandleEvent(ctx context.Context, e framework.Event) error {
	var g Greeting
	if err := e.DataAs(&g); err != nil {
		return err
	}
	if g.Name == "" {
		return fmt.Errorf("event %s: data has no name", e.ID)
	}
	fmt.Printf("event %s from %s (%s): Hello, %s!\n", e.ID, e.Source, e.Type, g.Name)
	return nil
}
