//go:build linux && (seccompgen || !(amd64 || arm64))

package sandbox

// No compiled filter for this architecture (or seccompgen is building this
// package, which must not need the programs it is about to write): Check
// reports seccomp missing, so Enforce refuses.
var seccompProgram []byte

const seccompAuditArch = 0
