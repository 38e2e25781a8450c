package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Results is one run of the benchmark, as written to results.json.
type Results struct {
	Date     string    `json:"date"`
	Command  string    `json:"command"`
	Host     Host      `json:"host"`
	Params   params    `json:"params"`
	Baseline string    `json:"baseline"`
	GoRef    string    `json:"go_reference"`  // the smallest correct Go init, for the targets
	TrueMs   float64   `json:"true_alone_ms"` // /bin/true's own median, subtracted from start-up
	Programs []Program `json:"programs"`
}

// Program is one init's figures; Values is keyed by measure.key.
type Program struct {
	Name    string             `json:"name"`
	Path    string             `json:"path"`
	Version string             `json:"version"`
	Binary  Binary             `json:"binary"`
	Values  map[string]float64 `json:"values"`
	// MemorySamples is how many settled starts the idle memory figures
	// are the median of.
	MemorySamples int `json:"memory_samples,omitempty"`
}

func (p *Program) set(key string, v float64) {
	if p.Values == nil {
		p.Values = map[string]float64{}
	}
	p.Values[key] = v
}

// value returns a measure, binary ones included.
func (p *Program) value(key string) (float64, bool) {
	switch key {
	case "binary_mb":
		return float64(p.Binary.Bytes) / 1e6, p.Binary.Bytes > 0
	}
	v, ok := p.Values[key]
	return v, ok
}

// measure is one row of the table.
type measure struct {
	key, label, format string
	higherBetter       bool
	chart              bool // drawn in ratios.svg
}

var measures = []measure{
	{"startup_ms", "start-up overhead (ms, median)", "%.3f", false, true},
	{"signal_p50_us", "signal forward p50 (µs)", "%.1f", false, true},
	{"signal_p99_us", "signal forward p99 (µs)", "%.1f", false, true},
	{"signal_first_us", "first signal after settling (µs, median)", "%.1f", false, true},
	{"rss_kb", "VmRSS idle (kB)", "%.0f", false, true},
	{"rss_anon_kb", "RssAnon idle (kB)", "%.0f", false, true},
	{"rss_file_kb", "RssFile idle (kB)", "%.0f", false, false},
	{"hwm_kb", "VmHWM idle (kB)", "%.0f", false, false},
	{"rss_after_idle_kb", "VmRSS after the idle window (kB)", "%.0f", false, false},
	{"threads", "threads", "%.0f", false, false},
	{"idle_wakeups_per_min", "idle wake-ups (per min, all threads)", "%.2f", false, true},
	{"orphans_per_s", "orphan storm (reaped/s, median)", "%.0f", true, true},
	{"peak_unreaped", "peak unreaped orphans", "%.0f", false, true},
	{"left_after_storm", "left after storm", "%.0f", false, false},
	{"hwm_after_storm_kb", "VmHWM over the storm (kB)", "%.0f", false, true},
	{"binary_mb", "binary (MB)", "%.2f", false, true},
}

func (r *Results) program(name string) *Program {
	for i := range r.Programs {
		if r.Programs[i].Name == name {
			return &r.Programs[i]
		}
	}
	return nil
}

func (r *Results) baseline() *Program { return r.program(r.Baseline) }

// ratio is p's value over the baseline's, or NaN.
func (r *Results) ratio(p *Program, key string) float64 {
	return ratioTo(r.baseline(), p, key)
}

// ratioTo is p's value over b's, or NaN.
func ratioTo(b, p *Program, key string) float64 {
	if b == nil {
		return math.NaN()
	}
	bv, ok1 := b.value(key)
	v, ok2 := p.value(key)
	if !ok1 || !ok2 || bv == 0 {
		return math.NaN()
	}
	return v / bv
}

func (r *Results) memorySamples() int {
	n := 0
	for _, p := range r.Programs {
		n = max(n, p.MemorySamples)
	}
	return n
}

// measured lists the measures that some program has a value for: a run
// limited with -only leaves the others out of the table and the chart.
func (r *Results) measured() []measure {
	var out []measure
	for _, m := range measures {
		for i := range r.Programs {
			if _, ok := r.Programs[i].value(m.key); ok {
				out = append(out, m)
				break
			}
		}
	}
	return out
}

