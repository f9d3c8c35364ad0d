package postgres_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/rowsync/rowsync"
)

// gateReader hands out all but the last tail bytes of a stream, then
// waits until open is closed before handing out the rest.
type gateReader struct {
	data []byte
	tail int
	open chan struct{}
	at   chan struct{} // closed when the reader reached the gate
	pos  int
}

func (g *gateReader) Read(p []byte) (int, error) {
	if g.pos == len(g.data) {
		return 0, io.EOF
	}
	if g.pos == len(g.data)-g.tail {
		close(g.at)
		<-g.open
		g.tail = 0
	}
	end := len(g.data) - g.tail
	n := copy(p, g.data[g.pos:end])
	g.pos += n
	return n, nil
}

// TestApplicationWriteDuringApply commits an application's write to a row
// after a batch has folded the log but before the engine writes that row.
// The application's write must survive (it is the newer one) and the
// incoming value must be the loser of a logged conflict; without the
// guard the engine's write overwrote it and the application's captured
// entry, folded later, stamped the engine's value.
func TestApplicationWriteDuringApply(t *testing.T) {
	const ddl = `CREATE TABLE item(id bigint PRIMARY KEY, name text)`
	a, b := newSite(t, ddl), newSite(t, ddl)
	a.exec(t, `INSERT INTO item VALUES (1, 'first')`)
	a.init(t, "item")
	b.init(t, "item")
	a.sync(t, b)
	b.exec(t, `UPDATE item SET name = 'from b' WHERE id = 1`)

	var stream bytes.Buffer
	if _, err := b.node.Send(t.Context(), &stream, rowsync.NodeInfo{ID: a.node.ID(), Name: "a"}, nil); err != nil {
		t.Fatal(err)
	}
	// The last frames are the checkpoint ('C', a one-byte length, the
	// payload) and the end ('E', 1, the row count): the gate stops the
	// receiver before the checkpoint, after the row, inside its batch.
	data := stream.Bytes()
	tail := 0
	for l := 1; l < 64 && tail == 0; l++ {
		if i := len(data) - 3 - 2 - l; i > 0 && data[i] == 'C' && int(data[i+1]) == l && data[len(data)-3] == 'E' {
			tail = len(data) - i
		}
	}
	if tail == 0 {
		t.Fatal("no checkpoint frame at the end of the stream")
	}
	g := &gateReader{data: data, tail: tail, open: make(chan struct{}), at: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := a.node.Receive(t.Context(), g, rowsync.NodeInfo{ID: b.node.ID(), Name: "b"})
		done <- err
	}()
	select {
	case <-g.at:
	case err := <-done:
		t.Fatalf("receive ended before the gate: %v", err)
	}
	a.exec(t, `UPDATE item SET name = 'from the application' WHERE id = 1`)
	close(g.open)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := a.node.RetryHeld(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := a.query(t, `SELECT name FROM item WHERE id = 1`)
	if len(got) != 1 || got[0][0] != "from the application" {
		t.Fatalf("a's row after the sync: %v, want the application's later write", got)
	}
	cs, err := a.node.Conflicts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	lost := false
	for _, c := range cs {
		if c.Kind == rowsync.ConflictUpdate && c.Loser.Equal(rowsync.TextValue("from b")) {
			lost = true
		}
	}
	if !lost {
		t.Errorf("b's value is not the loser of a logged conflict: %v", cs)
	}
	// And the two nodes converge on the application's write.
	a.sync(t, b)
	if got := b.query(t, `SELECT name FROM item WHERE id = 1`); len(got) != 1 || got[0][0] != "from the application" {
		t.Errorf("b's row: %v", got)
	}
}
