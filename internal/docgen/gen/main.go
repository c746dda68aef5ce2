// Command gen writes the man pages and completions of internal/docgen into
// the repository (go generate ./internal/docgen, run in that directory).
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/signstar/signstar/internal/docgen"
)

func main() {
	root := filepath.Join("..", "..")
	if len(os.Args) > 1 {
		root = os.Args[1]
	}
	for path, data := range docgen.Files() {
		full := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
	}
}