func (r *Results) markdown() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "`%s` on %s (%d CPUs, Linux %s, %s), %s; ratios against %s in parentheses.\n\n",
		r.Command, r.Host.CPU, r.Host.CPUs, r.Host.Kernel, r.Host.Go, r.Date, r.Baseline)
	sb.WriteString("| measure |")
	for _, p := range r.Programs {
		fmt.Fprintf(&sb, " %s |", p.Name)
	}
	sb.WriteString("\n|---|")
	for range r.Programs {
		sb.WriteString("---:|")
	}
	sb.WriteString("\n")
	for _, m := range r.measured() {
		fmt.Fprintf(&sb, "| %s |", m.label)
		for i := range r.Programs {
			p := &r.Programs[i]
			v, ok := p.value(m.key)
			if !ok {
				sb.WriteString(" – |")
				continue
			}
			fmt.Fprintf(&sb, " "+m.format, v)
			if q := r.ratio(p, m.key); !math.IsNaN(q) && p.Name != r.Baseline {
				fmt.Fprintf(&sb, " (%.2f×)", q)
			}
			sb.WriteString(" |")
		}
		sb.WriteString("\n")
	}
	sb.WriteString("| static |")
	for _, p := range r.Programs {
		fmt.Fprintf(&sb, " %s |", map[bool]string{true: "yes", false: "no"}[p.Binary.Static])
	}
	sb.WriteString("\n\nVersions: ")
	for i, p := range r.Programs {
		if i > 0 {
			sb.WriteString("; ")
		}
		fmt.Fprintf(&sb, "%s `%s`", p.Name, p.Version)
	}
	fmt.Fprintf(&sb, ". Start-up is INIT -- /bin/true minus /bin/true alone (%.3f ms), %d runs each; "+
		"idle window %s; storm %d orphans × %d rounds as PID 1 of a PID namespace (pids.max %d), VmHWM reset when it begins; "+
		"%d signals each; the first signal after settling %s, over %d fresh starts; idle memory and threads the median of %d settled starts.\n",
		r.TrueMs, r.Params.Startups, r.Params.Idle, r.Params.Orphans, r.Params.Storms, r.Params.PidsMax,
		r.Params.Signals, r.Params.SettleTime, r.Params.FirstSignals, r.memorySamples())
	r.targets(&sb)
	return sb.String()
}

// target is one of the goals of issue 12, checked for a vigil build: its
// figure, and whether it is met. ok is false when a figure is missing, or
// when the run is too short to judge (a figure is then still shown).
type target struct {
	measure, goal string
	check         func(r *Results, p *Program) (figure string, met, ok bool)
}

// vals fetches keys from p, ok only if all are there.
func vals(p *Program, keys ...string) ([]float64, bool) {
	out := make([]float64, len(keys))
	for i, k := range keys {
		v, ok := p.value(k)
		if !ok {
			return nil, false
		}
		out[i] = v
	}
	return out, true
}

