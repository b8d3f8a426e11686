package doctor

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode"
)

// WriteText prints the reports as a table, one row a check, with each
// problem's fix on the line below it, and a count at the end.
func WriteText(w io.Writer, reports []Report) error {
	nameW := len("CHECK")
	for _, r := range reports {
		nameW = max(nameW, len(r.Name))
	}
	indent := strings.Repeat(" ", len("STATUS")+2+nameW+2)
	var b strings.Builder
	fmt.Fprintf(&b, "%-6s  %-*s  %s\n", "STATUS", nameW, "CHECK", "DETAIL")
	counts := map[Status]int{}
	for _, r := range reports {
		counts[r.Status]++
		fmt.Fprintf(&b, "%-6s  %-*s  %s\n", r.Status, nameW, r.Name, oneLine(r.Detail))
		if r.Status != Pass && r.Fix != "" {
			fmt.Fprintf(&b, "%sfix: %s\n", indent, oneLine(r.Fix))
		}
	}
	fmt.Fprintf(&b, "\n%d passed, %d warned, %d failed\n", counts[Pass], counts[Warn], counts[Fail])
	_, err := io.WriteString(w, b.String())
	return err
}

// oneLine keeps a row on its line: details quote tools' output and the
// backend's error messages, which may hold anything.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

// jsonReport is the --json document.
type jsonReport struct {
	OK     bool     `json:"ok"`
	Checks []Report `json:"checks"`
}

// WriteJSON prints the reports as one JSON object: "ok" (no check failed)
// and "checks", each with name, status, detail and fix.
func WriteJSON(w io.Writer, reports []Report) error {
	if reports == nil {
		reports = []Report{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(jsonReport{OK: !Failed(reports), Checks: reports})
}
