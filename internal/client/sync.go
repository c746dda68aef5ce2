package client

import (
	"errors"
	"os"
	"sync"
)

// syncWorkers is how many fsyncs run at once: the file system commits
// concurrent ones together (ext4's journal, for one), so a batch of 200
// small signatures costs about one commit, not 200, and not a syncfs of
// every dirty file of the machine (BENCHMARKS.md).
const syncWorkers = 32

// syncFiles puts the files on disk before they are renamed into place.
func syncFiles(files []string, _ map[string]bool) error {
	jobs := make(chan string)
	errs := make(chan error, len(files))
	var wg sync.WaitGroup
	for w := 0; w < min(syncWorkers, len(files)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range jobs {
				f, err := os.Open(p)
				if err == nil {
					err = f.Sync()
					f.Close()
				}
				errs <- err
			}
		}()
	}
	for _, p := range files {
		jobs <- p
	}
	close(jobs)
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}
