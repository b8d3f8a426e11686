package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/cronium/cronium-agent/internal/testenv"
)

// backendProc is `cronium-backend serve` (through the agent's backend
// alias) as a process, as an operator starts it: the API and the console.
type backendProc struct {
	url string
	env []string
}

func startBackendProc(t *testing.T) *backendProc {
	t.Helper()
	cmd := exec.Command(agentBin, "backend", "serve", "--listen", "127.0.0.1:0", "--data", t.TempDir())
	cmd.Env = append(os.Environ(), "CRONIUM_BACKEND_TOKEN="+e2eToken)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("backend log:\n%s", stderr.String())
		}
	})
	sc := bufio.NewScanner(out)
	re := regexp.MustCompile(`listening on (http://\S+)`)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			go io.Copy(io.Discard, out)
			return &backendProc{url: m[1], env: []string{"CRONIUM_BACKEND_URL=" + m[1], "CRONIUM_BACKEND_TOKEN=" + e2eToken}}
		}
	}
	t.Fatalf("the backend did not say where it listens: %s", stderr.String())
	return nil
}

// logsCLI is `cronium-backend logs ID` with its stdout and stderr in one
// stream, as a file would get them.
func (b *backendProc) logsCLI(t *testing.T, id string) []byte {
	t.Helper()
	cmd := exec.Command(agentBin, "backend", "logs", id)
	cmd.Env = append(os.Environ(), b.env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("backend logs %s: %v: %s", id, err, out.String())
	}
	return out.Bytes()
}

// newBrowser starts a headless Chromium that can reach loopback only:
// every host name but 127.0.0.1 fails to resolve, and Chromium's own
// background traffic (updates, metrics, sync) is off.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if testenv.SSHDRequired() {
			t.Fatal("the browser tests need chromium (make deps installs it)")
		}
		t.Skip("needs chromium (make deps)")
	}
	// Not t.TempDir: Chromium's last writes may land after its exit
	// is seen, which t.TempDir's removal reports as a failure.
	profile, err := os.MkdirTemp("", "cronium-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // root in CI; the page is our own
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("no-pings", true),
		chromedp.UserDataDir(profile),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("disable-crash-reporter", true),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelA()
		for i := 0; os.RemoveAll(profile) != nil && i < 50; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	})
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

func brun(t *testing.T, ctx context.Context, actions ...chromedp.Action) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Run(tctx, actions...); err != nil {
		t.Fatal(err)
	}
}

// logLines returns the log lines the page shows, with their seq.
func logLines(t *testing.T, ctx context.Context) (lines []string, seqs []int) {
	t.Helper()
	var got []struct {
		Seq  int    `json:"seq"`
		Text string `json:"text"`
	}
	brun(t, ctx, chromedp.Evaluate(`Array.from(document.querySelectorAll("#log .l")).map(e => ({seq: Number(e.dataset.seq), text: e.textContent}))`, &got))
	for _, g := range got {
		lines, seqs = append(lines, g.Text), append(seqs, g.Seq)
	}
	return lines, seqs
}

