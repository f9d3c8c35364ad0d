package rowsync

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The change stream is the one format every transport moves: the body of a
// pull response, of a push request and of a bundle file. It is specified
// in docs/PROTOCOL.md; in short: the 5-byte header "RSYN\x02", then frames
// of one type byte, a uvarint payload length and the payload. Rows travel
// in blocks, column by column (stream_columns.go).

// ProtocolVersion is the version of the change stream and of the HTTP
// protocol.
const ProtocolVersion = 2

var streamMagic = []byte("RSYN\x02")

// Frame types. On the wire a FrameRow frame (a Rows frame) carries a block
// of rows; the Decoder returns one FrameRow frame per row.
const (
	FrameBegin      = 'B'
	FrameNode       = 'N'
	FrameTable      = 'T'
	FrameRow        = 'R'
	FrameCheckpoint = 'C'
	FrameEnd        = 'E'
	FrameError      = 'X'
)

// MaxFrameSize bounds one frame's payload (and so one row's size).
const MaxFrameSize = 256 << 20

// MaxStreamNodes bounds the node frames of one stream (the distinct nodes
// whose versions it carries), so that a hostile stream cannot grow the
// decoder's node table without bound.
const MaxStreamNodes = 1 << 16

// maxNodeIDLen bounds the length of a node id in a stream.
const maxNodeIDLen = 256

// BeginFrame opens a stream: who sends it and the sender's sequence number
// the stream goes up to.
type BeginFrame struct {
	Protocol int
	NodeID   string
	Name     string
	UpTo     int64
}

// TableHeader starts a run of rows of one table and kind.
type TableHeader struct {
	Name    string
	Kind    ChangeKind
	Columns []Column // all columns; Class is carried, Type is not
	Key     []string
}

// Frame is one decoded frame.
type Frame struct {
	Type    byte
	Begin   *BeginFrame
	Table   *TableHeader
	Seq     int64 // FrameRow: the sender's sequence number of the row
	Row     *Row  // FrameRow: Cells in the order of the header's non-key columns
	Cursors []Cursor
	Count   int64  // FrameEnd: rows in the stream
	Message string // FrameError
}

// StreamError is a FrameError received from the sender.
type StreamError struct{ Message string }

func (e *StreamError) Error() string { return "peer failed: " + e.Message }

// Encoder writes a change stream. Rows are gathered into a block and
// written as one Rows frame at the next Table, Checkpoint, End or Flush, or
// when the block is full (MaxBlockRows rows, MaxBlockCells cells, or about
// 1 MiB of values).
type Encoder struct {
	w       *bufio.Writer
	started bool
	nodes   map[string]uint64
	buf     []byte
	hdr     *TableHeader
	ncells  int
	ncols   int
	blk     blockEncoder
}

// NewEncoder returns an encoder writing to w. Call Flush at batch ends.
func NewEncoder(w io.Writer) *Encoder {
	return &Encoder{w: bufio.NewWriterSize(w, 64<<10), nodes: map[string]uint64{}}
}

func (e *Encoder) frame(typ byte, payload []byte) error {
	if err := e.frameHeader(typ, len(payload)); err != nil {
		return err
	}
	_, err := e.w.Write(payload)
	return err
}

