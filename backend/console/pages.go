package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/backend/devserver"
)

// jobRow is a line of the jobs list, as the page and its script show it.
type jobRow struct {
	ID       string `json:"id"`
	Status   string `json:"status"`
	Type     string `json:"type"`
	Runtime  string `json:"runtime"`
	Agent    string `json:"agent"`
	Created  string `json:"created"`
	Started  string `json:"started"`
	Finished string `json:"finished"`
	Duration string `json:"duration"`
	Exit     string `json:"exit"`
}

// listRows is how many jobs the list shows: the newest that match.
const listRows = 200

// listJobs returns the newest listRows jobs with status (any when empty)
// whose id, type, runtime, agent or status contains q, newest first, and
// how many match in all.
func (c *Console) listJobs(r *http.Request) ([]jobRow, int, error) {
	jobs, err := c.b.Jobs(r.Context())
	if err != nil {
		return nil, 0, err
	}
	matched := 0
	status := r.URL.Query().Get("status")
	q := strings.ToLower(strings.TrimSpace(r.URL.Query().Get("q")))
	rows := []jobRow{}
	for i := len(jobs) - 1; i >= 0; i-- {
		j := jobs[i]
		if status != "" && j.Status != status {
			continue
		}
		if q != "" && !strings.Contains(strings.ToLower(j.ID+" "+j.Type+" "+j.Runtime+" "+j.Orchestrator+" "+j.Status), q) {
			continue
		}
		if matched++; len(rows) == listRows {
			continue
		}
		row := jobRow{ID: j.ID, Status: j.Status, Type: j.Type, Runtime: j.Runtime, Agent: j.Orchestrator,
			Created: fmtTime(j.CreatedAt), Started: fmtTime(j.StartedAt), Finished: fmtTime(j.FinishedAt)}
		if j.StartedAt != nil {
			row.Duration = fmtDuration(j.StartedAt, j.FinishedAt)
		}
		if j.ExitCode != nil {
			row.Exit = strconv.Itoa(*j.ExitCode)
		}
		rows = append(rows, row)
	}
	return rows, matched, nil
}

func (c *Console) jobsPage(w http.ResponseWriter, r *http.Request, s session) {
	rows, matched, err := c.listJobs(r)
	if err != nil {
		c.backendError(w, r, s, err)
		return
	}
	c.render(w, r, http.StatusOK, "jobs", s, map[string]any{"Jobs": rows, "Matched": matched, "Status": r.URL.Query().Get("status"), "Q": r.URL.Query().Get("q")})
}

func (c *Console) jobsJSON(w http.ResponseWriter, r *http.Request, s session) {
	rows, matched, err := c.listJobs(r)
	if err != nil {
		plainError(w, err)
		return
	}
	writeJSON(w, map[string]any{"jobs": rows, "matched": matched})
}

// jobDetail is what a job's page shows besides its log.
type jobDetail struct {
	Status     string          `json:"status"`
	Final      bool            `json:"final"`
	Exit       string          `json:"exit"`
	Started    string          `json:"started"`
	Finished   string          `json:"finished"`
	Duration   string          `json:"duration"`
	Message    string          `json:"message"`
	Output     string          `json:"output"`
	Condition  string          `json:"condition"`
	Executions []executionView `json:"executions"`
	Attempts   []attemptView   `json:"attempts"`
}

type executionView struct {
	ID     string     `json:"id"`
	Server string     `json:"server"`
	Status string     `json:"status"`
	Exit   string     `json:"exit"`
	Phases [][]string `json:"phases"`
}

type attemptView struct {
	At, Event, Detail string
}

func (c *Console) detail(r *http.Request, v devserver.JobView) jobDetail {
	d := jobDetail{Status: v.Status, Final: v.Done(), Started: fmtTime(v.StartedAt), Finished: fmtTime(v.CompletedAt), Message: cleanLine(v.StatusMessage)}
	if v.ExitCode != nil {
		d.Exit = strconv.Itoa(*v.ExitCode)
	}
	if v.StartedAt != nil {
		d.Duration = fmtDuration(v.StartedAt, v.CompletedAt)
	}
	if v.Error != "" {
		d.Message = strings.TrimSpace(d.Message + " " + cleanLine(v.Error))
	}
	if len(v.ScriptOutput) > 0 && string(v.ScriptOutput) != "null" {
		d.Output = prettyJSON(v.ScriptOutput)
	}
	if v.Condition != nil {
		d.Condition = strconv.FormatBool(*v.Condition)
	}
	if execs, err := c.b.Executions(r.Context(), v.ID); err == nil {
		for _, e := range execs {
			ev := executionView{ID: e.ID, Server: e.ServerName, Status: e.Status}
			if code := e.ExitCode(); code != nil {
				ev.Exit = strconv.Itoa(*code)
			}
			ev.Phases = phases(e)
			d.Executions = append(d.Executions, ev)
		}
	}
	for _, h := range v.History {
		d.Attempts = append(d.Attempts, attemptView{At: fmtTime(h.At), Event: h.Event, Detail: cleanLine(h.Detail)})
	}
	return d
}

