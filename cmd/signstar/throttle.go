package main

import (
	"fmt"
	"time"

	"github.com/signstar/signstar/internal/policy"
)

// refusalLimitsForTests, set with -ldflags -X as "PER_CLIENT/IN_WINDOW/SPACING"
// (e.g. "3/100/400ms"), replaces policy's limits on refusals so that a test
// can reach them quickly; nothing a user or client sends can reach it.
var refusalLimitsForTests string

func setRefusalLimitsForTests() {
	var per, all int
	var spacing string
	if _, err := fmt.Sscanf(refusalLimitsForTests, "%d/%d/%s", &per, &all, &spacing); err != nil {
		return
	}
	d, err := time.ParseDuration(spacing)
	if err != nil {
		return
	}
	policy.RefusalsPerClient, policy.RefusalsInWindow, policy.RefusalSpacing = per, all, d
}
