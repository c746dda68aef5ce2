package main

import (
	"fmt"
	"time"

	"github.com/signstar/signstar/internal/policy"
)

// setRefusalLimitsForTests applies refusalLimitsForTests (a test hook,
// "" in a release binary: hooks.go).
func setRefusalLimitsForTests() {
	if refusalLimitsForTests == "" {
		return
	}
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