// phases lists an execution's timings: the durations and times its
// updates reported (fields ending in Ms or At, and its metadata's phases).
func phases(e devserver.ExecutionView) [][]string {
	var out [][]string
	add := func(m map[string]json.RawMessage) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			lk := strings.ToLower(k)
			if strings.HasSuffix(lk, "ms") || strings.HasSuffix(lk, "at") || strings.Contains(lk, "duration") || strings.Contains(lk, "phase") || strings.HasSuffix(lk, "time") {
				out = append(out, []string{k, cleanLine(strings.Trim(string(m[k]), `"`))})
			}
		}
	}
	add(e.Fields)
	add(e.ExecutionMetadata)
	return out
}

func prettyJSON(raw json.RawMessage) string {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return cleanLine(string(raw))
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return cleanLine(string(raw))
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

func (c *Console) jobPage(w http.ResponseWriter, r *http.Request, s session) {
	v, err := c.b.Job(r.Context(), r.PathValue("id"))
	if err != nil {
		c.backendError(w, r, s, err)
		return
	}
	// The tail first: a log of millions of lines shows its end at once,
	// and earlier lines load on demand.
	var after uint64
	if v.LastLogSeq > uint64(c.tailLines) {
		after = v.LastLogSeq - uint64(c.tailLines)
	}
	page, err := c.b.LogRange(r.Context(), v.ID, after, c.tailLines)
	if err != nil {
		c.backendError(w, r, s, err)
		return
	}
	lines := viewLines(page.Entries)
	last := after
	if n := len(lines); n > 0 {
		last = lines[n-1].Seq
	}
	first := uint64(0)
	if len(lines) > 0 {
		first = lines[0].Seq
	}
	c.render(w, r, http.StatusOK, "job", s, map[string]any{
		"Job": v, "D": c.detail(r, v), "Lines": lines, "After": last, "First": first,
		"Earlier": first > 1, "Script": jobScript(v.Job),
	})
}

// jobScript is the script of a wire job, for display.
func jobScript(wire json.RawMessage) string {
	var j struct {
		Execution struct {
			Script *struct {
				Content string `json:"content"`
			} `json:"script"`
		} `json:"execution"`
	}
	if json.Unmarshal(wire, &j) != nil || j.Execution.Script == nil {
		return ""
	}
	return strings.ToValidUTF8(j.Execution.Script.Content, "\uFFFD")
}

func (c *Console) jobState(w http.ResponseWriter, r *http.Request, _ session) {
	v, err := c.b.Job(r.Context(), r.PathValue("id"))
	if err != nil {
		plainError(w, err)
		return
	}
	writeJSON(w, c.detail(r, v))
}

// jobLines answers the page's "earlier lines": at most limit lines with
// seq in (after, before).
func (c *Console) jobLines(w http.ResponseWriter, r *http.Request, _ session) {
	q := r.URL.Query()
	after, err1 := strconv.ParseUint(q.Get("after"), 10, 64)
	before, err2 := strconv.ParseUint(q.Get("before"), 10, 64)
	limit, err3 := strconv.Atoi(q.Get("limit"))
	if err1 != nil || err2 != nil || err3 != nil || limit <= 0 || limit > 10000 {
		http.Error(w, "want after, before and limit (1 to 10000)", http.StatusBadRequest)
		return
	}
	page, err := c.b.LogRange(r.Context(), r.PathValue("id"), after, limit)
	if err != nil {
		plainError(w, err)
		return
	}
	lines := viewLines(page.Entries)
	for i, l := range lines {
		if l.Seq >= before {
			lines = lines[:i]
			break
		}
	}
	writeJSON(w, map[string]any{"lines": lines})
}

// jobDownload writes the whole log as `cronium-backend logs` prints it to
// a file: stdout and stderr lines as they are, other lines after their
// stream's name in brackets.
func (c *Console) jobDownload(w http.ResponseWriter, r *http.Request, s session) {
	id := r.PathValue("id")
	page, err := c.b.LogRange(r.Context(), id, 0, 10000)
	if err != nil {
		c.backendError(w, r, s, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", id+".log"))
	for {
		var b strings.Builder
		var last uint64
		for _, l := range page.Entries {
			switch l.Stream {
			case "stdout", "stderr":
				b.WriteString(l.Line)
			default:
				b.WriteString("[" + l.Stream + "] " + l.Line)
			}
			b.WriteByte('\n')
			last = l.Seq
		}
		if _, err := w.Write([]byte(b.String())); err != nil || !page.More {
			return
		}
		if page, err = c.b.LogRange(r.Context(), id, last, 10000); err != nil {
			c.log.Warn("console: log download cut short", "job", id, "error", err)
			return
		}
	}
}

func (c *Console) jobCancel(w http.ResponseWriter, r *http.Request, s session) {
	id := r.PathValue("id")
	if _, err := c.b.Cancel(r.Context(), id); err != nil {
		c.backendError(w, r, s, err)
		return
	}
	http.Redirect(w, r, "/jobs/"+id, http.StatusSeeOther)
}

func (c *Console) jobRerun(w http.ResponseWriter, r *http.Request, s session) {
	id, err := c.b.Rerun(r.Context(), r.PathValue("id"))
	if err != nil {
		c.backendError(w, r, s, err)
		return
	}
	http.Redirect(w, r, "/jobs/"+id, http.StatusSeeOther)
}

// runForm is the "Run now" form's fields, kept to show them back with
// what was wrong.
type runForm struct {
	Runtime, Script, Env, Input, Timeout, Server string
}

func (c *Console) runPage(w http.ResponseWriter, r *http.Request, s session) {
	c.showRun(w, r, s, http.StatusOK, runForm{Runtime: "python", Timeout: "60s", Input: "{}"}, "")
}

func (c *Console) showRun(w http.ResponseWriter, r *http.Request, s session, code int, f runForm, problem string) {
	servers, err := c.b.Servers(r.Context())
	if err != nil {
		c.backendError(w, r, s, err)
		return
	}
	c.render(w, r, code, "run", s, map[string]any{"F": f, "Error": problem, "Servers": servers, "Runtimes": []string{"bash", "python", "node"}})
}

func (c *Console) runSubmit(w http.ResponseWriter, r *http.Request, s session) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<20)
	f := runForm{Runtime: r.PostFormValue("runtime"), Script: r.PostFormValue("script"), Env: r.PostFormValue("env"),
		Input: r.PostFormValue("input"), Timeout: strings.TrimSpace(r.PostFormValue("timeout")), Server: r.PostFormValue("server")}
	req, problem := f.request()
	if problem != "" {
		c.showRun(w, r, s, http.StatusBadRequest, f, problem)
		return
	}
	id, err := c.b.Submit(r.Context(), req)
	if err != nil {
		c.showRun(w, r, s, http.StatusBadRequest, f, err.Error())
		return
	}
	http.Redirect(w, r, "/jobs/"+id, http.StatusSeeOther)
}

// request checks the form and makes the job of it, or says what is wrong.
func (f runForm) request() (devserver.SubmitRequest, string) {
	req := devserver.SubmitRequest{Runtime: f.Runtime, Script: strings.ReplaceAll(f.Script, "\r\n", "\n"), Timeout: f.Timeout, ServerID: f.Server}
	switch f.Runtime {
	case "bash", "python", "node":
	default:
		return req, fmt.Sprintf("runtime %q: choose bash, python or node", f.Runtime)
	}
	if strings.TrimSpace(req.Script) == "" {
		return req, "the script is empty"
	}
	if f.Timeout != "" {
		d, err := time.ParseDuration(f.Timeout)
		if err != nil || d <= 0 {
			return req, fmt.Sprintf("timeout %q: give a duration such as 30s or 5m", f.Timeout)
		}
	}
	if in := strings.TrimSpace(f.Input); in != "" {
		var v map[string]any
		if err := json.Unmarshal([]byte(in), &v); err != nil {
			return req, fmt.Sprintf("input is not a JSON object: %v", err)
		}
		req.Input = json.RawMessage(in)
	}
	for i, line := range strings.Split(strings.ReplaceAll(f.Env, "\r\n", "\n"), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return req, fmt.Sprintf("environment line %d: want NAME=value", i+1)
		}
		if req.Env == nil {
			req.Env = map[string]string{}
		}
		req.Env[k] = v
	}
	return req, ""
}

