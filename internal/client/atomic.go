package client

import (
	"errors"
	"os"
	"path/filepath"
)

// Staged is a set of files written to temporary files beside their final
// names and renamed into place together by Commit: a failure before Commit
// leaves none of them, Abort removes the temporaries. The temporaries are
// hidden (".NAME.tmp-*"), so a client killed outright leaves no file
// under a final name.
type Staged struct {
	tmps, finals []string
	dirs         map[string]bool
}

// Add writes data to a temporary file for final; Commit syncs it to disk
// before any rename.
func (s *Staged) Add(final string, data []byte, mode os.FileMode) error {
	dir, base := filepath.Split(final)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	s.tmps = append(s.tmps, tmp)
	s.finals = append(s.finals, final)
	if s.dirs == nil {
		s.dirs = map[string]bool{}
	}
	s.dirs[dir] = true
	return nil
}

// Commit syncs the temporary files to disk, then renames each to its
// final name, then syncs the directories. If anything fails, the files
// already renamed and the temporaries left are removed, so that no file of
// the set stays.
func (s *Staged) Commit() error {
	if err := syncFiles(s.tmps, s.dirs); err != nil {
		s.Abort()
		return err
	}
	for i := range s.tmps {
		if err := os.Rename(s.tmps[i], s.finals[i]); err != nil {
			for j := 0; j < i; j++ {
				os.Remove(s.finals[j])
			}
			for j := i; j < len(s.tmps); j++ {
				os.Remove(s.tmps[j])
			}
			s.tmps, s.finals = nil, nil
			return err
		}
	}
	s.tmps, s.finals = nil, nil
	var errs []error
	for dir := range s.dirs {
		errs = append(errs, syncDir(dir))
	}
	return errors.Join(errs...)
}

// Abort removes the temporary files.
func (s *Staged) Abort() {
	for _, t := range s.tmps {
		os.Remove(t)
	}
	s.tmps, s.finals = nil, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// WriteFileAtomic writes one file through a temporary and a rename,
// making its directory (0700) when missing.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	var s Staged
	if err := s.Add(path, data, mode); err != nil {
		return err
	}
	return s.Commit()
}
