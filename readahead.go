package rowsync

import "io"

// Receiving decodes frames on a goroutine of its own, a few hundred frames
// ahead of the goroutine that applies them: reading the transport (HTTP,
// zstd) and decoding Rows frames then use the second core while the first
// writes to the database, which is what limits an initial sync.

// readAheadFrames is how many frames one hand-over carries, and
// readAheadDepth how many hand-overs wait at most: one full Rows block (4096 rows).
const (
	readAheadFrames = 256
	readAheadDepth  = 16
)

type frameRun struct {
	frames []*Frame
	err    error // after the frames: the error Next returned (io.EOF at the end)
}

// frameReader hands the frames of a decoder over from a reading goroutine.
type frameReader struct {
	runs    chan frameRun
	done    chan struct{}
	cur     []*Frame
	err     error
	stopped bool
}

// readAhead starts reading dec on a goroutine. It reads until an End
// frame, an error or stop; after an End frame it no longer touches dec.
// The caller must call stop when it no longer reads frames.
func readAhead(dec *Decoder) *frameReader {
	r := &frameReader{runs: make(chan frameRun, readAheadDepth), done: make(chan struct{})}
	go func() {
		defer close(r.runs)
		run := make([]*Frame, 0, readAheadFrames)
		for {
			f, err := dec.Next()
			if err == nil {
				run = append(run, f)
				// Collect while the next frame is a row of the Rows
				// frame at hand (no read of the transport, which may
				// wait); hand over at once otherwise.
				if f.Type != FrameEnd && len(run) < readAheadFrames && dec.blk.next < dec.blk.n {
					continue
				}
			}
			// The run belongs to the receiver once handed over.
			last := err != nil || run[len(run)-1].Type == FrameEnd
			select {
			case r.runs <- frameRun{frames: run, err: err}:
			case <-r.done:
				return
			}
			if last {
				return
			}
			run = make([]*Frame, 0, readAheadFrames)
		}
	}()
	return r
}

// next returns the next frame, or the error the decoder returned.
func (r *frameReader) next() (*Frame, error) {
	for len(r.cur) == 0 {
		if r.err != nil {
			return nil, r.err
		}
		run, ok := <-r.runs
		if !ok {
			// Closed after an End frame: like Decoder.Next after it.
			return nil, io.EOF
		}
		r.cur, r.err = run.frames, run.err
	}
	f := r.cur[0]
	r.cur[0] = nil
	r.cur = r.cur[1:]
	return f, nil
}

// stop ends the reading goroutine once it has handed over what it holds
// (it may still be blocked reading the transport, until that is closed).
func (r *frameReader) stop() {
	if !r.stopped {
		r.stopped = true
		close(r.done)
	}
}
