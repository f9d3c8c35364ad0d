package rowsync

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Bundles: a node's changes on a file, for links that are a USB stick
// (rowsync export / import). A bundle is one more transport of Send and
// Receive: its change stream is exactly what Send writes, and Import
// applies it with Receive's batches. The format is PROTOCOL.md section 15.

// BundleFormat is the version of the bundle file format.
const BundleFormat = 1

// bundleMagic is the first line of every bundle.
const bundleMagic = "rowsync bundle\n"

// Limits of a bundle a reader accepts.
const (
	// MaxBundleHeader bounds the header line (the JSON document).
	MaxBundleHeader = 16 << 20
	// MaxBundleChunk bounds one chunk, compressed and decompressed.
	MaxBundleChunk = 16 << 20
	// bundleChunk is the stream bytes after which the writer ends a
	// chunk (at the end of the encoder's write that reaches it).
	bundleChunk = 1 << 20
)

var (
	// ErrNotBundle is returned by Import for a file that does not start
	// with a bundle's first line.
	ErrNotBundle = errors.New("not a rowsync bundle")
	// ErrBundleDamaged reports a bundle that ends early or whose bytes
	// do not check out.
	ErrBundleDamaged = errors.New("bundle is truncated or corrupt")
	// ErrOwnBundle is returned by Import for a bundle this node exported.
	ErrOwnBundle = errors.New("this bundle was exported by this node")
)

// BundleHeader is the second line of a bundle, a JSON document: who
// exported it, its schema, what its change stream covers, and what the
// exporter has received from each of its peers.
type BundleHeader struct {
	Format   int           `json:"format"`
	Protocol int           `json:"protocol"`
	Node     NodeInfo      `json:"node"`
	Created  time.Time     `json:"created"`
	Tables   []TableSchema `json:"tables"`
	// For is the peer the bundle was exported for (export --for): rows
	// whose state came from it unchanged are left out.
	For *NodeInfo `json:"for,omitempty"`
	// SinceSeq and SinceTime are export's --since.
	SinceSeq  int64      `json:"since_seq,omitempty"`
	SinceTime *time.Time `json:"since_time,omitempty"`
	// Cursors are the exporter's sequence numbers the stream starts after,
	// per table and kind (missing: 0); UpTo is where it ends.
	Cursors []Cursor `json:"cursors"`
	UpTo    int64    `json:"up_to"`
	// Acks are the exporter's cursors for each peer it received from:
	// how far it has applied that peer's changes.
	Acks []BundleAck `json:"acks"`
}

// BundleAck is what the exporter of a bundle has received from one peer.
type BundleAck struct {
	Node    NodeInfo `json:"node"`
	Cursors []Cursor `json:"cursors"`
}

// ExportOptions chooses what a bundle holds. The zero value exports every
// row. For and Since/SinceTime exclude each other.
type ExportOptions struct {
	// For is a known peer (its id, a unique prefix of its id, or its
	// name): the bundle holds what it has not acknowledged.
	For string
	// Since starts the bundle after this sequence number of this node
	// (the cursor status prints).
	Since int64
	// SinceTime, if not zero, keeps only rows whose newest version (a
	// write or a delete) is at or after it.
	SinceTime time.Time
}

// ExportResult reports an export.
type ExportResult struct {
	Header BundleHeader `json:"header"`
	Rows   int64        `json:"rows"`
}

