module example.com/greeter

go 1.19

// kiln's Go buildpack supplies the framework: no replace is needed here,
// and any replace of it here is ignored by the build.
require kiln.dev/functions-framework v0.0.0
