package console

import (
	"html/template"
	"regexp"
	"strings"
	"time"

	"github.com/cronium/cronium-agent/backend/devserver"
)

// ansiSeq matches the escape sequences a job's output may hold: CSI
// (colours, cursor moves), OSC (titles, links) and the two-byte ones.
var ansiSeq = regexp.MustCompile(`\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]`)

// cleanLine is a log line as the console shows it: valid UTF-8 (each bad
// byte a replacement character), escape sequences stripped, and no other
// control character but tab. The page escapes it further (textContent, or
// html/template): nothing a job prints is ever markup.
func cleanLine(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if strings.IndexByte(s, 0x1b) >= 0 {
		s = ansiSeq.ReplaceAllString(s, "")
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t':
			return r
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return -1
		}
		return r
	}, s)
}

// logLine is a line as the page's script receives it.
type logLine struct {
	Seq    uint64 `json:"seq"`
	Stream string `json:"stream"`
	Line   string `json:"line"`
}

func viewLines(entries []devserver.LogLine) []logLine {
	out := make([]logLine, 0, len(entries))
	for _, e := range entries {
		out = append(out, logLine{Seq: e.Seq, Stream: e.Stream, Line: cleanLine(e.Line)})
	}
	return out
}

var funcs = template.FuncMap{
	"time":        fmtTime,
	"streamClass": streamClass,
	"statuses": func() []string {
		return []string{devserver.StatusQueued, devserver.StatusClaimed, devserver.StatusRunning, devserver.StatusCompleted,
			devserver.StatusFailed, devserver.StatusTimeout, devserver.StatusCancelled}
	},
}

func streamClass(s string) string {
	switch s {
	case "stdout":
		return "out"
	case "stderr":
		return "err"
	}
	return "sys"
}

func fmtTime(t any) string {
	switch v := t.(type) {
	case time.Time:
		if v.IsZero() {
			return ""
		}
		return v.UTC().Format("2006-01-02 15:04:05")
	case *time.Time:
		if v == nil {
			return ""
		}
		return fmtTime(*v)
	}
	return ""
}

// fmtDuration is from start to end, or to now while running.
func fmtDuration(start, end *time.Time) string {
	if start == nil {
		return ""
	}
	e := time.Now()
	if end != nil {
		e = *end
	}
	return e.Sub(*start).Round(time.Millisecond).String()
}

func ago(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return time.Since(*t).Round(time.Second).String() + " ago"
}
