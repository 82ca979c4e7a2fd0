module kiln.dev/gogen

go 1.19
