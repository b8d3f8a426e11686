package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/internal/command"
	"github.com/cronium/cronium-agent/internal/config"
	"github.com/cronium/cronium-agent/oci"
	"github.com/cronium/cronium-agent/runner"
	"github.com/cronium/cronium-agent/runner/container"
	"github.com/cronium/cronium-agent/runner/output"
	"github.com/cronium/cronium-agent/runtimes"
)

type sizeFlag struct{ v *config.ByteSize }

func (s sizeFlag) String() string {
	if s.v == nil {
		return ""
	}
	return s.v.String()
}

func (s sizeFlag) Set(v string) error {
	b, err := config.ParseByteSize(v)
	if err != nil {
		return err
	}
	*s.v = b
	return nil
}

func runExec(ctx context.Context, env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("exec", flag.ContinueOnError)
	cfgPath := configFlag(fs)
	rtName := fs.String("runtime", "bash", "the `RUNTIME` that runs the script: "+strings.Join(runtimes.Names(), ", "))
	file := fs.String("file", "", "script `FILE` to run")
	code := fs.String("c", "", "script `CODE` to run")
	vars := command.EnvFlag{}
	fs.Var(vars, "env", "environment variable `KEY=VALUE` (repeatable)")
	timeout := fs.Duration("timeout", 0, "job timeout (default: jobs.defaultTimeout)")
	var memory config.ByteSize
	fs.Var(sizeFlag{&memory}, "memory", "memory limit `SIZE`, e.g. 256MiB (default: resources.defaults.memory)")
	cpus := fs.Float64("cpus", 0, "CPU limit in cores (default: resources.defaults.cpu)")
	pids := fs.Int64("pids", 0, "process limit (default: resources.defaults.pids)")
	image := fs.String("image", "", "`IMAGE` to run in instead of the runtime's configured one")
	input := fs.String("input", "", "the step's input as `JSON`, served to cronium.input()")
	asJSON := fs.Bool("json", false, "print the whole result as one JSON object at the end (output still streams)")
	if err := parseFlags(env, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &exitError{Code: exitUsage, Err: fmt.Errorf("unexpected argument %q (the script goes in --file or -c)", fs.Arg(0))}
	}
	var script []byte
	switch {
	case *file != "" && *code != "":
		return &exitError{Code: exitUsage, Err: errors.New("give either --file or -c, not both")}
	case *file != "":
		b, err := os.ReadFile(*file)
		if err != nil {
			return &exitError{Code: exitUsage, Err: fmt.Errorf("read script: %w", err)}
		}
		script = b
	case *code != "":
		script = []byte(*code)
	default:
		return &exitError{Code: exitUsage, Err: errors.New("no script: give --file FILE or -c CODE")}
	}
	if _, err := runtimes.Lookup(*rtName); err != nil {
		return &exitError{Code: exitUsage, Err: err}
	}
	if *timeout < 0 || *cpus < 0 || *pids < 0 {
		return &exitError{Code: exitUsage, Err: errors.New("--timeout, --cpus and --pids must not be negative")}
	}

	var inputJSON json.RawMessage
	if *input != "" {
		if !json.Valid([]byte(*input)) {
			return &exitError{Code: exitUsage, Err: fmt.Errorf("--input is not valid JSON: %.80q", *input)}
		}
		inputJSON = json.RawMessage(*input)
	}
	cfg, err := loadConfig(env, *cfgPath)
	if err != nil {
		return err
	}
	job := runner.Job{
		Input:     inputJSON,
		UserID:    "local",
		EventName: "cronium-agent exec",
		Trigger:   "manual",
		ID:        "local_" + randomID(),
		Runtime:   *rtName,
		Script:    script,
		Env:       vars,
		Timeout:   *timeout,
		Image:     *image,
		Resources: oci.Resources{CPU: *cpus, MemoryBytes: int64(memory), Pids: *pids},
	}
	req, err := policyFromConfig(cfg).Request(job, time.Now())
	if err != nil {
		return &exitError{Code: exitUsage, Err: err}
	}
	ex, closeClient, err := openExecutor(ctx, env, cfg, true, nil)
	if err != nil {
		return err
	}
	defer closeClient()

	out := newStreams(env.stdout, env.stderr)
	res, err := ex.Run(ctx, req, out.write)
	out.flush()
	// The run's network is torn down in the background: wait for it, even
	// after Ctrl-C, so that nothing of the run outlives the command.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if werr := ex.Wait(wctx); werr != nil {
		env.log.Warn("run cleanup unfinished; `cronium-agent gc` removes the rest", "error", werr)
	}
	if err != nil {
		return &exitError{Code: exitAgent, Err: err}
	}
	if *asJSON {
		if err := printJSONResult(env, req, res); err != nil {
			return err
		}
	} else {
		printScriptResult(env, res)
	}
	switch {
	case res.Status == api.StatusTimeout:
		return &exitError{Code: exitTimeout, Err: fmt.Errorf("job timed out after %s and was stopped", req.Timeout)}
	case res.Status == api.StatusCancelled:
		return &exitError{Code: 130, Err: errors.New("job cancelled")}
	case res.OOMKilled && res.ExitCode != 0:
		return &exitError{Code: exitOOM, Err: fmt.Errorf("job killed: out of memory (limit %s)", config.ByteSize(res.MemoryLimit))}
	case res.ExitCode != 0:
		return &exitError{Code: res.ExitCode}
	}
	return nil
}

