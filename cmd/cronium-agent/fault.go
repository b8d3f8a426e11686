//go:build !faultinject

package main

// faultHook is the fault-injection hook; only test builds (-tags
// faultinject) have one.
func faultHook(*cliEnv) func(string) { return nil }
