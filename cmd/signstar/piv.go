package main

// pivCmd is `signstar piv setup ...` (local only).
//
// Hook for the PIV owner.
func (r *run) pivCmd(args []string) int {
	return r.fail(exitFailed, "piv setup is not built into this signstar")
}