// frameHeader writes a frame's type and length (and, first, the magic).
func (e *Encoder) frameHeader(typ byte, n int) error {
	if !e.started {
		if _, err := e.w.Write(streamMagic); err != nil {
			return err
		}
		e.started = true
	}
	var hdr [1 + binary.MaxVarintLen64]byte
	hdr[0] = typ
	k := binary.PutUvarint(hdr[1:], uint64(n))
	_, err := e.w.Write(hdr[:1+k])
	return err
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Begin writes the opening frame.
func (e *Encoder) Begin(f BeginFrame) error {
	b := binary.AppendUvarint(nil, uint64(f.Protocol))
	b = appendString(b, f.NodeID)
	b = appendString(b, f.Name)
	b = binary.AppendUvarint(b, uint64(f.UpTo))
	return e.frame(FrameBegin, b)
}

// Table starts a run of rows of t.
func (e *Encoder) Table(t *Table, kind ChangeKind) error {
	h := &TableHeader{Name: t.Name, Kind: kind, Columns: t.Columns, Key: t.KeyNames()}
	b := appendString(nil, h.Name)
	b = binary.AppendUvarint(b, uint64(kind))
	b = binary.AppendUvarint(b, uint64(len(h.Columns)))
	for _, c := range h.Columns {
		b = appendString(b, c.Name)
		b = appendString(b, string(c.Class))
	}
	b = binary.AppendUvarint(b, uint64(len(h.Key)))
	for _, k := range h.Key {
		b = appendString(b, k)
	}
	if err := e.flushRows(); err != nil {
		return err
	}
	e.hdr = h
	e.ncells = len(h.Columns) - len(h.Key)
	e.ncols = len(h.Columns)
	e.blk.init(len(h.Key), e.ncells)
	return e.frame(FrameTable, b)
}

// flushRows writes the rows gathered so far as one Rows frame.
func (e *Encoder) flushRows() error {
	if e.blk.n == 0 {
		return nil
	}
	p, split := e.blk.encode(e.buf[:0])
	e.buf = p
	e.blk.reset()
	if split < sectionBytes || len(p)-split < sectionBytes {
		return e.frame(FrameRow, p)
	}
	// A large frame's numbers and its texts go in separate writes, and
	// apart from what came before: a transport that compresses each
	// write as a block of its own (as the HTTP server and client do)
	// then codes each with its own tables. Random bit-packed numbers in
	// the same zstd block as text make zstd code the text's bytes as if
	// they were as random.
	if err := e.w.Flush(); err != nil {
		return err
	}
	if err := e.frameHeader(FrameRow, len(p)); err != nil {
		return err
	}
	if _, err := e.w.Write(p[:split]); err != nil {
		return err
	}
	if err := e.w.Flush(); err != nil {
		return err
	}
	_, err := e.w.Write(p[split:])
	return err
}

// sectionBytes is the size from which a Rows frame's numbers and texts
// are written apart (see flushRows).
const sectionBytes = 1 << 10

func (e *Encoder) nodeIndex(id string) (uint64, error) {
	if id == "" {
		return 0, nil
	}
	if i, ok := e.nodes[id]; ok {
		return i, nil
	}
	i := uint64(len(e.nodes) + 1)
	e.nodes[id] = i
	return i, e.frame(FrameNode, appendString(nil, id))
}

// Row writes one row of the current table; seq is the sender's sequence
// number of its last change. The row is encoded at once (the caller may
// reuse r) and written with its block.
func (e *Encoder) Row(seq int64, r *Row) error {
	if e.hdr == nil {
		return errors.New("encode row: no table header")
	}
	if len(r.Cells) != e.ncells || len(r.Key) != len(e.hdr.Key) {
		return fmt.Errorf("encode row: %d key values and %d cells for %d key columns and %d others", len(r.Key), len(r.Cells), len(e.hdr.Key), e.ncells)
	}
	if e.ncols > MaxBlockCells {
		return fmt.Errorf("encode row: table %q has %d columns, more than a rows frame can carry (%d)", e.hdr.Name, e.ncols, MaxBlockCells)
	}
	// A row that would take the block past blockBytes starts a new one.
	if e.blk.n > 0 && e.blk.bytes+rowBytes(r) > blockBytes {
		if err := e.flushRows(); err != nil {
			return err
		}
	}
	if err := e.blk.add(seq, r, e.nodeIndex); err != nil {
		return err
	}
	if b := &e.blk; b.n >= MaxBlockRows || (b.n+1)*e.ncols > MaxBlockCells || b.bytes >= blockBytes {
		return e.flushRows()
	}
	return nil
}

// Checkpoint ends a batch: the receiver commits it with these cursors.
func (e *Encoder) Checkpoint(cs []Cursor) error {
	if err := e.flushRows(); err != nil {
		return err
	}
	b := binary.AppendUvarint(nil, uint64(len(cs)))
	for _, c := range cs {
		b = appendString(b, c.Table)
		b = binary.AppendUvarint(b, uint64(c.Kind))
		b = binary.AppendUvarint(b, uint64(c.Seq))
	}
	return e.frame(FrameCheckpoint, b)
}

// End closes the stream cleanly.
func (e *Encoder) End(rows int64) error {
	if err := e.flushRows(); err != nil {
		return err
	}
	return e.frame(FrameEnd, binary.AppendUvarint(nil, uint64(rows)))
}

// Error tells the receiver the sender failed; nothing after it is read.
// Rows not yet written are dropped: the receiver would discard them.
func (e *Encoder) Error(msg string) error {
	e.blk.reset()
	return e.frame(FrameError, appendString(nil, msg))
}

// Flush writes the rows gathered so far and every buffered frame to the
// underlying writer.
func (e *Encoder) Flush() error {
	if err := e.flushRows(); err != nil {
		return err
	}
	return e.w.Flush()
}

// Decoder reads a change stream.
type Decoder struct {
	r       *bufio.Reader
	started bool
	nodes   []string
	hdr     *TableHeader
	ncells  int
	buf     []byte
	ended   bool
	// The last Rows frame, whose rows Next returns one by one.
	blk blockDecoder
}

// NewDecoder returns a decoder reading from r.
func NewDecoder(r io.Reader) *Decoder { return &Decoder{r: bufio.NewReaderSize(r, 64<<10)} }

func malformed(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, a...))
}

