package docgen

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestGeneratedFilesCurrent fails when a man page or completion in the
// tree differs from what the tables give now.
func TestGeneratedFilesCurrent(t *testing.T) {
	for path, want := range Files() {
		got, err := os.ReadFile(filepath.Join("..", "..", path))
		if err != nil {
			t.Errorf("%s: %v: run go generate ./internal/docgen", path, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run go generate ./internal/docgen and commit it", path)
		}
	}
}
