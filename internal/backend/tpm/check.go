package tpm

import (
	"fmt"
	"strings"
	"time"

	"github.com/google/go-tpm/tpm2"
)

// Check opens the TPM of cfg as signing does, before the lock-down, and says
// in one line what signing will find: the kind of device, the TPM's maker,
// the dictionary-attack counter and how long a round trip takes. The
// descriptor it opens is the one the sandbox keeps; after the lock-down
// signing only reads and writes it, which the seccomp filter allows. An
// error means signing with this profile will fail.
func Check(cfg Options) (string, error) {
	c, err := dial(cfg.Device)
	if err != nil {
		return "", err
	}
	defer c.Close()
	kind := "kernel resource manager: other processes may use the TPM at the same time"
	switch {
	case c.fd < 0:
		kind = "swtpm command socket (for tests)"
	case c.raw:
		kind = "raw device without resource manager: one process at a time, and tpm2-abrmd must not hold it; use /dev/tpmrm0"
	}
	start := time.Now()
	rsp, err := run(func() (*tpm2.GetCapabilityResponse, error) {
		return tpm2.GetCapability{Capability: tpm2.TPMCapTPMProperties, Property: uint32(tpm2.TPMPTManufacturer), PropertyCount: 1}.Execute(c)
	})
	rtt := time.Since(start)
	if err != nil {
		return "", fmt.Errorf("TPM %s does not answer: %w", cfg.Device, err)
	}
	maker := "?"
	if v, err := property(rsp, tpm2.TPMPTManufacturer); err == nil {
		maker = strings.TrimRight(string([]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), "\x00 ")
	}
	da := "dictionary-attack counter unknown"
	if st, err := readDA(c); err == nil {
		da = fmt.Sprintf("dictionary-attack counter %d of %d", st.counter, st.max)
		if st.inLockout {
			da += " (IN LOCKOUT: keys with an auth value cannot sign)"
		}
	}
	bound := "not bound to PCRs"
	if len(cfg.PCRs) > 0 {
		bound = "bound to PCR " + joinInts(cfg.PCRs, ",")
	}
	return fmt.Sprintf("%s: %s, maker %q, %s, round trip %v; key %s; the descriptor is opened before lock-down and kept (read/write only)",
		cfg.Device, kind, maker, da, rtt.Round(10*time.Microsecond), bound), nil
}