var targets = []target{
	{"start-up overhead", "≤ 1.15× goref", func(r *Results, p *Program) (string, bool, bool) {
		q := ratioTo(r.program(r.GoRef), p, "startup_ms")
		v, ok := vals(p, "startup_ms")
		if !ok || math.IsNaN(q) {
			return "", false, false
		}
		return fmt.Sprintf("%.3f ms, %.2f× goref", v[0], q), q <= 1.15, true
	}},
	{"VmRSS idle", "≤ 2.0 MB (2000 kB)", func(r *Results, p *Program) (string, bool, bool) {
		v, ok := vals(p, "rss_kb")
		if !ok {
			return "", false, false
		}
		return fmt.Sprintf("%.0f kB", v[0]), v[0] <= 2000, true
	}},
	{"RssAnon idle", "≤ 1.25× goref", func(r *Results, p *Program) (string, bool, bool) {
		q := ratioTo(r.program(r.GoRef), p, "rss_anon_kb")
		v, ok := vals(p, "rss_anon_kb")
		if !ok || math.IsNaN(q) {
			return "", false, false
		}
		return fmt.Sprintf("%.0f kB, %.2f× goref", v[0], q), q <= 1.25, true
	}},
	{"threads", "≤ goref's", func(r *Results, p *Program) (string, bool, bool) {
		g := r.program(r.GoRef)
		if g == nil {
			return "", false, false
		}
		v, ok1 := vals(p, "threads")
		gv, ok2 := vals(g, "threads")
		if !ok1 || !ok2 {
			return "", false, false
		}
		return fmt.Sprintf("%.0f (goref %.0f)", v[0], gv[0]), v[0] <= gv[0], true
	}},
	{"signal forward p50", "≤ 1.1× goref", func(r *Results, p *Program) (string, bool, bool) {
		q := ratioTo(r.program(r.GoRef), p, "signal_p50_us")
		v, ok := vals(p, "signal_p50_us")
		if !ok || math.IsNaN(q) {
			return "", false, false
		}
		return fmt.Sprintf("%.1f µs, %.2f× goref", v[0], q), q <= 1.1, true
	}},
	{"signal forward p99", "≤ 2× tini", func(r *Results, p *Program) (string, bool, bool) {
		q := r.ratio(p, "signal_p99_us")
		v, ok := vals(p, "signal_p99_us")
		if !ok || math.IsNaN(q) {
			return "", false, false
		}
		return fmt.Sprintf("%.1f µs, %.2f× tini", v[0], q), q <= 2, true
	}},
	{"idle wake-ups", "≤ 2 per minute, window ≥ 2 min", func(r *Results, p *Program) (string, bool, bool) {
		v, ok := vals(p, "idle_wakeups_per_min")
		if !ok {
			return "", false, false
		}
		fig := fmt.Sprintf("%.2f/min over %s", v[0], r.Params.Idle)
		if r.Params.Idle < 2*time.Minute {
			return fig + " (window under 2 min: not judged)", true, false
		}
		return fig, v[0] <= 2, true
	}},
	{"orphan storm", "≥ 0.95× tini's rate, 0 left", func(r *Results, p *Program) (string, bool, bool) {
		q := r.ratio(p, "orphans_per_s")
		v, ok := vals(p, "orphans_per_s", "left_after_storm")
		if !ok || math.IsNaN(q) {
			return "", false, false
		}
		return fmt.Sprintf("%.0f/s, %.2f× tini, %.0f left", v[0], q, v[1]), q >= 0.95 && v[1] == 0, true
	}},
	{"VmHWM over the storm", "≤ VmRSS idle + 1 MB (1000 kB)", func(r *Results, p *Program) (string, bool, bool) {
		v, ok := vals(p, "hwm_after_storm_kb", "rss_kb")
		if !ok {
			return "", false, false
		}
		return fmt.Sprintf("%.0f kB (idle %.0f kB, +%.0f)", v[0], v[1], v[0]-v[1]), v[0] <= v[1]+1000, true
	}},
	{"binary", "static, ≤ 4.8 MB", func(r *Results, p *Program) (string, bool, bool) {
		if p.Binary.Bytes == 0 {
			return "", false, false
		}
		static := map[bool]string{true: "static", false: "dynamic"}[p.Binary.Static]
		return fmt.Sprintf("%d bytes, %s", p.Binary.Bytes, static), p.Binary.Static && p.Binary.Bytes <= 4_800_000, true
	}},
}

// targets writes the table of issue 12's targets for every vigil build in
// the run: the programs after the Go reference.
func (r *Results) targets(sb *strings.Builder) {
	var vigils []*Program
	seen := false
	for i := range r.Programs {
		if seen {
			vigils = append(vigils, &r.Programs[i])
		}
		seen = seen || r.Programs[i].Name == r.GoRef
	}
	if len(vigils) == 0 {
		return
	}
	sb.WriteString("\nTargets (issue 12), in this run:\n\n| measure | target |")
	for _, p := range vigils {
		fmt.Fprintf(sb, " %s |", p.Name)
	}
	sb.WriteString("\n|---|---|")
	for range vigils {
		sb.WriteString("---|")
	}
	sb.WriteString("\n")
	for _, t := range targets {
		any := false
		for _, p := range vigils {
			fig, _, _ := t.check(r, p)
			any = any || fig != ""
		}
		if !any {
			continue // not measured in this run
		}
		fmt.Fprintf(sb, "| %s | %s |", t.measure, t.goal)
		for _, p := range vigils {
			fig, met, ok := t.check(r, p)
			switch {
			case !ok && fig != "":
				fmt.Fprintf(sb, " %s |", fig)
			case !ok:
				sb.WriteString(" – |")
			case met:
				fmt.Fprintf(sb, " %s: met |", fig)
			default:
				fmt.Fprintf(sb, " %s: **not met** |", fig)
			}
		}
		sb.WriteString("\n")
	}
}

