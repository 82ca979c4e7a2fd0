package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseLax(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "go.mod")
	os.WriteFile(p, []byte(`// a newer toolchain's go.mod
module example.com/x // the module

go 1.21.0

toolchain go1.21.3

require (
	example.com/a v1.0.0
	example.com/b v0.2.0 // indirect
)

require kiln.dev/functions-framework v0.0.0

replace example.com/a => ./a
replace (
	example.com/b v0.2.0 => example.com/c v0.3.0
	"example.com/d" => "../with space"
)
`), 0o644)
	m, err := parseLax(p)
	if err != nil {
		t.Fatal(err)
	}
	if m.Module.Path != "example.com/x" || m.Go != "1.21.0" || len(m.Require) != 3 || m.Require[1] != (modVersion{"example.com/b", "v0.2.0"}) {
		t.Fatalf("%+v", m)
	}
	type r = struct{ Old, New modVersion }
	want := []r{
		{modVersion{"example.com/a", ""}, modVersion{"./a", ""}},
		{modVersion{"example.com/b", "v0.2.0"}, modVersion{"example.com/c", "v0.3.0"}},
		{modVersion{"example.com/d", ""}, modVersion{"../with space", ""}},
	}
	got := make([]r, len(m.Replace))
	for i, x := range m.Replace {
		got[i] = r(x)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("replace %+v", got)
	}
}

func TestReadVendor(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "vendor"), 0o755)
	os.WriteFile(filepath.Join(dir, "vendor", "modules.txt"), []byte(`# github.com/a/b v1.2.3
## explicit; go 1.18
github.com/a/b
github.com/a/b/c
# example.com/local v0.0.0-00010101000000-000000000000 => ./local
## explicit
example.com/local
# example.com/local => ./local
`), 0o644)
	mods, err := readVendor(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(mods) != 2 || mods[0].path != "github.com/a/b" || mods[0].version != "v1.2.3" || mods[0].goVersion != "1.18" ||
		strings.Join(mods[0].packages, ",") != "github.com/a/b,github.com/a/b/c" ||
		mods[1].path != "example.com/local" || mods[1].goVersion != "" || len(mods[1].packages) != 1 {
		for _, m := range mods {
			t.Logf("%+v", *m)
		}
		t.Fatal("unexpected modules")
	}
}

func TestDirFrom(t *testing.T) {
	for _, c := range [][3]string{
		{"/layers/dev.kiln.go/fnmain", "/workspace", "../../../workspace"},
		{"/layers/dev.kiln.go/fnmain", "/layers/dev.kiln.go/framework", "../framework"},
		{"/l/fnmain", "/l/fnmain/_vendored/x.com/y", "./_vendored/x.com/y"},
		{"/l/fnmain", "/a b/app", `"../../a b/app"`},
	} {
		if got := dirFrom(c[0], c[1]); got != c[2] {
			t.Errorf("dirFrom(%q, %q) = %s, want %s", c[0], c[1], got, c[2])
		}
	}
}
