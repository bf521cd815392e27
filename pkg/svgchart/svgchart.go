// Package svgchart draws the small bar charts of the statistics pages as inline SVG, on the
// server: no script, nothing fetched. Each chart has a <title> (its accessible name, and the
// tooltip of each bar says its label and value); the page keeps the numbers in a table.
//
// Colours come from the page's style sheet through classes: the SVG element has class
// "chart", each bar "bar" and the Bar's Class (e.g. "good", "warn", "bad").
package svgchart

import (
	"fmt"
	"html"
	"html/template"
	"strings"
	"unicode/utf8"
)

// Bar is one bar: its label, its value (negative values count as 0) and the value as people
// read it ("2m30s", "80 %"). A Missing bar has no value (no data in that period): it is drawn
// as a mark on the axis, with Text saying why.
type Bar struct {
	Label   string
	Value   float64
	Text    string
	Class   string
	Missing bool
}

// Chart is a titled list of bars on one scale.
type Chart struct {
	Title string
	Bars  []Bar
	// Max is the top of the scale (100 for percentages); 0: the largest value.
	Max float64
	// Unit follows the numbers of the scale, e.g. " %".
	Unit string
}

// Sizes, in SVG user units (pixels at 100 %).
const (
	width     = 640
	rowHeight = 22
	barHeight = 14
	charWidth = 7 // a rough average of the page font's, to leave room for labels
	pad       = 8
	colHeight = 160
	maxLabel  = 32 // runes of a label drawn; the bar's tooltip has it whole
)

func (c Chart) scaleMax() float64 {
	m := c.Max
	if m <= 0 {
		for _, b := range c.Bars {
			if !b.Missing && b.Value > m {
				m = b.Value
			}
		}
	}
	return m
}

// frac is v's share of the scale, in [0, 1].
func frac(v, max float64) float64 {
	if max <= 0 || v <= 0 {
		return 0
	}
	if v >= max {
		return 1
	}
	return v / max
}

func esc(s string) string { return html.EscapeString(s) }

func open(b *strings.Builder, title string, w, h int) {
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="%d" height="%d" viewBox="0 0 %d %d">`,
		w, h, w, h)
	fmt.Fprintf(b, "<title>%s</title>", esc(title))
}

func empty(title string) template.HTML {
	var b strings.Builder
	open(&b, title, width, rowHeight+2*pad)
	fmt.Fprintf(&b, `<text class="none" x="%d" y="%d">No data yet.</text></svg>`, pad, pad+barHeight)
	return template.HTML(b.String())
}

func barTitle(bar Bar) string {
	if bar.Text == "" {
		return esc(bar.Label)
	}
	return esc(bar.Label + ": " + bar.Text)
}

// HBars draws one horizontal bar a row, the label on its left and the value on its right:
// for categories with long names (nodes, states).
func (c Chart) HBars() template.HTML {
	if len(c.Bars) == 0 {
		return empty(c.Title)
	}
	labelW, textW := 0, 0
	for _, bar := range c.Bars {
		labelW = max(labelW, utf8.RuneCountInString(bar.Label)*charWidth)
		textW = max(textW, utf8.RuneCountInString(bar.Text)*charWidth)
	}
	labelW, textW = min(labelW, maxLabel*charWidth), min(textW, 120)
	x0 := pad + labelW + pad
	span := width - x0 - pad - textW - pad
	h := len(c.Bars)*rowHeight + 2*pad
	top := c.scaleMax()
	var b strings.Builder
	open(&b, c.Title, width, h)
	for i, bar := range c.Bars {
		y := pad + i*rowHeight
		mid := y + rowHeight/2
		fmt.Fprintf(&b, `<g><title>%s</title>`, barTitle(bar))
		fmt.Fprintf(&b, `<text class="label" x="%d" y="%d" text-anchor="end" dominant-baseline="middle">%s</text>`,
			x0-pad, mid, esc(shorten(bar.Label, maxLabel)))
		end := x0
		if !bar.Missing {
			w := frac(bar.Value, top) * float64(span)
			fmt.Fprintf(&b, `<rect class="%s" x="%d" y="%d" width="%.1f" height="%d"/>`, barClass(bar), x0,
				y+(rowHeight-barHeight)/2, w, barHeight)
			end += int(w + 0.5)
		}
		fmt.Fprintf(&b, `<text class="value" x="%d" y="%d" dominant-baseline="middle">%s</text></g>`, end+pad/2, mid, esc(bar.Text))
	}
	b.WriteString("</svg>")
	return template.HTML(b.String())
}

// Columns draws one vertical column per bar, in order, on a scale from 0 to Max written on
// the left, each column's value above it: for a value over time (one column per period).
func (c Chart) Columns() template.HTML {
	if len(c.Bars) == 0 {
		return empty(c.Title)
	}
	top := c.scaleMax()
	axisW := (len(scaleText(top, c.Unit)) + 1) * charWidth
	x0, y0 := pad+axisW, pad+barHeight // plot area's top-left corner, below the top column's value
	plotW, plotH := width-x0-pad, colHeight
	h := y0 + plotH + rowHeight + pad
	var b strings.Builder
	open(&b, c.Title, width, h)
	for _, f := range []float64{0, 0.5, 1} {
		y := float64(y0) + float64(plotH)*(1-f)
		fmt.Fprintf(&b, `<line class="grid" x1="%d" y1="%.1f" x2="%d" y2="%.1f"/>`, x0, y, x0+plotW, y)
		fmt.Fprintf(&b, `<text class="axis" x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`,
			x0-pad/2, y, esc(scaleText(top*f, c.Unit)))
	}
	step := float64(plotW) / float64(len(c.Bars))
	colW := step * 0.7
	for i, bar := range c.Bars {
		x := float64(x0) + step*float64(i) + (step-colW)/2
		mid := x + colW/2
		fmt.Fprintf(&b, `<g><title>%s</title>`, barTitle(bar))
		if bar.Missing {
			fmt.Fprintf(&b, `<line class="missing" x1="%.1f" y1="%d" x2="%.1f" y2="%d"/>`, x, y0+plotH, x+colW, y0+plotH)
		} else {
			ch := frac(bar.Value, top) * float64(plotH)
			fmt.Fprintf(&b, `<rect class="%s" x="%.1f" y="%.1f" width="%.1f" height="%.1f"/>`, barClass(bar), x,
				float64(y0+plotH)-ch, colW, ch)
			// The value above the column: a 0 has no column to see.
			fmt.Fprintf(&b, `<text class="value" x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, mid,
				float64(y0+plotH)-ch-pad/2, esc(scaleText(max(bar.Value, 0), c.Unit)))
		}
		fmt.Fprintf(&b, `<text class="label" x="%.1f" y="%d" text-anchor="middle">%s</text></g>`, mid, y0+plotH+rowHeight-pad/2,
			esc(bar.Label))
	}
	b.WriteString("</svg>")
	return template.HTML(b.String())
}

func barClass(bar Bar) string {
	return esc(strings.TrimSpace("bar " + bar.Class))
}

// shorten cuts s to n runes, the last one an ellipsis.
func shorten(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func scaleText(v float64, unit string) string {
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.1f", v), "0"), ".") + unit
}