// payload reads a frame payload of n bytes. The buffer grows with the data
// that arrives, not with the declared length, so a frame header alone
// cannot make the decoder allocate MaxFrameSize.
func (d *Decoder) payload(n uint64) ([]byte, error) {
	if uint64(cap(d.buf)) >= n {
		p := d.buf[:n]
		_, err := io.ReadFull(d.r, p)
		return p, err
	}
	const chunk = 1 << 20
	b := d.buf[:0]
	for uint64(len(b)) < n {
		m := int(min(n-uint64(len(b)), chunk))
		if len(b)+m > cap(b) {
			// Double (append grows large slices by only a quarter).
			nb := make([]byte, len(b), int(min(max(2*uint64(cap(b)), uint64(len(b)+m)), n)))
			copy(nb, b)
			b = nb
		}
		k, err := io.ReadFull(d.r, b[len(b):len(b)+m])
		b = b[:len(b)+k]
		if err != nil {
			return nil, err
		}
	}
	d.buf = b
	return b, nil
}

// Next returns the next frame. Node frames are consumed internally. After
// an End frame it returns io.EOF; a stream that stops before its End frame
// returns an error wrapping io.ErrUnexpectedEOF.
func (d *Decoder) Next() (*Frame, error) {
	if d.blk.next < d.blk.n {
		return d.blk.row(), nil
	}
	for {
		f, err := d.next()
		if err != nil || f != nil {
			return f, err
		}
	}
}

// ExpectEOF checks that nothing follows the End frame.
func (d *Decoder) ExpectEOF() error {
	if _, err := d.r.ReadByte(); err != io.EOF {
		if err != nil {
			return err
		}
		return malformed("data after the end frame")
	}
	return nil
}

