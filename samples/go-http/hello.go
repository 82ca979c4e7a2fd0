// Package hello is a sample http function for kiln's Go buildpack.
package hello

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// HelloWorld greets the name given as ?name= or in a JSON body
// {"name": "..."}; it answers JSON when the client asks for it.
func HelloWorld(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	if name == "" && r.Body != nil {
		var in struct {
			Name string `json:"name"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&in); err == nil {
			name = in.Name
		}
	}
	msg := greeting(name)
	if r.Header.Get("Accept") == "application/json" {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"message": msg})
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, msg)
}