// streams writes entries back as the bytes the job wrote, stdout and stderr apart.
type streams struct {
	mu       sync.Mutex
	out, err *bufio.Writer
}

func newStreams(stdout, stderr io.Writer) *streams {
	return &streams{out: bufio.NewWriterSize(stdout, 64<<10), err: bufio.NewWriterSize(stderr, 4<<10)}
}

func (s *streams) write(e output.Entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.out
	switch e.Stream {
	case output.Stderr:
		w = s.err
	case output.System:
		// The capture's own notes (output over its budget): not the job's
		// stdout bytes.
		w = s.err
		w.WriteString("cronium-agent: ")
	}
	w.Write(e.Data)
	if !e.Fragment {
		w.WriteByte('\n')
	}
	// Live output: flush unless a fragment promises more of the same line.
	if !e.Fragment {
		w.Flush()
	}
}

func (s *streams) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.out.Flush()
	s.err.Flush()
}

func randomID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// printScriptResult shows what the script set through the runtime API,
// after its output, on stderr so that stdout stays the script's own.
func printScriptResult(env *cliEnv, res container.Result) {
	if res.HasOutput {
		fmt.Fprintf(env.stderr, "output: %s\n", res.Output)
	}
	if res.HasCondition {
		fmt.Fprintf(env.stderr, "condition: %t\n", res.Condition)
	}
}

// jsonResult is what --json prints.
type jsonResult struct {
	JobID       string          `json:"jobId"`
	ExecutionID string          `json:"executionId"`
	Status      string          `json:"status"`
	ExitCode    int             `json:"exitCode"`
	ScriptExit  int             `json:"scriptExitCode"`
	OOMKilled   bool            `json:"oomKilled,omitempty"`
	MemoryLimit int64           `json:"memoryLimit,omitempty"`
	Output      json.RawMessage `json:"output,omitempty"`
	Condition   *bool           `json:"condition,omitempty"`
	StartedAt   time.Time       `json:"startedAt"`
	FinishedAt  time.Time       `json:"finishedAt"`
	DurationMS  int64           `json:"durationMs"`
	Entries     uint64          `json:"logEntries"`
}

func printJSONResult(env *cliEnv, req container.Request, res container.Result) error {
	r := jsonResult{
		JobID: req.JobID, ExecutionID: req.Execution.ExecutionID, Status: string(res.Status),
		ExitCode: res.BackendExitCode(), ScriptExit: res.ExitCode, OOMKilled: res.OOMKilled,
		StartedAt: res.StartedAt, FinishedAt: res.FinishedAt, DurationMS: res.FinishedAt.Sub(res.StartedAt).Milliseconds(),
		Entries: res.Entries,
	}
	if res.OOMKilled {
		r.MemoryLimit = res.MemoryLimit
	}
	if res.HasOutput {
		r.Output = res.Output
	}
	if res.HasCondition {
		c := res.Condition
		r.Condition = &c
	}
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(env.stdout, "%s\n", data)
	return err
}
