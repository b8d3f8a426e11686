package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/backend/devserver"
	"github.com/cronium/cronium-agent/internal/command"
)

// agentRow is a line of `agents`, and its JSON.
type agentRow struct {
	ID            string     `json:"id"`
	Host          string     `json:"host"`
	Version       string     `json:"version"`
	Instance      string     `json:"instance"`
	State         string     `json:"state"`
	LastHeartbeat *time.Time `json:"lastHeartbeat,omitempty"`
	RunningJobs   []string   `json:"runningJobs"`
	FreeSlots     int        `json:"freeSlots"`
	Refusals      int        `json:"refusals,omitempty"`
}

func runAgents(ctx context.Context, s session, args []string) error {
	fs := flag.NewFlagSet("agents", flag.ContinueOnError)
	cf := addClientFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := s.args(fs, args); err != nil {
		return err
	}
	c, err := cf.client(s)
	if err != nil {
		return err
	}
	orchs, err := c.Orchestrators(ctx)
	if err != nil {
		return clientError(c, err)
	}
	rows := make([]agentRow, 0, len(orchs))
	for _, o := range orchs {
		r := agentRow{ID: o.ID, Host: o.Host, Version: o.Version, Instance: o.Instance, State: o.StateNow, LastHeartbeat: o.HeartbeatAt, RunningJobs: []string{}, Refusals: o.Refusals}
		var hb api.Heartbeat
		if json.Unmarshal(o.LastHeartbeat, &hb) == nil {
			r.FreeSlots = hb.Capacity.AvailableSlots
			if hb.RunningJobs != nil {
				r.RunningJobs = hb.RunningJobs
			}
		}
		rows = append(rows, r)
	}
	if *asJSON {
		return command.PrintJSON(s.Stdout, rows)
	}
	tw := tabwriter.NewWriter(s.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tHOST\tVERSION\tINSTANCE\tSTATE\tLAST HEARTBEAT\tRUNNING\tFREE")
	dash := func(v string) string {
		if v == "" {
			return "-"
		}
		return v
	}
	for _, r := range rows {
		last := "never"
		if r.LastHeartbeat != nil {
			last = time.Since(*r.LastHeartbeat).Round(time.Second).String() + " ago"
		}
		state := r.State
		if r.Refusals > 0 {
			state += fmt.Sprintf(" (%d calls of a second process refused)", r.Refusals)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\n", r.ID, dash(r.Host), dash(r.Version), dash(r.Instance), state, last, len(r.RunningJobs), r.FreeSlots)
	}
	return tw.Flush()
}

var agentsHelp = command.HelpPage{
	Summary:  "list the agents that called the backend",
	Synopsis: []string{"agents [--json] [--backend URL] [--token TOKEN]"},
	Description: `agents lists every agent (orchestrator id) that called the backend, one a line: ID, HOST, VERSION and INSTANCE (the agent process, from the headers it sends with every call), STATE (` + devserver.AgentOnline + ` while it heartbeats, ` + devserver.AgentDisconnected + ` after three missed heartbeats, the backend inferring the interval from the last two; ` + devserver.AgentLost + ` after serve's --lost-after without one, its jobs then given back: claimed ones requeued, running ones failed or retried elsewhere), LAST HEARTBEAT, RUNNING (the jobs its last heartbeat named) and FREE (its free slots then). A STATE that counts refused calls means a second agent process used the same id while this one was live: the backend answered its claims with 409 and that process stopped claiming. --json prints the list as JSON, with the running jobs' ids.

` + clientNote,
	Env:      clientEnv,
	Exit:     clientExit,
	Examples: []string{"{prog} agents", "{prog} agents --json | jq '.[] | select(.state != \"online\")'"},
	SeeAlso:  []string{"{prog} jobs --help", "docs/operations.md (The development backend)"},
}
