package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
)

// Measuring a version of a compressed image file costs the pimaster a whole inflate, and the
// decoder's window in memory while it runs (xz: up to 64 MiB). Copies of one version that start
// together (a reservation of many nodes, the first time its environment is deployed) share one
// measure, taken from the file by one goroutine at the pimaster's own pace, instead of each
// inflating a copy of its stream: the pimaster's memory and CPU for it do not grow with the
// number of nodes.

// measure is the measure of one version of an image file, being taken or taken.
type measure struct {
	id   fileID
	done chan struct{} // closed once d and err are set
	d    digest
	err  error
}

var (
	measuresMu sync.Mutex
	measures   = map[string]*measure{} // path → the measure under way
	// measuresTaken counts the measures started: one per version in flight, whatever the
	// number of copies (the tests count them).
	measuresTaken atomic.Int64
)

// measureOnce returns the measure of version id of the file at path: the one under way, or one
// started now. It runs to its end even if every copy that asked gives up: it is kept.
func measureOnce(path string, id fileID, format string) *measure {
	measuresMu.Lock()
	defer measuresMu.Unlock()
	if m, ok := measures[path]; ok && m.id == id {
		return m
	}
	m := &measure{id: id, done: make(chan struct{})}
	measures[path] = m
	measuresTaken.Add(1)
	go func() {
		m.d, m.err = takeMeasure(path, id, format)
		measuresMu.Lock()
		if measures[path] == m {
			delete(measures, path)
		}
		measuresMu.Unlock()
		close(m.done)
	}()
	return m
}

// errChangedWhileRead: the file is no longer the version a copy sent; the copy is tried again.
var errChangedWhileRead = errors.New("the file changed while it was copied")

// takeMeasure reads version id of the file at path whole: its raw image's size and sha256, the
// hashes of its blocks and its used ranges; the measure is kept (rememberDigest).
func takeMeasure(path string, id fileID, format string) (digest, error) {
	f, fi, err := Open(path)
	if err != nil {
		return digest{}, err
	}
	defer f.Close()
	if got, _ := idOf(fi, format); got != id {
		return digest{}, errChangedWhileRead
	}
	h, bh, mapper := NewHasher(), newBlockHasher(), NewUsedMapper()
	if err := readRaw(context.Background(), f, fi.Size(), format, MaxRawSize, io.MultiWriter(h, bh, mapper)); err != nil {
		return digest{}, err
	}
	d := digest{ID: id, Raw: h.Sum(), Blocks: bh.blocks(), Used: mapper.Used(BlockSize)}
	if !unchanged(f, id, format) {
		return digest{}, errChangedWhileRead
	}
	rememberDigest(path, d)
	return d, nil
}

// wait returns the measure once taken, or ctx's error first.
func (m *measure) wait(ctx context.Context, path string) (digest, error) {
	select {
	case <-m.done:
	case <-ctx.Done():
		return digest{}, ctx.Err()
	}
	if m.err != nil {
		return digest{}, fmt.Errorf("image %s: %w", path, m.err)
	}
	return m.d, nil
}
