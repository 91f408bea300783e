package main

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"sort"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

var targetColors = map[string]color.RGBA{
	targetUpstream: {R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	targetOurs1:    {R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	targetOurs3:    {R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
}

// series is one line of a panel: y (seconds) against the groups stored.
type series struct {
	label  string
	target string
	dashed bool
	pts    plotter.XYs
}

// seriesFor collects figure key of target over every G, at x = the groups
// the fill actually stored (a capped upstream fill is plotted where it got).
func (r *report) seriesFor(target, key, label string, dashed bool) series {
	s := series{label: label, target: target, dashed: dashed}
	var gs []int
	for g := range r.byG {
		gs = append(gs, g)
	}
	sort.Ints(gs)
	for _, g := range gs {
		f, ok := r.byG[g][target]
		if !ok {
			continue
		}
		x, y := f.get("fill.groups"), f.get(key)
		if math.IsNaN(x) || math.IsNaN(y) || x <= 0 || y <= 0 {
			continue // a log axis cannot show it
		}
		s.pts = append(s.pts, plotter.XY{X: x, Y: y})
	}
	return s
}

// panel is one plot: log x (groups), log y (latency).
func panel(title string, ss []series) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "groups stored (log)"
	p.Y.Label.Text = "latency (log)"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker = logTicker{format: func(v float64) string { return groupDigits(v) }}
	p.Y.Tick.Marker = logTicker{format: shortSeconds}
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.TextStyle.Font.Size = vg.Points(9)
	p.Add(plotter.NewGrid())
	n := 0
	for _, s := range ss {
		if len(s.pts) == 0 {
			continue
		}
		line, points, err := plotter.NewLinePoints(s.pts)
		if err != nil {
			return nil, err
		}
		c := targetColors[s.target]
		line.Color, points.Color = c, c
		line.Width = vg.Points(1.5)
		if s.dashed {
			line.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
			points.Shape = draw.BoxGlyph{}
		} else {
			points.Shape = draw.CircleGlyph{}
		}
		p.Add(line, points)
		p.Legend.Add(s.label, line, points)
		n++
	}
	if n == 0 {
		// Nothing positive to show: keep the log axes valid.
		p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 10, 100000, 1e-4, 1
		return p, nil
	}
	// Room on the left and right of the points, and above them for the
	// legend (a third of the height on the log scale).
	p.X.Min, p.X.Max = p.X.Min/1.4, p.X.Max*1.4
	span := math.Max(math.Log10(p.Y.Max/p.Y.Min), 1)
	p.Y.Min = p.Y.Min / math.Pow(10, 0.05*span)
	p.Y.Max = p.Y.Max * math.Pow(10, 0.6*span)
	return p, nil
}

// logTicker puts labelled ticks at 1, 2 and 5 times the powers of ten (only
// at the powers of ten when the range spans more than three decades) and
// unlabelled ones in between.
type logTicker struct{ format func(float64) string }

func (t logTicker) Ticks(lo, hi float64) []plot.Tick {
	if lo <= 0 || hi <= lo {
		return nil
	}
	labelled := []float64{1, 2, 5}
	if math.Log10(hi/lo) > 3 {
		labelled = []float64{1}
	}
	var ticks []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		base := math.Pow(10, e)
		for m := 1.0; m < 10; m++ {
			v := base * m
			if v < lo*(1-1e-9) || v > hi*(1+1e-9) {
				continue
			}
			tk := plot.Tick{Value: v}
			for _, l := range labelled {
				if m == l {
					tk.Label = t.format(v)
				}
			}
			ticks = append(ticks, tk)
		}
	}
	return ticks
}

// renderPlot draws the panels side by side: push latency p50 and p99
// against groups for every client count, then scrape p50 (text and
// protobuf) against groups.
func renderPlot(r *report) ([]byte, error) {
	method := r.cfg.methods[0]
	var plots []*plot.Plot
	for _, n := range r.cfg.clients {
		var ss []series
		for _, t := range r.cfg.targets {
			k := pushKey(method, n)
			ss = append(ss, r.seriesFor(t, k+".p50", t+" p50", false), r.seriesFor(t, k+".p99", t+" p99", true))
		}
		cl := "client"
		if n != 1 {
			cl += "s"
		}
		p, err := panel(fmt.Sprintf("push latency (%s, %d %s)", strings.ToUpper(method), n, cl), ss)
		if err != nil {
			return nil, err
		}
		plots = append(plots, p)
	}
	var ss []series
	for _, t := range r.cfg.targets {
		ss = append(ss, r.seriesFor(t, "scrape.text.p50", t+" text", false), r.seriesFor(t, "scrape.proto.p50", t+" protobuf", true))
	}
	p, err := panel("scrape /metrics p50", ss)
	if err != nil {
		return nil, err
	}
	plots = append(plots, p)

	const panelW, panelH = 5.5 * vg.Inch, 4.5 * vg.Inch
	img := vgimg.NewWith(vgimg.UseWH(panelW*vg.Length(len(plots)), panelH), vgimg.UseDPI(110),
		vgimg.UseBackgroundColor(color.White))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: len(plots), PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 3,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	canvases := plot.Align([][]*plot.Plot{plots}, tiles, dc)
	for i, p := range plots {
		p.Draw(canvases[0][i])
	}
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writePlot(path string, r *report) error {
	b, err := renderPlot(r)
	if err != nil {
		return err
	}
	return writeFile(path, b)
}

// shortSeconds is formatSeconds without trailing zeros: "2 ms", "1.5 s".
func shortSeconds(v float64) string {
	num, unit, _ := strings.Cut(formatSeconds(v), " ")
	if strings.Contains(num, ".") {
		num = strings.TrimRight(strings.TrimRight(num, "0"), ".")
	}
	if unit == "" {
		return num
	}
	return num + " " + unit
}
