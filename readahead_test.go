package rowsync

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"
	"time"
)

// The read-ahead goroutine returns the frames Decoder.Next returns, in
// order, with the decoder's error at the end.
func TestReadAheadSameFrames(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 20 {
		var buf bytes.Buffer
		encodeSteps(t, &buf, randomStream(t, rng, 3000))
		stream := buf.Bytes()
		if i%4 == 3 {
			stream = stream[:rng.IntN(len(stream))] // a cut link
		}
		dec := NewDecoder(bytes.NewReader(stream))
		ra := readAhead(NewDecoder(bytes.NewReader(stream)))
		for n := 0; ; n++ {
			want, werr := dec.Next()
			got, gerr := ra.next()
			if (werr == nil) != (gerr == nil) || (werr != nil && werr.Error() != gerr.Error()) {
				t.Fatalf("stream %d frame %d: read ahead %v, direct %v", i, n, gerr, werr)
			}
			if werr != nil {
				break
			}
			if got.Type != want.Type || got.Seq != want.Seq || (want.Row != nil && !sameRow(got.Row, want.Row)) {
				t.Fatalf("stream %d frame %d: read ahead %+v, direct %+v", i, n, got, want)
			}
		}
		ra.stop()
	}
}

// Frames that arrived are handed over without waiting for the next ones:
// a sender that pauses after a checkpoint gets its batch applied.
func TestReadAheadDoesNotWait(t *testing.T) {
	tb, err := NewTable(1, "t", []Column{{Name: "id", Class: ClassInteger}, {Name: "v", Class: ClassText}}, []string{"id"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	defer pr.Close()
	ra := readAhead(NewDecoder(pr))
	defer ra.stop()
	go func() {
		e := NewEncoder(pw)
		e.Begin(BeginFrame{Protocol: ProtocolVersion, NodeID: "a1", Name: "a"})
		e.Table(tb, KindLive)
		for i := range 3 {
			e.Row(int64(i+1), &Row{Key: []Value{IntValue(int64(i))}, Cells: []Cell{{Value: TextValue("x")}}, Live: Version{HLC: HLCFromWall(1_700_000_000_000), Node: "a1"}})
		}
		e.Checkpoint([]Cursor{{Table: "t", Kind: KindLive, Seq: 3}})
		e.Flush() // and then nothing more until the pipe is closed
	}()
	got := make(chan byte, 10)
	go func() {
		for {
			f, err := ra.next()
			if err != nil {
				close(got)
				return
			}
			got <- f.Type
		}
	}()
	want := []byte{FrameBegin, FrameTable, FrameRow, FrameRow, FrameRow, FrameCheckpoint}
	for i, w := range want {
		select {
		case typ := <-got:
			if typ != w {
				t.Fatalf("frame %d: %v, want %v", i, typ, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("frame %d (%v) not handed over while the sender waits", i, w)
		}
	}
	pw.CloseWithError(io.ErrClosedPipe)
	if _, ok := <-got; ok {
		t.Fatal("a frame after the checkpoint")
	}
}
