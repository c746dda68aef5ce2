package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/signstar/signstar/internal/backend/tpm"
	"github.com/signstar/signstar/internal/config"
)

func tpmUsage() string { return "use: " + synopsis("tpm") }

// tpmCmd is `signstar tpm setup ...` (local only): it makes a signing key in
// the TPM, bound to the current values of the profile's pcrs, writes its key
// blob to key_blob (mode 0600) and its OpenPGP certificate, self-signed
// through the TPM, to --out and stdout. --out, --device, --key-blob, --auth-file
// and --pcrs default to the [profile.tpm] of --profile (or of the only tpm
// profile). --force replaces an existing blob and certificate: that is how
// a key whose PCRs changed is re-provisioned (a new key, so a new
// certificate to distribute).
func (r *run) tpmCmd(args []string) int {
	if len(args) == 0 || args[0] != "setup" {
		return r.fail(exitRefused, "unknown tpm command: "+tpmUsage())
	}
	f, pos, err := flags(spec("tpm"), args[1:])
	if err == nil && len(pos) > 0 {
		err = fmt.Errorf("unexpected argument %q", pos[0])
	}
	if err != nil {
		return r.fail(exitRefused, "tpm setup: "+err.Error()+": "+tpmUsage())
	}
	force := f["--force"] == "true"
	o := tpm.SetupOptions{UID: f["--uid"], Algo: f["--algo"], Now: now()}
	pcrsGiven := false
	if p := r.backendProfile(config.BackendTPM); p != nil {
		o.Device, o.KeyBlob, o.AuthFile, o.PCRs = p.TPM.Device, p.TPM.KeyBlob, p.TPM.AuthFile, p.TPM.PCRs
		pcrsGiven = true
		if f["--out"] == "" {
			f["--out"] = p.Key
		}
	}
	if v, ok := f["--device"]; ok {
		o.Device = v
	}
	if v, ok := f["--key-blob"]; ok {
		o.KeyBlob = v
	}
	if v, ok := f["--auth-file"]; ok {
		o.AuthFile = v
	}
	if v, ok := f["--pcrs"]; ok {
		if o.PCRs, err = parsePCRs(v); err != nil {
			return r.fail(exitRefused, "tpm setup: --pcrs: "+err.Error())
		}
		pcrsGiven = true
	}
	if o.Device == "" {
		o.Device = config.DefaultTPMDevice
	}
	if f["--uid"] == "" || f["--out"] == "" || o.KeyBlob == "" {
		return r.fail(exitRefused, "tpm setup needs --uid, --out and a key blob path (--key-blob, or key_blob in [profile.tpm]): "+tpmUsage())
	}
	if !pcrsGiven {
		return r.fail(exitRefused, "tpm setup: give --pcrs (e.g. 7, or \"\" for a key not bound to PCRs), or a tpm profile in the configuration")
	}
	out := f["--out"]
	if !force {
		for _, p := range []string{o.KeyBlob, out} {
			if _, err := os.Lstat(p); err == nil {
				return r.fail(exitRefused, "tpm setup: "+p+" exists: refusing to overwrite it (give --force to replace the key)")
			}
		}
	}
	res, err := tpm.Setup(o)
	if err != nil {
		var ue *tpm.UsageError
		if errors.As(err, &ue) {
			return r.fail(exitRefused, "tpm setup: "+err.Error())
		}
		return r.fail(exitFailed, "tpm setup: "+err.Error())
	}
	if err := writeReplacing(o.KeyBlob, res.Blob, 0o600); err != nil {
		return r.fail(exitFailed, "tpm setup: writing the key blob "+o.KeyBlob+": "+err.Error()+": nothing was changed; fix the path and run tpm setup again")
	}
	if err := writeReplacing(out, res.Cert, 0o644); err != nil {
		return r.fail(exitFailed, "tpm setup: the key blob is in "+o.KeyBlob+", but writing "+out+" failed: "+err.Error()+": fix --out and run tpm setup --force again")
	}
	return r.output(res.Cert)
}

// parsePCRs reads "7,16" ("" for none).
func parsePCRs(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []int
	for _, w := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(w))
		if err != nil || n < 0 || n > 23 {
			return nil, fmt.Errorf("%q is not a PCR (0 to 23)", w)
		}
		for _, m := range out {
			if m == n {
				return nil, fmt.Errorf("PCR %d is given twice", n)
			}
		}
		out = append(out, n)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out, nil
}

// writeReplacing writes data to path through a temporary file in the same
// directory and renames it into place, so that path holds the old or the
// new contents, never part of either.
func writeReplacing(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// backendProfile is the profile of backend named by --profile, or the only
// one, from the configuration; nil when there is none or it cannot be read.
func (r *run) backendProfile(backend string) *config.Profile {
	cfg, err := config.Load(r.inv.configPath)
	if err != nil {
		return nil
	}
	var found *config.Profile
	for i := range cfg.Profiles {
		p := &cfg.Profiles[i]
		if p.Backend != backend {
			continue
		}
		if r.inv.serverProfile != "" {
			if p.Name == r.inv.serverProfile {
				return p
			}
			continue
		}
		if found != nil {
			return nil
		}
		found = p
	}
	return found
}