// waitPage polls cond across a navigation (whose teardown makes an
// evaluation fail now and then).
func waitPage(t *testing.T, ctx context.Context, cond string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var ok bool
		if err := chromedp.Run(ctx, chromedp.Evaluate(cond, &ok)); err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("page never got to %s", cond)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// clickAndLoad clicks what navigates (a form's button) and waits until
// the new page has loaded: the old one is marked, so that a wait cannot be
// met by it.
func clickAndLoad(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	brun(t, ctx, chromedp.Evaluate(`window.__cronium_old_page = true`, nil), chromedp.Click(sel, chromedp.ByQuery))
	waitPage(t, ctx, `window.__cronium_old_page === undefined && document.readyState === "complete"`)
}

func jobIDFromURL(t *testing.T, ctx context.Context) string {
	t.Helper()
	var u string
	brun(t, ctx, chromedp.Location(&u))
	i := strings.LastIndex(u, "/jobs/")
	if i < 0 {
		t.Fatalf("not on a job's page: %s", u)
	}
	return u[i+len("/jobs/"):]
}

// submitForm fills in the Run now form and submits it; it returns when
// the job's page shows.
func submitForm(t *testing.T, ctx context.Context, base, runtime, script, input string) time.Time {
	t.Helper()
	brun(t, ctx,
		chromedp.Navigate(base+"/run"),
		chromedp.WaitVisible("#script", chromedp.ByID),
		chromedp.SetValue("#runtime", runtime, chromedp.ByID),
		chromedp.SetValue("#script", script, chromedp.ByID),
	)
	if input != "" {
		brun(t, ctx, chromedp.SetValue("#input", input, chromedp.ByID))
	}
	at := time.Now()
	brun(t, ctx, chromedp.Click("#submit", chromedp.ByID), chromedp.WaitVisible("#job", chromedp.ByID))
	return at
}

func waitStatus(t *testing.T, ctx context.Context, want string) {
	t.Helper()
	waitPage(t, ctx, fmt.Sprintf(`document.readyState === "complete" && document.getElementById("job-status") !== null && document.getElementById("job-status").textContent === %q`, want))
}

// The console in a real browser against the backend and a real agent with
// containerd: log in, run jobs through the form and watch them, download,
// cancel, filter, reload mid-log, and job output that cannot do anything
// to the page.
func TestE2EConsoleInBrowser(t *testing.T) {
	testenv.Containerd(t)
	ctx := newBrowser(t)
	b := startBackendProc(t)
	// Debug: a failure's log then has each run's phases (a Python job once
	// printed nothing for 60 s in CI, the cause not in the info log).
	startAgent(t, b.url, stateDir(t), "CRONIUM_LOG_LEVEL=debug")
	var dialogs atomic.Int32
	chromedp.ListenTarget(ctx, func(ev any) {
		if _, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			dialogs.Add(1)
			go chromedp.Run(ctx, page.HandleJavaScriptDialog(false))
		}
	})

	t.Run("a wrong token is refused", func(t *testing.T) {
		var msg string
		brun(t, ctx,
			chromedp.Navigate(b.url+"/jobs"), // to the login page
			chromedp.WaitVisible("#token", chromedp.ByID),
			chromedp.SendKeys("#token", "not-the-token", chromedp.ByID),
			chromedp.Submit("#token", chromedp.ByID),
			chromedp.WaitVisible("#login-error", chromedp.ByID),
			chromedp.Text("#login-error", &msg, chromedp.ByID),
		)
		if !strings.Contains(msg, "not the backend's service token") {
			t.Errorf("login error %q", msg)
		}
	})
	t.Run("log in", func(t *testing.T) {
		brun(t, ctx,
			chromedp.SendKeys("#token", e2eToken, chromedp.ByID),
			chromedp.Submit("#token", chromedp.ByID),
			chromedp.WaitVisible("#jobs", chromedp.ByID),
		)
	})

	var pyJob string
	t.Run("a Python job through the form, its lines live and in order", func(t *testing.T) {
		// A bad input is caught before anything is sent.
		brun(t, ctx,
			chromedp.Navigate(b.url+"/run"),
			chromedp.WaitVisible("#script", chromedp.ByID),
			chromedp.SetValue("#script", "print(1)", chromedp.ByID),
			chromedp.SetValue("#input", "{not json", chromedp.ByID),
			chromedp.Click("#submit", chromedp.ByID),
			chromedp.WaitVisible("#input-error", chromedp.ByID),
		)
		script := `import time, cronium
n = cronium.input()["n"]
for i in range(1, n + 1):
    print(f"line {i}", flush=True)
    time.sleep(0.15)
cronium.output({"sum": n * (n + 1) // 2})
`
		at := submitForm(t, ctx, b.url, "python", script, `{"n": 30}`)
		pyJob = jobIDFromURL(t, ctx)
		brun(t, ctx, chromedp.Poll(`document.querySelectorAll("#log .l").length > 0`, nil, chromedp.WithPollingTimeout(60*time.Second), chromedp.WithPollingInterval(5*time.Millisecond)))
		first := time.Since(at)
		// Lines keep coming while the job runs.
		var whileRunning int
		brun(t, ctx, chromedp.Evaluate(`document.querySelectorAll("#log .l.out").length`, &whileRunning))
		var status string
		brun(t, ctx, chromedp.Text("#job-status", &status, chromedp.ByID))
		t.Logf("first log line in the browser %v after the submit click; %d lines shown while %s", first.Round(time.Millisecond), whileRunning, status)
		if status != "running" || whileRunning >= 30 {
			t.Errorf("status %s with %d lines: not seen while running", status, whileRunning)
		}
		waitStatus(t, ctx, "completed")
		lines, seqs := logLines(t, ctx)
		var outs []string
		for _, l := range lines {
			if strings.HasPrefix(l, "line ") {
				outs = append(outs, l)
			}
		}
		for i := range 30 {
			if i >= len(outs) || outs[i] != fmt.Sprintf("line %d", i+1) {
				t.Fatalf("lines %q", outs)
			}
		}
		for i := 1; i < len(seqs); i++ {
			if seqs[i] != seqs[i-1]+1 {
				t.Errorf("seqs %v: gap or duplicate at %d", seqs, i)
			}
		}
		// The status event shows "completed" at once; the output follows
		// from the page's next fetch of the job's state.
		waitPage(t, ctx, `document.getElementById("job-output").textContent !== ""`)
		var output, exit string
		brun(t, ctx, chromedp.Text("#job-output", &output, chromedp.ByID), chromedp.Text("#job-exit", &exit, chromedp.ByID))
		if !strings.Contains(output, `"sum": 465`) || exit != "0" {
			t.Errorf("output %q exit %q", output, exit)
		}
		if dir := os.Getenv("CRONIUM_CONSOLE_SCREENSHOT"); dir != "" {
			var png []byte
			brun(t, ctx, chromedp.FullScreenshot(&png, 100)) // quality 100: PNG
			if err := os.WriteFile(filepath.Join(dir, "console-job.png"), png, 0o644); err != nil {
				t.Error(err)
			}
		}
	})

	t.Run("download equals cronium-backend logs", func(t *testing.T) {
		if pyJob == "" {
			t.Skip("no job")
		}
		dir := t.TempDir()
		done := make(chan string, 1)
		chromedp.ListenTarget(ctx, func(ev any) {
			if p, ok := ev.(*browser.EventDownloadProgress); ok && p.State == browser.DownloadProgressStateCompleted {
				select {
				case done <- p.GUID:
				default:
				}
			}
		})
		brun(t, ctx,
			browser.SetDownloadBehavior(browser.SetDownloadBehaviorBehaviorAllowAndName).WithDownloadPath(dir).WithEventsEnabled(true),
			chromedp.Click("#download", chromedp.ByID),
		)
		var guid string
		select {
		case guid = <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("no download")
		}
		got, err := os.ReadFile(filepath.Join(dir, guid))
		if err != nil {
			t.Fatal(err)
		}
		want := b.logsCLI(t, pyJob)
		if !bytes.Equal(got, want) || len(got) == 0 {
			t.Errorf("download (%d bytes) differs from cronium-backend logs (%d bytes):\n%q\n%q", len(got), len(want), got, want)
		}
	})

	var cancelled string
	t.Run("cancel a running job", func(t *testing.T) {
		submitForm(t, ctx, b.url, "bash", "for i in $(seq 1 6000); do echo tick $i; sleep 0.1; done", "")
		cancelled = jobIDFromURL(t, ctx)
		brun(t, ctx, chromedp.Poll(`document.querySelectorAll("#log .l.out").length >= 3`, nil, chromedp.WithPollingTimeout(60*time.Second)))
		// The form's POST navigates back to the job's page; the old page's
		// live status can show "cancelled" first, so wait for the new one.
		clickAndLoad(t, ctx, "#cancel")
		waitStatus(t, ctx, "cancelled")
	})

	t.Run("filter the list", func(t *testing.T) {
		var ids []string
		brun(t, ctx,
			chromedp.Navigate(b.url+"/jobs"),
			chromedp.WaitVisible("#status", chromedp.ByID),
			chromedp.SetValue("#status", "cancelled", chromedp.ByID),
		)
		clickAndLoad(t, ctx, "#filter button")
		waitPage(t, ctx, `location.search.includes("status=cancelled")`)
		brun(t, ctx,
			chromedp.WaitVisible("#jobs", chromedp.ByID),
			chromedp.Evaluate(`Array.from(document.querySelectorAll("#jobs tbody tr")).map(r => r.dataset.id)`, &ids),
		)
		if len(ids) != 1 || ids[0] != cancelled {
			t.Errorf("cancelled jobs listed: %v, want [%s]", ids, cancelled)
		}
		brun(t, ctx,
			chromedp.Navigate(b.url+"/jobs?q="+pyJob[len(pyJob)-5:]),
			chromedp.WaitVisible("#jobs", chromedp.ByID),
			chromedp.Evaluate(`Array.from(document.querySelectorAll("#jobs tbody tr")).map(r => r.dataset.id)`, &ids),
		)
		if len(ids) != 1 || ids[0] != pyJob {
			t.Errorf("search %s: %v", pyJob[len(pyJob)-5:], ids)
		}
	})

	t.Run("a reload mid-log resumes with no gap or duplicate", func(t *testing.T) {
		submitForm(t, ctx, b.url, "bash", "for i in $(seq 1 60); do echo n$i; sleep 0.1; done", "")
		brun(t, ctx, chromedp.Poll(`document.querySelectorAll("#log .l.out").length >= 10`, nil, chromedp.WithPollingTimeout(60*time.Second)))
		var before int
		brun(t, ctx, chromedp.Evaluate(`document.querySelectorAll("#log .l.out").length`, &before), chromedp.Reload(), chromedp.WaitVisible("#log", chromedp.ByID))
		waitStatus(t, ctx, "completed")
		brun(t, ctx, chromedp.Poll(`document.querySelectorAll("#log .l.out").length >= 60`, nil, chromedp.WithPollingTimeout(30*time.Second)))
		lines, seqs := logLines(t, ctx)
		var outs []string
		for _, l := range lines {
			if strings.HasPrefix(l, "n") {
				outs = append(outs, l)
			}
		}
		t.Logf("reloaded with %d lines shown; %d after", before, len(outs))
		if before >= 60 {
			t.Errorf("the job was over before the reload (%d lines)", before)
		}
		for i := range 60 {
			if len(outs) != 60 || outs[i] != fmt.Sprintf("n%d", i+1) {
				t.Fatalf("lines after the reload: %q", outs)
			}
		}
		for i := 1; i < len(seqs); i++ {
			if seqs[i] != seqs[i-1]+1 {
				t.Errorf("seqs %v: gap or duplicate at %d", seqs, i)
			}
		}
	})

	t.Run("markup and escapes a job prints are inert", func(t *testing.T) {
		submitForm(t, ctx, b.url, "bash", `printf '<script>alert(1)</script>\n<img src=x onerror=alert(2)>\n\033[31mred\033[0m \033]0;title\007plain\n'`, "")
		waitStatus(t, ctx, "completed")
		brun(t, ctx, chromedp.Reload(), chromedp.WaitVisible("#log", chromedp.ByID))
		lines, _ := logLines(t, ctx)
		want := []string{"<script>alert(1)</script>", "<img src=x onerror=alert(2)>", "red plain"}
		for i, w := range want {
			if i >= len(lines) || lines[i] != w {
				t.Fatalf("lines %q, want %q first", lines, want)
			}
		}
		var injected int
		brun(t, ctx, chromedp.Evaluate(`document.querySelectorAll("#log script, #log img").length`, &injected))
		if injected != 0 || dialogs.Load() != 0 {
			t.Errorf("%d elements from the job's output, %d dialogs", injected, dialogs.Load())
		}
	})

	t.Run("page weight", func(t *testing.T) {
		if pyJob == "" {
			t.Skip("no job")
		}
		total := 0
		for _, p := range []string{"/static/console.js", "/static/console.css"} {
			resp, err := http.Get(b.url + p)
			if err != nil {
				t.Fatal(err)
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			total += int(n)
		}
		var html string
		brun(t, ctx, chromedp.Navigate(b.url+"/jobs/"+pyJob), chromedp.WaitVisible("#log", chromedp.ByID), chromedp.OuterHTML("html", &html))
		t.Logf("page weight of a job's page (30-line log): %d bytes of HTML, %d of script and style", len(html), total)
		// A budget, not a timing: the console stays a small page that an
		// edge host serves without a build step or a library.
		if len(html)+total > 64<<10 {
			t.Errorf("a job's page weighs %d bytes, over 64 KiB", len(html)+total)
		}
	})
}