// Export writes a bundle of this node's changes to w.
func (n *Node) Export(ctx context.Context, w io.Writer, opt ExportOptions) (*ExportResult, error) {
	if opt.For != "" && (opt.Since != 0 || !opt.SinceTime.IsZero()) {
		return nil, errors.New("export: --for and --since exclude each other")
	}
	if opt.Since != 0 && !opt.SinceTime.IsZero() {
		return nil, errors.New("export: --since takes a cursor or a time, not both")
	}
	if opt.Since < 0 {
		return nil, fmt.Errorf("export: --since %d: a cursor is not negative", opt.Since)
	}
	h := BundleHeader{Format: BundleFormat, Protocol: ProtocolVersion, Node: n.Info(), Created: n.Now().UTC(),
		Tables: n.Schema(), SinceSeq: opt.Since, Acks: []BundleAck{}}
	var to NodeInfo
	start := opt.Since
	tx, err := n.db.Begin(ctx, false)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	peers, err := tx.Peers()
	if err != nil {
		return nil, err
	}
	if opt.For != "" {
		p, err := findPeer(peers, opt.For)
		if err != nil {
			return nil, err
		}
		to = NodeInfo{ID: p.ID, Name: p.Name}
		h.For = &to
		start = p.AckedSeq
	}
	for _, p := range peers {
		cs, err := tx.Cursors(p.ID)
		if err != nil {
			return nil, err
		}
		if len(cs) > 0 {
			h.Acks = append(h.Acks, BundleAck{Node: NodeInfo{ID: p.ID, Name: p.Name}, Cursors: cs})
		}
	}
	tx.Rollback()
	var minHLC int64
	if !opt.SinceTime.IsZero() {
		t := opt.SinceTime.UTC()
		h.SinceTime = &t
		minHLC = HLCFromWall(t.UnixMilli())
		if minHLC <= 0 {
			minHLC = 1
		}
	}
	for _, t := range n.tables {
		for _, k := range []ChangeKind{KindLive, KindDead} {
			h.Cursors = append(h.Cursors, Cursor{Table: t.Name, Kind: k, Seq: start})
		}
	}
	cw := newChunkWriter(w)
	res, err := n.sendWith(ctx, cw, to, h.Cursors, sendOptions{minHLC: minHLC, begin: func(upTo int64) error {
		h.UpTo = upTo
		b, err := json.Marshal(&h)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s%s\n", bundleMagic, b)
		return err
	}})
	if cerr := cw.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return &ExportResult{Header: h, Rows: res.Rows}, nil
}

// findPeer finds a known peer by id, unique id prefix or name.
func findPeer(peers []PeerRecord, s string) (*PeerRecord, error) {
	var byName, byPrefix []*PeerRecord
	for i := range peers {
		p := &peers[i]
		if p.ID == s {
			return p, nil
		}
		if p.Name == s {
			byName = append(byName, p)
		}
		if strings.HasPrefix(p.ID, s) {
			byPrefix = append(byPrefix, p)
		}
	}
	for _, m := range [][]*PeerRecord{byName, byPrefix} {
		if len(m) == 1 {
			return m[0], nil
		}
		if len(m) > 1 {
			return nil, fmt.Errorf("export --for %q: several peers match: %s; give the id", s, peerList(m))
		}
	}
	if len(peers) == 0 {
		return nil, fmt.Errorf("export --for %q: this node knows no peers yet: sync with it or import a bundle of it first", s)
	}
	ps := make([]*PeerRecord, len(peers))
	for i := range peers {
		ps[i] = &peers[i]
	}
	return nil, fmt.Errorf("export --for %q: unknown peer; known peers: %s", s, peerList(ps))
}

func peerList(ps []*PeerRecord) string {
	var out []string
	for _, p := range ps {
		out = append(out, fmt.Sprintf("%s (id %s)", p.Name, shortID(p.ID)))
	}
	return strings.Join(out, ", ")
}

// ImportResult reports an import.
type ImportResult struct {
	Header BundleHeader `json:"header"`
	ReceiveResult
	// Skipped counts the rows already here (at or below this node's
	// cursors for the exporter), not applied again.
	Skipped int64 `json:"skipped"`
	// Applied counts the rows of the batches committed.
	Applied int64 `json:"applied"`
	// Acked is the exporter's acknowledgement of this node's changes
	// recorded by the import (its AckedSeq), or -1 if the bundle carries
	// none.
	Acked int64 `json:"acked_seq"`
}

// BundleError is a bundle that turned out truncated or corrupt during an
// import: the batches before the damage are applied, the rest is not.
type BundleError struct {
	Applied int64 // rows of the batches applied
	Err     error
}

func (e *BundleError) Error() string {
	return fmt.Sprintf("%s: %d rows applied (the complete batches before the damage), the rest not: %v", ErrBundleDamaged, e.Applied, e.Err)
}

// Unwrap returns ErrBundleDamaged and the cause.
func (e *BundleError) Unwrap() []error { return []error{ErrBundleDamaged, e.Err} }

