// Command plot draws the deployment-time model (bench/deploymodel) for N = 10…200 nodes on a
// real Pi 3B+ site and a Pi 4 site into a PNG; it prints the same numbers as markdown tables
// for BENCHMARKS.md.
//
//	go run ./bench/deploymodel/plot -o bench/deploymodel/deploytime.png
package main

import (
	"flag"
	"fmt"
	"image/color"
	"image/png"
	"math"
	"os"
	"time"

	"github.com/piseduce/piseduce/bench/deploymodel"
)

// Measured in the lab (BENCHMARKS.md): what a payload gets of a tbf-shaped link (80 Mbit/s =
// 10 MB/s gave 9.34–9.43 MB/s per node, 1 node, `make bench-lab`), a Pi 3B+ card's rates as a
// deployment sees them (a 2092 MiB image: env_copy 176.4 s on 15 MB/s cards, env_check 100.2 s
// on 22 MB/s ones), the configuration steps of that run, and pitasks' CPU per GB on the wire
// (`make bench-cpu`: xz, later copies, AES-GCM, 3.91 cpu-s/GB under load).
const (
	linkEff   = 9.35 / 10
	cardWEff  = 2092 * (1 << 20) / 176.4 / 15e6
	cardREff  = 2092 * (1 << 20) / 100.2 / 22e6
	cpuPerGB  = 3.91
	cores     = 2
	mbit      = 1e6 / 8 // bytes per second
	pitasksCp = 48      // pitasks' default max_copying
	pitasksMB = 8       // pitasks' default max_booting
)

// site is a real cluster: the image of the brief (2.7 GB raw, 0.45 GB as xz, inflated on the
// node), the given links, cards and uplink, pitasks' defaults. The boots are assumptions: no
// real Pi was measured here (the lab's fake Pis boot in 1–4 s).
func site(linkMbit, cardW, cardR float64, boot1, boot2 time.Duration) deploymodel.Params {
	return deploymodel.Params{ImageBytes: 2.7e9, WireBytes: 0.45e9,
		LinkBps: linkMbit * mbit * linkEff, CardWriteBps: cardW * 1e6 * cardWEff, CheckBps: cardR * 1e6 * cardREff,
		UplinkBps: 1000 * mbit * linkEff, CPUSecPerByte: cpuPerGB / 1e9, Cores: cores,
		Start: 2 * time.Second, Boot1: boot1, Boot2: boot2,
		Conf1: 6100 * time.Millisecond, // partition 1.2 + system_conf 3.9 + boot_files 1.0 (the 2092 MiB lab run)
		Conf2: time.Second,             // user_conf + user_script (lab)
		Fixed: 4 * time.Second,         // ssh_nfs and ssh_system wait for a tick (pitasks' default: 2 s)
		Slots: pitasksMB, Copies: pitasksCp}
}

var (
	pi3 = site(80, 15, 22, 40*time.Second, 30*time.Second)   // Pi 3B+: 10 MB/s link, 15/22 MB/s card
	pi4 = site(1000, 25, 45, 30*time.Second, 20*time.Second) // Pi 4: gigabit link, 25/45 MB/s card (the lab's Pi 4)
)

func unlimited(p deploymodel.Params, uplink bool) deploymodel.Params {
	p.Slots, p.Copies = 0, 0
	if !uplink {
		p.UplinkBps = 0
	}
	return p
}

func noUplink(p deploymodel.Params) deploymodel.Params { p.UplinkBps = 0; return p }

type variant struct {
	plot   bool // drawn (else in the tables only: the same curve as the one above it)
	name   string
	col    color.RGBA
	dashed bool
	time   func(n int) float64
}

func variants(p deploymodel.Params) []variant {
	pred := func(p deploymodel.Params) func(int) float64 {
		return func(n int) float64 { return deploymodel.Predict(p, n).Max.Seconds() }
	}
	return []variant{
		{true, "pitasks defaults (8 boot slots, 48 copies)", color.RGBA{31, 119, 180, 255}, false, pred(p)},
		{false, "  same, uplink unlimited", color.RGBA{31, 119, 180, 255}, true, pred(noUplink(p))},
		{true, "no boot or copy slot limit", color.RGBA{214, 39, 40, 255}, false, pred(unlimited(p, true))},
		{true, "  same, uplink unlimited", color.RGBA{214, 39, 40, 255}, true, pred(unlimited(p, false))},
		{true, "chained streaming, no slot limit", color.RGBA{44, 160, 44, 255}, false,
			func(n int) float64 { return deploymodel.Chain(unlimited(p, true), n, 20*time.Millisecond).Seconds() }},
	}
}

