package rowsynctest

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/rowsync/rowsync"
)

// ErrCut is the error a CutPeer's streams fail with.
var ErrCut = errors.New("rowsynctest: link cut")

// CutPeer is a rowsync.Peer whose link drops in the middle of a stream:
// the reader its Pull returns fails with ErrCut after PullAfter bytes, and
// the body its Push hands on fails after PushAfter bytes. Zero leaves that
// direction whole.
type CutPeer struct {
	rowsync.Peer
	PullAfter int64
	PushAfter int64
}

var _ rowsync.Peer = (*CutPeer)(nil)

// Push implements rowsync.Peer.
func (p *CutPeer) Push(ctx context.Context, from rowsync.NodeInfo, r io.Reader) (*rowsync.ReceiveResult, error) {
	if p.PushAfter > 0 {
		r = &cutReader{r: r, left: p.PushAfter}
	}
	return p.Peer.Push(ctx, from, r)
}

// Pull implements rowsync.Peer.
func (p *CutPeer) Pull(ctx context.Context, req *rowsync.PullRequest) (io.ReadCloser, error) {
	rc, err := p.Peer.Pull(ctx, req)
	if err != nil || p.PullAfter <= 0 {
		return rc, err
	}
	return &cutReadCloser{cutReader{r: rc, left: p.PullAfter}, rc}, nil
}

// cutReader passes on left bytes of r, then fails with ErrCut.
type cutReader struct {
	r    io.Reader
	left int64
}

func (c *cutReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, ErrCut
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

type cutReadCloser struct {
	cutReader
	c io.Closer
}

func (c *cutReadCloser) Close() error { return c.c.Close() }

// SyncUntilQuiet syncs the nodes pairwise along a ring (each node with the
// next, both ways) until a whole round moves no row, and returns the
// number of rounds that moved rows. It fails tb if the nodes are still not
// quiet after maxRounds rounds or a sync fails.
func SyncUntilQuiet(tb testing.TB, nodes []*rowsync.Node, maxRounds int) int {
	tb.Helper()
	for round := 0; round < maxRounds; round++ {
		var moved int64
		for i, n := range nodes {
			p := nodes[(i+1)%len(nodes)]
			if p == n {
				continue
			}
			res, err := n.Sync(tb.Context(), p, rowsync.SyncOptions{})
			if err != nil {
				tb.Fatalf("round %d: sync %s with %s: %v", round, n.Name(), p.Name(), err)
			}
			moved += res.Pushed.Rows + res.Pulled.Rows
		}
		if moved == 0 {
			return round
		}
	}
	tb.Fatalf("nodes still exchange rows after %d rounds of syncs along a ring", maxRounds)
	return maxRounds
}