// agentView is an agent as its page shows it.
type agentView struct {
	ID        string
	Host      string
	Version   string
	Instance  string
	State     string
	Heartbeat string
	Capacity  string
	Running   []string
	Metrics   [][]string
}

func (c *Console) agentsPage(w http.ResponseWriter, r *http.Request, s session) {
	orchs, err := c.b.Orchestrators(r.Context())
	if err != nil {
		c.backendError(w, r, s, err)
		return
	}
	var agents []agentView
	for _, o := range orchs {
		a := agentView{ID: o.ID, Host: o.Host, Version: o.Version, Instance: o.Instance, State: o.StateNow, Heartbeat: ago(o.HeartbeatAt)}
		if o.Refusals > 0 {
			a.State += fmt.Sprintf(" (%d calls of a second process under this id refused)", o.Refusals)
		}
		var hb api.Heartbeat
		if json.Unmarshal(o.LastHeartbeat, &hb) == nil {
			a.Capacity = fmt.Sprintf("%d of %d running, %d free", hb.Capacity.CurrentJobs, hb.Capacity.MaxJobs, hb.Capacity.AvailableSlots)
			a.Running = hb.RunningJobs
		}
		var m map[string]any
		if json.Unmarshal(o.LastMetrics, &m) == nil {
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				b, _ := json.Marshal(m[k])
				a.Metrics = append(a.Metrics, []string{k, cleanLine(string(b))})
			}
		}
		agents = append(agents, a)
	}
	c.render(w, r, http.StatusOK, "agents", s, map[string]any{"Agents": agents})
}