// ReadBundleHeader reads a bundle's first line and header, leaving r at
// the start of its chunks.
func ReadBundleHeader(r *bufio.Reader) (*BundleHeader, error) {
	m := make([]byte, len(bundleMagic))
	if k, err := io.ReadFull(r, m); err != nil || string(m) != bundleMagic {
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			return nil, err
		}
		if k > 0 && bytes.HasPrefix([]byte(bundleMagic), m[:k]) {
			return nil, fmt.Errorf("%w: the first line ends early", ErrBundleDamaged)
		}
		return nil, ErrNotBundle
	}
	var line []byte
	for {
		part, err := r.ReadSlice('\n')
		line = append(line, part...)
		if len(line) > MaxBundleHeader {
			return nil, fmt.Errorf("%w: header longer than %d bytes", ErrBundleDamaged, MaxBundleHeader)
		}
		if err == nil {
			break
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("%w: the header ends early", ErrBundleDamaged)
		}
		if err != bufio.ErrBufferFull {
			return nil, err
		}
	}
	var h BundleHeader
	if err := json.Unmarshal(line, &h); err != nil {
		return nil, fmt.Errorf("%w: bad header: %v", ErrBundleDamaged, err)
	}
	if h.Format != BundleFormat {
		return nil, fmt.Errorf("unsupported bundle format %d (this build reads format %d)", h.Format, BundleFormat)
	}
	if h.Protocol != ProtocolVersion {
		return nil, fmt.Errorf("%w: bundle written in protocol %d, this node speaks %d", ErrProtocol, h.Protocol, ProtocolVersion)
	}
	if h.Node.ID == "" {
		return nil, fmt.Errorf("%w: header names no node", ErrBundleDamaged)
	}
	for _, c := range h.Cursors {
		if c.Seq < 0 || (c.Kind != KindLive && c.Kind != KindDead) {
			return nil, fmt.Errorf("%w: bad cursor for table %q in the header", ErrBundleDamaged, c.Table)
		}
	}
	return &h, nil
}

// Import applies a bundle: its schema is compared first, then its change
// stream is applied by Receive, batch by batch. Rows this node already
// has from the exporter (per its cursors) are skipped, so importing a
// bundle again changes nothing. The exporter's acknowledgement of this
// node's changes is recorded (PeerRecord.AckedSeq), for export --for.
func (n *Node) Import(ctx context.Context, r io.Reader) (*ImportResult, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	h, err := ReadBundleHeader(br)
	if err != nil {
		return nil, err
	}
	if h.Node.ID == n.id {
		return nil, fmt.Errorf("%w (%s); import it on another node", ErrOwnBundle, n.name)
	}
	if err := CompareSchemas(n.Schema(), h.Tables, "node "+h.Node.Name+" (the bundle's)"); err != nil {
		return nil, err
	}
	res := &ImportResult{Header: *h, Acked: -1}
	tx, err := n.db.Begin(ctx, false)
	if err != nil {
		return nil, err
	}
	have, err := tx.Cursors(h.Node.ID)
	tx.Rollback()
	if err != nil {
		return nil, err
	}
	opt := &recvOptions{have: map[Cursor]int64{}, store: map[Cursor]bool{}}
	for _, c := range have {
		opt.have[Cursor{Table: c.Table, Kind: c.Kind}] = c.Seq
	}
	start := map[Cursor]int64{}
	for _, c := range h.Cursors {
		start[Cursor{Table: c.Table, Kind: c.Kind}] = c.Seq
	}
	// The stream's checkpoints say "everything up to here": true for this
	// node only if the bundle left nothing out that it has not got.
	whole := h.SinceTime == nil && (h.For == nil || h.For.ID == n.id)
	for _, t := range n.tables {
		for _, k := range []Cursor{{Table: t.Name, Kind: KindLive}, {Table: t.Name, Kind: KindDead}} {
			opt.store[k] = whole && opt.have[k] >= start[k]
		}
	}
	cr := newChunkReader(br)
	defer cr.Close()
	from := h.Node
	err = n.receive(ctx, NewDecoder(cr), from, &res.ReceiveResult, opt)
	res.Skipped, res.Applied = opt.skipped, opt.applied
	if err != nil {
		if cr.err != nil || errors.Is(err, ErrMalformed) || errors.Is(err, ErrUnknownTable) || errors.Is(err, ErrProtocol) || errors.As(err, new(*StreamError)) || errors.As(err, new(*SchemaError)) {
			return res, &BundleError{Applied: opt.applied, Err: err}
		}
		return res, err
	}
	if res.Held, err = n.RetryHeld(ctx); err != nil {
		return res, err
	}
	acked := int64(-1)
	for _, a := range h.Acks {
		if a.Node.ID != n.id {
			continue
		}
		got := map[Cursor]int64{}
		for _, c := range a.Cursors {
			got[Cursor{Table: c.Table, Kind: c.Kind}] = c.Seq
		}
		acked = -1
		for _, t := range n.tables {
			for _, k := range []ChangeKind{KindLive, KindDead} {
				if s := got[Cursor{Table: t.Name, Kind: k}]; acked < 0 || s < acked {
					acked = s
				}
			}
		}
	}
	err = n.notePeer(ctx, from, func(p *PeerRecord) {
		p.RowsIn += res.Rows - res.Skipped
		p.SyncCount++
		p.LastSync = n.Now().UTC()
		if acked > p.AckedSeq {
			p.AckedSeq = acked
		}
		if acked >= 0 {
			res.Acked = p.AckedSeq
		}
	})
	return res, err
}

