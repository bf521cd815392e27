package svgchart

import (
	"encoding/xml"
	"errors"
	"io"
	"math"
	"strconv"
	"strings"
	"testing"
)

// parsed is what a test reads in a chart: its title and its bars' rectangles.
type parsed struct {
	title string
	rects []map[string]string
	texts []string
}

// parse checks that svg is well-formed XML with one <svg> root whose first child is its
// <title>, and returns its parts.
func parse(t *testing.T, svg string) parsed {
	t.Helper()
	dec := xml.NewDecoder(strings.NewReader(svg))
	var p parsed
	var stack []string
	roots := 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("not XML: %v\n%s", err, svg)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			if len(stack) == 0 {
				roots++
				if e.Name.Local != "svg" || e.Name.Space != "http://www.w3.org/2000/svg" {
					t.Fatalf("root %v", e.Name)
				}
			}
			stack = append(stack, e.Name.Local)
			if e.Name.Local == "rect" {
				m := map[string]string{}
				for _, a := range e.Attr {
					m[a.Name.Local] = a.Value
				}
				p.rects = append(p.rects, m)
			}
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			switch {
			case len(stack) == 2 && stack[1] == "title":
				p.title = string(e)
			case len(stack) > 0 && stack[len(stack)-1] == "text":
				p.texts = append(p.texts, string(e))
			}
		}
	}
	if roots != 1 || !strings.HasPrefix(svg, `<svg `) || !strings.Contains(svg[:strings.Index(svg, ">")+1], `role="img"`) {
		t.Fatalf("want one <svg role=img> root:\n%s", svg)
	}
	if i := strings.Index(svg, ">"); !strings.HasPrefix(svg[i+1:], "<title>") {
		t.Fatalf("the first child is not the title:\n%s", svg)
	}
	return p
}

func num(t *testing.T, s string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestHBarsProportional(t *testing.T) {
	c := Chart{Title: "Mean time per state", Bars: []Bar{
		{Label: "deploy/env_copy", Value: 120, Text: "2m00s", Class: "busy"},
		{Label: "deploy/turn_on", Value: 30, Text: "30.0s"},
		{Label: "deploy/off", Value: 0, Text: "0ms"},
		{Label: "deploy/never", Missing: true, Text: "not run"},
	}}
	p := parse(t, string(c.HBars()))
	if p.title != "Mean time per state" || len(p.rects) != 3 {
		t.Fatalf("title %q, %d rects, want 3 (none for the missing bar)", p.title, len(p.rects))
	}
	w0, w1, w2 := num(t, p.rects[0]["width"]), num(t, p.rects[1]["width"]), num(t, p.rects[2]["width"])
	if w0 <= 0 || math.Abs(w1/w0-0.25) > 0.01 || w2 != 0 {
		t.Errorf("widths %v %v %v, want proportional to 120, 30, 0", w0, w1, w2)
	}
	if p.rects[0]["class"] != "bar busy" || p.rects[1]["class"] != "bar" {
		t.Errorf("classes %q %q", p.rects[0]["class"], p.rects[1]["class"])
	}
	if x := num(t, p.rects[0]["x"]) + w0; x > width {
		t.Errorf("the longest bar ends at %v, outside %d", x, width)
	}
	for _, want := range []string{"deploy/env_copy", "2m00s", "30.0s", "not run"} {
		if !strings.Contains(strings.Join(p.texts, "|"), want) {
			t.Errorf("no text %q in %q", want, p.texts)
		}
	}
}

func TestColumnsProportionalOnAFixedScale(t *testing.T) {
	c := Chart{Title: "Success rate by week", Max: 100, Unit: " %", Bars: []Bar{
		{Label: "Nov 2", Value: 100, Text: "100 % of 4", Class: "good"},
		{Label: "Nov 9", Missing: true, Text: "no deployment"},
		{Label: "Nov 16", Value: 50, Text: "50 % of 2", Class: "bad"},
		{Label: "Nov 23", Value: 150, Text: "clamped"},
	}}
	p := parse(t, string(c.Columns()))
	if len(p.rects) != 3 {
		t.Fatalf("%d rects, want 3", len(p.rects))
	}
	h0, h1, h2 := num(t, p.rects[0]["height"]), num(t, p.rects[1]["height"]), num(t, p.rects[2]["height"])
	if h0 != colHeight || math.Abs(h1/h0-0.5) > 0.01 || h2 != h0 {
		t.Errorf("heights %v %v %v, want 100 %%, 50 %% and 100 %% (clamped) of %d", h0, h1, h2, colHeight)
	}
	// Columns stand on one baseline.
	if b0, b1 := num(t, p.rects[0]["y"])+h0, num(t, p.rects[1]["y"])+h1; math.Abs(b0-b1) > 0.01 {
		t.Errorf("baselines %v and %v", b0, b1)
	}
	texts := strings.Join(p.texts, "|")
	// The scale, the labels, and each value above its column (the real one when clamped).
	for _, want := range []string{"0 %", "50 %", "100 %", "Nov 2", "Nov 23", "150 %"} {
		if !strings.Contains(texts, want) {
			t.Errorf("no text %q in %q", want, p.texts)
		}
	}
}

func TestEmptyAndHostileData(t *testing.T) {
	for _, svg := range []string{string(Chart{Title: "Nothing"}.HBars()), string(Chart{Title: "Nothing"}.Columns())} {
		p := parse(t, svg)
		if p.title != "Nothing" || len(p.rects) != 0 || !strings.Contains(strings.Join(p.texts, ""), "No data") {
			t.Errorf("empty chart: %+v\n%s", p, svg)
		}
	}
	// All zeros: no division by zero, no NaN.
	zeros := Chart{Title: "z", Bars: []Bar{{Label: "a"}, {Label: "b"}}}
	for _, svg := range []string{string(zeros.HBars()), string(zeros.Columns())} {
		if strings.Contains(svg, "NaN") || strings.Contains(svg, "Inf") {
			t.Errorf("zeros: %s", svg)
		}
		parse(t, svg)
	}
	// Names come from admins and users: escaped, never markup.
	evil := Chart{Title: `<script>alert(1)</script> & "x"`, Bars: []Bar{
		{Label: `<img src=x onerror=alert(1)>`, Value: 1, Text: `"><script>`, Class: `good" onclick="x`},
		{Label: strings.Repeat("n", 100), Value: 2},
	}}
	for _, svg := range []string{string(evil.HBars()), string(evil.Columns())} {
		p := parse(t, svg)
		if strings.Contains(svg, "<script") || strings.Contains(svg, "<img") || strings.Contains(svg, `onclick="x"`) ||
			p.title != `<script>alert(1)</script> & "x"` {
			t.Errorf("not escaped:\n%s", svg)
		}
	}
	if p := parse(t, string(evil.HBars())); !strings.Contains(strings.Join(p.texts, "|"), strings.Repeat("n", maxLabel-1)+"…") {
		t.Errorf("a long label is not shortened: %q", p.texts)
	}
}
