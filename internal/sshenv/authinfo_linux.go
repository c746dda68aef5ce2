package sshenv

import (
	"io"
	"os"
	"syscall"
)

func readAuthInfo(path string) ([]byte, error) {
	// O_NONBLOCK: a FIFO planted under the name must not hang us before the
	// regular-file check.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, &AuthInfoError{Path: path, Reason: "cannot open: " + errText(err)}
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, &AuthInfoError{Path: path, Reason: "cannot stat: " + errText(err)}
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.Mode().IsRegular():
		return nil, &AuthInfoError{Path: path, Reason: "not a regular file"}
	case !ok || int(st.Uid) != os.Getuid():
		return nil, &AuthInfoError{Path: path, Reason: "not owned by the current user"}
	case fi.Mode().Perm()&0o077 != 0:
		return nil, &AuthInfoError{Path: path, Reason: "accessible to other users (sshd creates it 0600)"}
	case st.Nlink != 1:
		return nil, &AuthInfoError{Path: path, Reason: "has more than one link"}
	case fi.Size() > MaxAuthInfo:
		return nil, &AuthInfoError{Path: path, Reason: "file is too large"}
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxAuthInfo+1))
	if err != nil {
		return nil, &AuthInfoError{Path: path, Reason: "cannot read: " + errText(err)}
	}
	if len(data) > MaxAuthInfo {
		return nil, &AuthInfoError{Path: path, Reason: "file is too large"}
	}
	return data, nil
}

func errText(err error) string {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err.Error()
	}
	return err.Error()
}
