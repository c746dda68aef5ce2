package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/signstar/signstar/internal/backend/piv"
	"github.com/signstar/signstar/internal/config"
)

var pivUsage = "use: " + synopsis("piv")

// pivCmd is `signstar piv setup ...` (local only): it puts a key in a PIV
// slot, has the card self-sign an OpenPGP certificate for it, and writes
// that certificate to --out and stdout. --reader, --slot and --pin-file
// default to the [profile.piv] of --profile (or of the only piv profile)
// when a configuration is readable.
func (r *run) pivCmd(args []string) int {
	if len(args) == 0 || args[0] != "setup" {
		return r.fail(exitRefused, "unknown piv command: "+pivUsage)
	}
	f, pos, err := flags(spec("piv"), args[1:])
	if err == nil && len(pos) > 0 {
		err = fmt.Errorf("unexpected argument %q", pos[0])
	}
	if err != nil {
		return r.fail(exitRefused, "piv setup: "+err.Error()+": "+pivUsage)
	}
	if p := r.backendProfile(config.BackendPIV); p != nil {
		for flag, val := range map[string]string{"--reader": p.PIV.Reader, "--slot": p.PIV.Slot, "--pin-file": p.PIV.PINFile} {
			if f[flag] == "" {
				f[flag] = val
			}
		}
	}
	for _, need := range []string{"--reader", "--slot", "--uid", "--out", "--pin-file"} {
		if f[need] == "" {
			return r.fail(exitRefused, "piv setup needs "+need+": "+pivUsage)
		}
	}
	out := f["--out"]
	if _, err := os.Lstat(out); err == nil {
		return r.fail(exitRefused, "piv setup: "+out+" exists: refusing to overwrite it")
	}
	cert, err := piv.Setup(piv.SetupOptions{
		Reader:               f["--reader"],
		Slot:                 f["--slot"],
		UID:                  f["--uid"],
		Generate:             f["--generate"],
		ImportFile:           f["--import"],
		ImportPassphraseFile: f["--passphrase-file"],
		ManagementKeyFile:    f["--management-key-file"],
		PINFile:              f["--pin-file"],
		Force:                f["--force"] == "true",
		Now:                  now(),
	})
	if err != nil {
		var ue *piv.UsageError
		if errors.As(err, &ue) {
			return r.fail(exitRefused, "piv setup: "+err.Error())
		}
		return r.fail(exitFailed, "piv setup: "+err.Error())
	}
	fh, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err == nil {
		_, err = fh.Write(cert)
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return r.fail(exitFailed, "piv setup: the key is on the card, but writing "+out+" failed: "+err.Error()+": fix --out and run piv setup again (with --force to replace the key)")
	}
	return r.output(cert)
}
