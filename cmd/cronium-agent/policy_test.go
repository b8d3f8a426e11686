package main

import (
	"reflect"
	"testing"

	"github.com/cronium/cronium-agent/internal/config"
	"github.com/cronium/cronium-agent/runner"
)

// runner.DefaultPolicy repeats the configuration's defaults (the runner
// does not read the configuration): this keeps the two the same.
func TestDefaultPolicyMatchesConfigDefaults(t *testing.T) {
	if got, want := policyFromConfig(config.Default()), runner.DefaultPolicy(); !reflect.DeepEqual(got, want) {
		t.Errorf("policy of the default configuration:\n%+v\nrunner.DefaultPolicy:\n%+v", got, want)
	}
}
