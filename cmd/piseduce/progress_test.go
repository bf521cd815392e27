package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/piseduce/piseduce/pkg/client"
)

// script is a watcher that answers a list of moments, one per Next.
type script [][]client.Deployment

func (s *script) Next(context.Context) ([]client.Deployment, error) {
	ds := (*s)[0]
	if len(*s) > 1 {
		*s = (*s)[1:]
	}
	return ds, nil
}

func moments() script {
	boot := client.Deployment{ID: 1, Node: "node-1", State: "nfs_boot", Label: "booting the NFS system", StepText: "step 2 of 8", Step: 2, Steps: 8}
	copying := client.Deployment{ID: 1, Node: "node-1", State: "img_copy", Label: "writing the image", StepText: "step 4 of 8", Step: 4, Steps: 8,
		Copying: true, Percent: 42.5, Speed: "9.5 MiB/s", ETASeconds: 83}
	copying2 := copying
	copying2.Percent, copying2.ETASeconds = 47.1, 75
	done := client.Deployment{ID: 1, Node: "node-1", State: "deployed", Label: "deployed", StepText: "step 8 of 8", Reachable: true}
	other := client.Deployment{ID: 2, Node: "node-2", State: "nfs_boot", Label: "booting the NFS system", StepText: "step 2 of 8", Step: 2, Steps: 8}
	lost := client.Deployment{ID: 2, Node: "node-2", State: "lost", Label: "lost", StepText: "stopped at step 3 of 8", LastError: "no answer on SSH"}
	return script{{boot, other}, {copying, other}, {copying2, other}, {done, lost}}
}

func TestFollowPlainLinesOnChange(t *testing.T) {
	var out bytes.Buffer
	m := moments()
	err := follow(context.Background(), &m, &out, false)
	want := `node-1: booting the NFS system (step 2 of 8)
node-2: booting the NFS system (step 2 of 8)
node-1: writing the image (step 4 of 8) 40%
node-1: deployed
node-2: lost: no answer on SSH
`
	if out.String() != want {
		t.Errorf("plain output:\n%s\nwant:\n%s", out.String(), want)
	}
	if err == nil || err.Error() != "not deployed: node-2 lost" {
		t.Errorf("error %v, want node-2 lost", err)
	}
}

func TestFollowRedrawsBarsOnATerminal(t *testing.T) {
	var out bytes.Buffer
	m := moments()
	m[3][1] = client.Deployment{ID: 2, Node: "node-2", State: "deployed", Label: "deployed", Reachable: true}
	if err := follow(context.Background(), &m, &out, true); err != nil {
		t.Fatal(err)
	}
	frames := strings.Split(out.String(), "\x1b[2A")
	if len(frames) != 4 || strings.Count(frames[0], "\x1b[2K") != 2 {
		t.Fatalf("%d frames, want 4 redrawn in place:\n%q", len(frames), out.String())
	}
	for i, want := range []string{
		"node-1     [###.....................]  12.5% booting the NFS system (step 2 of 8)",
		"node-1     [##########..............]  42.5% writing the image (step 4 of 8)  9.5 MiB/s  1m23s left",
		"node-1     [###########.............]  47.1% writing the image (step 4 of 8)  9.5 MiB/s  1m15s left",
		"node-1     [########################] 100.0% deployed",
	} {
		if !strings.Contains(frames[i], "\x1b[2K"+want+"\n") {
			t.Errorf("frame %d:\n%q\nwant the line\n%q", i, frames[i], want)
		}
	}
}
