package hello

func greeting(name string) string {
	if name == "" {
		name = "World"
	}
	return "Hello, " + name + "!"
}
