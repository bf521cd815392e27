package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// series is one curve (Points false) or a set of marks (Points true) of a panel.
type series struct {
	name   string
	col    color.RGBA
	dashed bool
	points bool
	x, y   []float64
}

// panel is one chart: axes from 0 to xMax and yMax, ticks every xStep and yStep.
type panel struct {
	title, xLabel, yLabel string
	xMin, xMax, xStep     float64
	yMax, yStep           float64
	series                []series
}

var (
	white = color.RGBA{255, 255, 255, 255}
	black = color.RGBA{0, 0, 0, 255}
	grey  = color.RGBA{220, 220, 220, 255}
)

func text(img *image.RGBA, x, y int, s string) {
	d := font.Drawer{Dst: img, Src: image.NewUniform(black), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

func textWidth(s string) int { return len(s) * basicfont.Face7x13.Advance }

// dot paints a w×w square centred on (x, y).
func dot(img *image.RGBA, x, y, w int, c color.RGBA) {
	draw.Draw(img, image.Rect(x-w/2, y-w/2, x-w/2+w, y-w/2+w), image.NewUniform(c), image.Point{}, draw.Src)
}

// line draws from (x0, y0) to (x1, y1), 2 px wide; dashed: 8 px on, 6 off, counted from from.
func line(img *image.RGBA, x0, y0, x1, y1 float64, c color.RGBA, dashed bool, from *float64) {
	n := int(math.Max(math.Abs(x1-x0), math.Abs(y1-y0))) + 1
	step := math.Hypot(x1-x0, y1-y0) / float64(n)
	for i := 0; i <= n; i++ {
		f := float64(i) / float64(n)
		if !dashed || math.Mod(*from+float64(i)*step, 14) < 8 {
			dot(img, int(math.Round(x0+f*(x1-x0))), int(math.Round(y0+f*(y1-y0))), 2, c)
		}
	}
	*from += float64(n) * step
}

// draw paints p into r of img.
func (p panel) draw(img *image.RGBA, r image.Rectangle) {
	const left, right, top, bottom = 58, 12, 44, 40
	plot := image.Rect(r.Min.X+left, r.Min.Y+top, r.Max.X-right, r.Max.Y-bottom)
	px := func(x float64) float64 {
		return float64(plot.Min.X) + (x-p.xMin)/(p.xMax-p.xMin)*float64(plot.Dx())
	}
	py := func(y float64) float64 { return float64(plot.Max.Y) - y/p.yMax*float64(plot.Dy()) }
	text(img, r.Min.X+(r.Dx()-textWidth(p.title))/2, r.Min.Y+16, p.title)
	for x := p.xMin; x <= p.xMax+1e-9; x += p.xStep {
		X := int(px(x))
		draw.Draw(img, image.Rect(X, plot.Min.Y, X+1, plot.Max.Y), image.NewUniform(grey), image.Point{}, draw.Src)
		s := fmt.Sprintf("%g", x)
		text(img, X-textWidth(s)/2, plot.Max.Y+15, s)
	}
	for y := 0.0; y <= p.yMax+1e-9; y += p.yStep {
		Y := int(py(y))
		draw.Draw(img, image.Rect(plot.Min.X, Y, plot.Max.X, Y+1), image.NewUniform(grey), image.Point{}, draw.Src)
		s := fmt.Sprintf("%g", y)
		text(img, plot.Min.X-6-textWidth(s), Y+4, s)
	}
	draw.Draw(img, image.Rect(plot.Min.X, plot.Min.Y, plot.Min.X+1, plot.Max.Y+1), image.NewUniform(black), image.Point{}, draw.Src)
	draw.Draw(img, image.Rect(plot.Min.X, plot.Max.Y, plot.Max.X, plot.Max.Y+1), image.NewUniform(black), image.Point{}, draw.Src)
	text(img, plot.Min.X+(plot.Dx()-textWidth(p.xLabel))/2, plot.Max.Y+32, p.xLabel)
	text(img, r.Min.X+4, plot.Min.Y-6, p.yLabel)
	for _, s := range p.series {
		if s.points {
			for i := range s.x {
				X, Y := int(px(s.x[i])), int(py(s.y[i]))
				dot(img, X, Y, 9, black)
				dot(img, X, Y, 7, s.col)
			}
			continue
		}
		from := 0.0
		for i := 1; i < len(s.x); i++ {
			line(img, px(s.x[i-1]), py(s.y[i-1]), px(s.x[i]), py(s.y[i]), s.col, s.dashed, &from)
		}
	}
	// The legend, top left inside the plot.
	y := plot.Min.Y + 14
	for _, s := range p.series {
		x := plot.Min.X + 10
		if s.points {
			dot(img, x+10, y-4, 9, black)
			dot(img, x+10, y-4, 7, s.col)
		} else {
			from := 0.0
			line(img, float64(x), float64(y-4), float64(x+22), float64(y-4), s.col, s.dashed, &from)
		}
		text(img, x+30, y, s.name)
		y += 15
	}
}

// render draws the panels side by side, each w×h pixels.
func render(panels []panel, w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w*len(panels), h))
	draw.Draw(img, img.Bounds(), image.NewUniform(white), image.Point{}, draw.Src)
	for i, p := range panels {
		p.draw(img, image.Rect(i*w, 0, (i+1)*w, h))
	}
	return img
}