func (c *Console) serversPage(w http.ResponseWriter, r *http.Request, s session) {
	c.showServers(w, r, s, http.StatusOK, "")
}

func (c *Console) showServers(w http.ResponseWriter, r *http.Request, s session, code int, problem string) {
	servers, err := c.b.Servers(r.Context())
	if err != nil {
		c.backendError(w, r, s, err)
		return
	}
	c.render(w, r, code, "servers", s, map[string]any{"Servers": servers, "Error": problem})
}

func (c *Console) serverAdd(w http.ResponseWriter, r *http.Request, s session) {
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	port, err := strconv.Atoi(strings.TrimSpace(r.PostFormValue("port")))
	if err != nil {
		c.showServers(w, r, s, http.StatusBadRequest, "port: give a number")
		return
	}
	sv := api.Server{Name: r.PostFormValue("name"), Host: strings.TrimSpace(r.PostFormValue("host")), Port: port,
		Username: strings.TrimSpace(r.PostFormValue("username")), PrivateKey: r.PostFormValue("privateKey"), Password: r.PostFormValue("password")}
	if _, err := c.b.AddServer(r.Context(), sv); err != nil {
		c.showServers(w, r, s, http.StatusBadRequest, err.Error())
		return
	}
	http.Redirect(w, r, "/servers", http.StatusSeeOther)
}

func (c *Console) serverRemove(w http.ResponseWriter, r *http.Request, s session) {
	if err := c.b.RemoveServer(r.Context(), r.PathValue("id")); err != nil {
		c.backendError(w, r, s, err)
		return
	}
	http.Redirect(w, r, "/servers", http.StatusSeeOther)
}

func (c *Console) variablesPage(w http.ResponseWriter, r *http.Request, s session) {
	c.showVariables(w, r, s, http.StatusOK, "")
}

func (c *Console) showVariables(w http.ResponseWriter, r *http.Request, s session, code int, problem string) {
	vars, err := c.b.Variables(r.Context())
	if err != nil {
		c.backendError(w, r, s, err)
		return
	}
	c.render(w, r, code, "variables", s, map[string]any{"Variables": vars, "Error": problem})
}

func (c *Console) variableSet(w http.ResponseWriter, r *http.Request, s session) {
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	user, key := strings.TrimSpace(r.PostFormValue("user")), strings.TrimSpace(r.PostFormValue("key"))
	if user == "" || key == "" {
		c.showVariables(w, r, s, http.StatusBadRequest, "give a user id and a key")
		return
	}
	if err := c.b.SetVariable(r.Context(), user, key, r.PostFormValue("value")); err != nil {
		c.showVariables(w, r, s, http.StatusBadRequest, err.Error())
		return
	}
	http.Redirect(w, r, "/variables", http.StatusSeeOther)
}

func (c *Console) variableDelete(w http.ResponseWriter, r *http.Request, s session) {
	if err := c.b.DeleteVariable(r.Context(), r.PostFormValue("user"), r.PostFormValue("key")); err != nil {
		c.backendError(w, r, s, err)
		return
	}
	http.Redirect(w, r, "/variables", http.StatusSeeOther)
}