func (r *Results) write(dir string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	for name, data := range map[string][]byte{
		"results.json": append(b, '\n'),
		"results.md":   []byte(r.markdown()),
		"ratios.svg":   []byte(r.svg()),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// svg draws one group of horizontal bars per measure: each program's value
// as a ratio of the baseline's, on a log scale centred on 1 so that twice
// as slow and twice as fast are the same length. Bars that are better than
// the baseline are green, worse ones orange.
func (r *Results) svg() string {
	var others []*Program
	for i := range r.Programs {
		if r.Programs[i].Name != r.Baseline {
			others = append(others, &r.Programs[i])
		}
	}
	const (
		left, width, barH, gap = 250.0, 420.0, 14.0, 12.0
		maxLog                 = 3.0 // the axis runs from 1/8× to 8×
	)
	var rows []measure
	for _, m := range r.measured() {
		if m.chart {
			rows = append(rows, m)
		}
	}
	groupH := float64(len(others))*barH + gap
	height := 60 + float64(len(rows))*groupH + 40
	totalW := left + width + 120
	x := func(q float64) float64 {
		l := math.Max(-maxLog, math.Min(maxLog, math.Log2(q)))
		return left + width/2 + l/maxLog*width/2
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="11">`+"\n", totalW, height)
	fmt.Fprintf(&sb, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&sb, `<text x="10" y="20" font-size="14" font-weight="bold">Ratio to %s (log scale; green: better than %s, orange: worse)</text>`+"\n", r.Baseline, r.Baseline)
	fmt.Fprintf(&sb, `<text x="10" y="38" fill="#555">%s, %s</text>`+"\n", esc(r.Command), esc(r.Date))
	top := 55.0
	for _, t := range []float64{0.125, 0.25, 0.5, 1, 2, 4, 8} {
		sw, col := "0.5", "#ccc"
		if t == 1 {
			sw, col = "1.5", "#000"
		}
		fmt.Fprintf(&sb, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="%s" stroke-width="%s"/>`+"\n", x(t), top, x(t), height-30, col, sw)
		fmt.Fprintf(&sb, `<text x="%.1f" y="%.0f" text-anchor="middle" fill="#555">%g×</text>`+"\n", x(t), height-15, t)
	}
	palette := []string{"#1f77b4", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"}
	y := top + 5
	for _, m := range rows {
		fmt.Fprintf(&sb, `<text x="%.0f" y="%.1f" text-anchor="end" font-weight="bold">%s</text>`+"\n", left-70, y+groupH/2-gap/2+4, esc(shortLabel(m)))
		for k, p := range others {
			q := r.ratio(p, m.key)
			by := y + float64(k)*barH
			fmt.Fprintf(&sb, `<text x="%.0f" y="%.1f" text-anchor="end" fill="%s">%s</text>`+"\n", left-4, by+barH-3, palette[k%len(palette)], esc(p.Name))
			if math.IsNaN(q) {
				fmt.Fprintf(&sb, `<text x="%.1f" y="%.1f" fill="#999">n/a</text>`+"\n", x(1)+4, by+barH-3)
				continue
			}
			q0 := math.Max(q, 1e-9)
			x0, x1 := x(1), x(q0)
			if x1 < x0 {
				x0, x1 = x1, x0
			}
			better := q < 1 != m.higherBetter && q != 1
			fill := "#f28e2b"
			if better {
				fill = "#59a14f"
			}
			fmt.Fprintf(&sb, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n", x0, by+1, math.Max(x1-x0, 1), barH-2, fill)
			fmt.Fprintf(&sb, `<text x="%.1f" y="%.1f">%s</text>`+"\n", math.Max(x(q0), x(1))+4, by+barH-3, fmtRatio(q))
		}
		y += groupH
	}
	sb.WriteString("</svg>\n")
	return sb.String()
}

func shortLabel(m measure) string {
	l, _, _ := strings.Cut(m.label, " (")
	return l
}

func fmtRatio(q float64) string {
	switch {
	case q == 0:
		return "0×"
	case q < 0.1:
		return fmt.Sprintf("%.3f×", q)
	default:
		return fmt.Sprintf("%.2f×", q)
	}
}

func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}