func nice(v float64) (top, step float64) {
	step = math.Pow(10, math.Floor(math.Log10(v/5)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v/(step*m) <= 8 {
			step *= m
			break
		}
	}
	return math.Ceil(v/step) * step, step
}

func sitePanel(title string, p deploymodel.Params) panel {
	pn := panel{title: title, xLabel: "nodes deployed at once", yLabel: "slowest node (s)", xMin: 10, xMax: 200, xStep: 20}
	top := 0.0
	for _, v := range variants(p) {
		if !v.plot {
			continue
		}
		s := series{name: v.name, col: v.col, dashed: v.dashed}
		for n := 10; n <= 200; n += 2 {
			s.x, s.y = append(s.x, float64(n)), append(s.y, v.time(n))
			top = max(top, v.time(n))
		}
		pn.series = append(pn.series, s)
	}
	pn.yMax, pn.yStep = nice(top * 1.35) // room for the legend
	pn.xMin, pn.xStep = 0, 20
	return pn
}

func main() {
	out := flag.String("o", "bench/deploymodel/deploytime.png", "the PNG to write")
	flag.Parse()
	img := render([]panel{
		sitePanel("Pi 3B+ site: 10 MB/s links, 15 MB/s cards, 1 Gbit/s uplink", pi3),
		sitePanel("Pi 4 site: 1 Gbit/s links, 25 MB/s cards, 1 Gbit/s uplink", pi4),
	}, 560, 440)
	f, err := os.Create(*out)
	if err == nil {
		err = png.Encode(f, img)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "plot:", err)
		os.Exit(1)
	}
	tables()
}

// tables prints the model's numbers as markdown.
func tables() {
	for _, s := range []struct {
		name string
		p    deploymodel.Params
	}{{"Pi 3B+ site", pi3}, {"Pi 4 site", pi4}} {
		p := s.p
		fmt.Printf("\n%s: one node copies at %.2f MB/s on the wire (link %.1f, card %.1f × %.2f); the uplink carries %.1f MB/s: "+
			"it binds from %.0f copies at once.\n\n", s.name, p.NodeCap()/1e6, p.LinkBps/1e6, p.CardWriteBps/1e6,
			p.WireBytes/p.ImageBytes, p.SharedCap()/1e6, math.Ceil(p.SharedCap()/p.NodeCap()))
		vs := variants(p)
		fmt.Print("| nodes |")
		for _, v := range vs {
			fmt.Printf(" %s (s) |", v.name)
		}
		fmt.Print("\n|---|")
		for range vs {
			fmt.Print("---|")
		}
		fmt.Println()
		for _, n := range []int{10, 20, 50, 100, 150, 200} {
			fmt.Printf("| %d |", n)
			for _, v := range vs {
				fmt.Printf(" %.0f |", v.time(n))
			}
			fmt.Println()
		}
		for i, q := range []deploymodel.Params{p, unlimited(p, true)} {
			bind := "never up to 200"
			for n := 1; n <= 200; n++ {
				with, without := deploymodel.Predict(q, n).Max, deploymodel.Predict(noUplink(q), n).Max
				if with.Seconds() > 1.05*without.Seconds() {
					bind = fmt.Sprintf("from %d nodes", n)
					break
				}
			}
			fmt.Printf("\nThe uplink costs more than 5 %% (%s): %s.\n", []string{"pitasks defaults", "no boot or copy slot limit"}[i], bind)
		}
		copySlots(p)
	}
}

// copySlots prints the time of 50, 100 and 200 nodes by max_copying, with pitasks' 8 boot slots
// and without a boot slot limit, and the fewest copy slots that cost nothing (≤ 1 % at N = 1, 8,
// …, 197) against no copy limit: past it, more copies at once only add memory.
func copySlots(p deploymodel.Params) {
	fmt.Print("\n| max_copying | 8 boot slots: 50 / 100 / 200 nodes (s) | no boot slot limit: 50 / 100 / 200 nodes (s) |\n|---|---|---|\n")
	booting := []int{pitasksMB, 0}
	for _, c := range []int{8, 16, 32, 48, 64, 0} {
		fmt.Printf("| %s |", map[bool]string{true: "no limit", false: fmt.Sprint(c)}[c == 0])
		for _, b := range booting {
			q := p
			q.Slots, q.Copies = b, c
			fmt.Printf(" %.0f / %.0f / %.0f |", deploymodel.Predict(q, 50).Max.Seconds(), deploymodel.Predict(q, 100).Max.Seconds(),
				deploymodel.Predict(q, 200).Max.Seconds())
		}
		fmt.Println()
	}
	for _, b := range booting {
		least := 0
		for c := 1; c <= 200 && least == 0; c++ {
			free := true
			for n := 1; n <= 200 && free; n += 7 {
				q := p
				q.Slots, q.Copies = b, 0
				without := deploymodel.Predict(q, n).Max.Seconds()
				q.Copies = c
				free = deploymodel.Predict(q, n).Max.Seconds() <= 1.01*without
			}
			if free {
				least = c
			}
		}
		fmt.Printf("\nWith %s, the fewest copy slots that cost nothing (≤ 1 %% at N = 1, 8, …, 197 nodes): %d.\n",
			map[bool]string{true: "no boot slot limit", false: fmt.Sprintf("%d boot slots", b)}[b == 0], least)
	}
}