func (d *Decoder) next() (*Frame, error) {
	if d.ended {
		return nil, io.EOF
	}
	if !d.started {
		var m [5]byte
		if _, err := io.ReadFull(d.r, m[:]); err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return nil, fmt.Errorf("%w: empty or truncated stream: %w", ErrMalformed, io.ErrUnexpectedEOF)
			}
			return nil, err
		}
		if string(m[:4]) != string(streamMagic[:4]) {
			return nil, malformed("not a rowsync change stream")
		}
		if m[4] != streamMagic[4] {
			return nil, malformed("unsupported stream version %d (this build speaks %d)", m[4], streamMagic[4])
		}
		d.started = true
	}
	typ, err := d.r.ReadByte()
	if err != nil {
		if err == io.EOF {
			return nil, fmt.Errorf("%w: stream ended without its end frame: %w", ErrMalformed, io.ErrUnexpectedEOF)
		}
		return nil, err
	}
	n, err := binary.ReadUvarint(d.r)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return nil, fmt.Errorf("%w: truncated frame header: %w", ErrMalformed, io.ErrUnexpectedEOF)
	}
	if err != nil {
		// A failing reader (a dropped link) is not bad data; overflow
		// (a varint too long) is.
		if err.Error() == "binary: varint overflows a 64-bit integer" {
			return nil, fmt.Errorf("%w: bad frame length", ErrMalformed)
		}
		return nil, err
	}
	if n > MaxFrameSize {
		return nil, malformed("frame of %d bytes exceeds the limit of %d", n, MaxFrameSize)
	}
	p, err := d.payload(n)
	if err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("%w: truncated frame: %w", ErrMalformed, io.ErrUnexpectedEOF)
		}
		return nil, err
	}
	r := &reader{b: p}
	f := &Frame{Type: typ}
	switch typ {
	case FrameBegin:
		f.Begin = &BeginFrame{Protocol: int(r.uvarint("protocol")), NodeID: r.string("node id"), Name: r.string("name"), UpTo: int64(r.uvarint("seq"))}
		if r.err == nil && f.Begin.Protocol != ProtocolVersion {
			return nil, malformed("unsupported protocol version %d", f.Begin.Protocol)
		}
	case FrameNode:
		id := r.string("node id")
		if r.err == nil && (id == "" || len(id) > maxNodeIDLen) {
			return nil, malformed("node id of %d bytes", len(id))
		}
		if len(d.nodes) >= MaxStreamNodes {
			return nil, malformed("more than %d node frames", MaxStreamNodes)
		}
		d.nodes = append(d.nodes, id)
		f = nil
	case FrameTable:
		h := &TableHeader{Name: r.string("table name"), Kind: ChangeKind(r.uvarint("kind"))}
		nc := r.uvarint("column count")
		if nc > uint64(len(p)) {
			return nil, malformed("column count %d", nc)
		}
		for i := uint64(0); i < nc && r.err == nil; i++ {
			h.Columns = append(h.Columns, Column{Name: r.string("column name"), Class: TypeClass(r.string("column class"))})
		}
		nk := r.uvarint("key count")
		if nk == 0 || nk > nc {
			return nil, malformed("table %q: key of %d columns", h.Name, nk)
		}
		for i := uint64(0); i < nk && r.err == nil; i++ {
			h.Key = append(h.Key, r.string("key name"))
		}
		if h.Kind != KindLive && h.Kind != KindDead {
			return nil, malformed("table %q: unknown kind %d", h.Name, h.Kind)
		}
		d.hdr = h
		d.ncells = len(h.Columns) - len(h.Key)
		f.Table = h
	case FrameRow:
		if d.hdr == nil {
			return nil, malformed("row before any table header")
		}
		if err := d.decodeRows(r); err != nil {
			return nil, err
		}
		if len(r.b) != 0 {
			d.blk.n = 0 // none of its rows
			return nil, malformed("frame 0x%02x has %d trailing bytes", typ, len(r.b))
		}
		return d.blk.row(), nil
	case FrameCheckpoint:
		nc := r.uvarint("cursor count")
		if nc > uint64(len(p)) {
			return nil, malformed("cursor count %d", nc)
		}
		for i := uint64(0); i < nc && r.err == nil; i++ {
			f.Cursors = append(f.Cursors, Cursor{Table: r.string("cursor table"), Kind: ChangeKind(r.uvarint("cursor kind")), Seq: int64(r.uvarint("cursor seq"))})
		}
	case FrameEnd:
		f.Count = int64(r.uvarint("row count"))
		d.ended = true
	case FrameError:
		msg := r.string("error message")
		if r.err == nil {
			d.ended = true
			return nil, &StreamError{Message: msg}
		}
	default:
		return nil, malformed("unknown frame type 0x%02x", typ)
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, malformed("frame 0x%02x has %d trailing bytes", typ, len(r.b))
	}
	return f, nil
}