// chunkWriter writes a change stream as bundle chunks: each a uvarint
// length and one zstd frame (with its checksum) of the stream's bytes. A
// chunk ends at the first write of the stream encoder that brings it to
// bundleChunk bytes: the encoder writes at the end of every batch (and
// when its 64 KiB buffer is full), so chunks mostly end with a batch.
// Smaller chunks would lose less of a bundle cut short, but compress
// worse: independent frames of a batch each (about 20 KiB) made bundles
// half as large again as one zstd stream; frames of 1 MiB are within a
// few percent of it.
type chunkWriter struct {
	w   io.Writer
	enc *zstd.Encoder
	buf []byte
	out []byte
	err error
}

func newChunkWriter(w io.Writer) *chunkWriter {
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(true))
	return &chunkWriter{w: w, enc: enc}
}

func (c *chunkWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	c.buf = append(c.buf, p...)
	if len(c.buf) >= bundleChunk {
		if err := c.flush(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// flush writes what is buffered as chunks of at most MaxBundleChunk/2
// bytes of stream.
func (c *chunkWriter) flush() error {
	for p := c.buf; len(p) > 0; {
		k := min(len(p), MaxBundleChunk/2)
		if err := c.emit(p[:k]); err != nil {
			return err
		}
		p = p[k:]
	}
	c.buf = c.buf[:0]
	return nil
}

func (c *chunkWriter) emit(p []byte) error {
	c.out = c.enc.EncodeAll(p, c.out[:0])
	hdr := binary.AppendUvarint(nil, uint64(len(c.out)))
	if _, err := c.w.Write(hdr); err != nil {
		c.err = err
		return err
	}
	if _, err := c.w.Write(c.out); err != nil {
		c.err = err
		return err
	}
	return nil
}

// Close writes the last chunk and releases the compressor.
func (c *chunkWriter) Close() error {
	defer c.enc.Close()
	if c.err != nil {
		return c.err
	}
	return c.flush()
}

// chunkReader reads the change stream out of bundle chunks. A chunk's
// bytes are handed out only after its checksum is verified, so a damaged
// chunk stops the stream before any of it is applied.
type chunkReader struct {
	r      *bufio.Reader
	dec    *zstd.Decoder
	comp   []byte
	buf    []byte
	off    int
	chunks int
	err    error // the damage found, if any
}

func newChunkReader(r *bufio.Reader) *chunkReader {
	dec, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(MaxBundleChunk), zstd.WithDecoderMaxWindow(MaxBundleChunk))
	return &chunkReader{r: r, dec: dec}
}

func (c *chunkReader) Read(p []byte) (int, error) {
	for c.off == len(c.buf) {
		if c.err != nil {
			return 0, c.err
		}
		if err := c.next(); err != nil {
			if err != io.EOF {
				c.err = err
			}
			return 0, err
		}
	}
	k := copy(p, c.buf[c.off:])
	c.off += k
	return k, nil
}

func (c *chunkReader) next() error {
	c.chunks++
	n, err := binary.ReadUvarint(c.r)
	if err == io.EOF {
		return io.EOF // the end, between two chunks
	}
	if err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: chunk %d: the file ends in its length", ErrBundleDamaged, c.chunks)
	}
	if err != nil {
		if strings.Contains(err.Error(), "overflow") {
			return fmt.Errorf("%w: chunk %d: bad length", ErrBundleDamaged, c.chunks)
		}
		return err
	}
	if n == 0 || n > MaxBundleChunk {
		return fmt.Errorf("%w: chunk %d: length %d", ErrBundleDamaged, c.chunks, n)
	}
	c.comp = slices.Grow(c.comp[:0], int(n))[:n]
	if _, err := io.ReadFull(c.r, c.comp); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return fmt.Errorf("%w: chunk %d: the file ends inside it", ErrBundleDamaged, c.chunks)
		}
		return err
	}
	out, err := c.dec.DecodeAll(c.comp, c.buf[:0])
	if err != nil {
		return fmt.Errorf("%w: chunk %d: %v", ErrBundleDamaged, c.chunks, err)
	}
	if len(out) == 0 {
		return fmt.Errorf("%w: chunk %d is empty", ErrBundleDamaged, c.chunks)
	}
	c.buf, c.off = out, 0
	return nil
}

// Close releases the decoder.
func (c *chunkReader) Close() { c.dec.Close() }
