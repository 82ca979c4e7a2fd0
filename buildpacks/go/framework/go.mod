module kiln.dev/functions-framework

go 1.19
