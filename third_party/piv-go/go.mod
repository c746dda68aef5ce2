module github.com/go-piv/piv-go/v2

go 1.26.0

require (
	golang.org/x/crypto v0.50.0
	golang.org/x/sys v0.49.0
)
