package rowsync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// NodeInfo identifies a node.
type NodeInfo struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// HelloRequest opens a sync session: who calls, and what it tracks.
type HelloRequest struct {
	Protocol int           `json:"protocol"`
	Node     NodeInfo      `json:"node"`
	Tables   []TableSchema `json:"tables"`
	// Verify is set when the session only compares data (rowsync verify):
	// it does not count as a sync.
	Verify bool `json:"verify,omitempty"`
}

// HelloResponse answers a HelloRequest: who answers, what it tracks, and
// the cursors it keeps for the caller (how far it has received the caller's
// changes, so a push resumes where the last one stopped).
type HelloResponse struct {
	Protocol int           `json:"protocol"`
	Node     NodeInfo      `json:"node"`
	Tables   []TableSchema `json:"tables"`
	Cursors  []Cursor      `json:"cursors"`
}

// PullRequest asks a peer for its changes since the caller's cursors.
type PullRequest struct {
	Node    NodeInfo `json:"node"`
	Cursors []Cursor `json:"cursors"`
}

// ReceiveResult is what applying a change stream did.
type ReceiveResult struct {
	Rows         int64 `json:"rows"`          // rows received
	Changed      int64 `json:"changed"`       // rows whose state changed here
	Batches      int64 `json:"batches"`       // transactions committed
	NewConflicts int64 `json:"new_conflicts"` // conflicts recorded by this session
	Held         int64 `json:"held"`          // changes held by a constraint at the end
}

// Peer is the other side of a sync session: a node over HTTP, or a local
// *Node. Every transport implements these calls.
type Peer interface {
	// Hello checks compatibility and returns the peer's identity, schema
	// and its cursors for the caller.
	Hello(ctx context.Context, req *HelloRequest) (*HelloResponse, error)
	// Push applies the caller's change stream on the peer.
	Push(ctx context.Context, from NodeInfo, r io.Reader) (*ReceiveResult, error)
	// Pull returns the peer's changes since the caller's cursors.
	Pull(ctx context.Context, req *PullRequest) (io.ReadCloser, error)
	// Digest returns a digest of the peer's tracked rows, for verify.
	Digest(ctx context.Context) ([]TableDigest, error)
}

var _ Peer = (*Node)(nil)

// Hello implements Peer for a local node.
func (n *Node) Hello(ctx context.Context, req *HelloRequest) (*HelloResponse, error) {
	if req.Protocol != ProtocolVersion {
		return nil, fmt.Errorf("%w: peer speaks protocol %d, this node %d", ErrProtocol, req.Protocol, ProtocolVersion)
	}
	if req.Node.ID == "" {
		return nil, fmt.Errorf("%w: hello without a node id", ErrProtocol)
	}
	if req.Node.ID == n.id {
		return nil, fmt.Errorf("%w: a node cannot sync with itself (both sides are node %s)", ErrProtocol, n.id)
	}
	if err := CompareSchemas(n.Schema(), req.Tables, "node "+req.Node.Name); err != nil {
		return nil, err
	}
	tx, err := n.db.Begin(ctx, false)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	cs, err := tx.Cursors(req.Node.ID)
	tx.Rollback()
	if err != nil {
		return nil, err
	}
	if !req.Verify {
		if err := n.notePeer(ctx, req.Node, func(p *PeerRecord) {
			p.SyncCount++
			p.LastSync = n.Now().UTC()
		}); err != nil {
			return nil, err
		}
	}
	return &HelloResponse{Protocol: ProtocolVersion, Node: n.Info(), Tables: WithoutForeignKeys(n.Schema()), Cursors: cs}, nil
}

// Push implements Peer for a local node.
func (n *Node) Push(ctx context.Context, from NodeInfo, r io.Reader) (*ReceiveResult, error) {
	return n.Receive(ctx, r, from)
}

// Pull implements Peer for a local node.
func (n *Node) Pull(ctx context.Context, req *PullRequest) (io.ReadCloser, error) {
	pr, pw := io.Pipe()
	go func() {
		_, err := n.Send(ctx, pw, req.Node, req.Cursors)
		pw.CloseWithError(err)
	}()
	return pr, nil
}

// SendResult is what Send wrote.
type SendResult struct {
	Rows int64
	UpTo int64 // the sender's sequence number the stream covers
}

// Send writes this node's changes that the receiver to has not seen, per
// its cursors, as a change stream on w: live rows parents first, then
// deleted rows children first, in batches that end with a checkpoint.
// Rows whose state came unchanged from to are left out.
func (n *Node) Send(ctx context.Context, w io.Writer, to NodeInfo, cursors []Cursor) (*SendResult, error) {
	return n.sendWith(ctx, w, to, cursors, sendOptions{})
}

// sendOptions are the variations of send for a transport other than a
// sync session (bundles, bundle.go).
type sendOptions struct {
	// minHLC, if not zero, leaves out rows whose newest version (or
	// delete) is older: export --since TIME.
	minHLC int64
	// begin, if set, is called with the stream's up_to in the snapshot,
	// before the first byte of the stream is written.
	begin func(upTo int64) error
}

func (n *Node) sendWith(ctx context.Context, w io.Writer, to NodeInfo, cursors []Cursor, opt sendOptions) (*SendResult, error) {
	enc := NewEncoder(w)
	res, err := n.send(ctx, enc, to, cursors, opt)
	if err != nil {
		// Tell the receiver, if the link still works.
		if enc.Error(err.Error()) == nil {
			enc.Flush()
		}
		return nil, err
	}
	if to.ID == "" {
		return res, nil // a bundle for no node in particular
	}
	if err := n.notePeer(ctx, to, func(p *PeerRecord) { p.RowsOut += res.Rows }); err != nil {
		return nil, err
	}
	return res, nil
}

func (n *Node) send(ctx context.Context, enc *Encoder, to NodeInfo, cursors []Cursor, opt sendOptions) (*SendResult, error) {
	if err := n.Fold(ctx); err != nil {
		return nil, fmt.Errorf("fold local writes: %w", err)
	}
	tx, err := n.db.Begin(ctx, false)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	st, err := tx.LoadState()
	if err != nil {
		return nil, err
	}
	d, err := newTxDict(tx)
	if err != nil {
		return nil, err
	}
	exclude := d.idx[to.ID] // 0 if the receiver never sent us anything
	upTo := st.Seq
	cur := map[Cursor]int64{}
	for _, c := range cursors {
		cur[Cursor{Table: c.Table, Kind: c.Kind}] = c.Seq
	}
	// Rows written since the last fold (in this snapshot) carry values
	// newer than their versions: leave them for the next session, where
	// they will have a newer sequence number. An UPDATE that changed no
	// value is logged too (triggers fire for every row an UPDATE matched),
	// but gives the row no new sequence number: it does not count, or the
	// row's last change would never go out (TestNoopUpdateDoesNotHoldBackSend).
	dirty := map[*Table]map[string]bool{}
	for _, t := range n.tables {
		var after int64
		for {
			es, err := tx.ReadLog(t, after, foldChunk)
			if err != nil {
				return nil, err
			}
			if len(es) == 0 {
				break
			}
			if dirty[t] == nil {
				dirty[t] = map[string]bool{}
			}
			for i := range es {
				if es[i].NoChange() {
					continue
				}
				k := make([]Value, len(t.Key))
				for j, c := range t.Key {
					k[j] = es[i].Row[c]
				}
				if es[i].Op == OpMaybeDelete {
					// Likewise a maybe-delete of a row that still exists
					// (INSERT OR IGNORE, or an UPSERT, through a UNIQUE
					// column): fold discards it unless an insert of the
					// key follows, and that insert is logged itself
					// (TestMaybeDeleteDoesNotHoldBackSend).
					_, exists, err := tx.GetRow(t, k)
					if err != nil {
						return nil, err
					}
					if exists {
						continue
					}
				}
				dirty[t][keyString(k)] = true
			}
			after = es[len(es)-1].ID
		}
	}
	if opt.begin != nil {
		if err := opt.begin(upTo); err != nil {
			return nil, err
		}
	}
	if err := enc.Begin(BeginFrame{Protocol: ProtocolVersion, NodeID: n.id, Name: n.name, UpTo: upTo}); err != nil {
		return nil, err
	}
	type segment struct {
		t    *Table
		kind ChangeKind
	}
	var segs []segment
	for _, t := range n.tables {
		segs = append(segs, segment{t, KindLive})
	}
	for _, t := range slices.Backward(n.tables) {
		segs = append(segs, segment{t, KindDead})
	}
	done := map[Cursor]bool{}
	var rows int64
	inBatch := 0
	checkpoint := func(extra *Cursor) error {
		cs := make([]Cursor, 0, len(done)+1)
		for _, c := range sortedCursors(done) {
			c.Seq = upTo
			cs = append(cs, c)
		}
		if extra != nil {
			cs = append(cs, *extra)
		}
		if err := enc.Checkpoint(cs); err != nil {
			return err
		}
		inBatch = 0
		return enc.Flush()
	}
	for _, sg := range segs {
		after := cur[Cursor{Table: sg.t.Name, Kind: sg.kind}]
		header := false
		for after < upTo {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			cs, err := tx.Changes(sg.t, sg.kind, after, upTo, exclude, n.BatchRows-inBatch)
			if err != nil {
				return nil, fmt.Errorf("read changes of %q: %w", sg.t.Name, err)
			}
			if len(cs) == 0 {
				break
			}
			for i := range cs {
				c := &cs[i]
				after = c.Seq
				if dirty[sg.t][keyString(c.Key)] {
					continue
				}
				var full []Value
				if !c.Deleted {
					full = c.Row
				}
				r, err := loadRow(tx, sg.t, &c.Shadow, full, d)
				if err != nil {
					return nil, err
				}
				if opt.minHLC != 0 && maxVersion(r.Newest(), r.Tomb).HLC < opt.minHLC {
					continue
				}
				if !header {
					if err := enc.Table(sg.t, sg.kind); err != nil {
						return nil, err
					}
					header = true
				}
				if err := enc.Row(c.Seq, r); err != nil {
					return nil, err
				}
				rows++
				inBatch++
			}
			if inBatch >= n.BatchRows {
				if err := checkpoint(&Cursor{Table: sg.t.Name, Kind: sg.kind, Seq: after}); err != nil {
					return nil, err
				}
			}
		}
		done[Cursor{Table: sg.t.Name, Kind: sg.kind}] = true
	}
	if err := checkpoint(nil); err != nil {
		return nil, err
	}
	if err := enc.End(rows); err != nil {
		return nil, err
	}
	if err := enc.Flush(); err != nil {
		return nil, err
	}
	return &SendResult{Rows: rows, UpTo: upTo}, nil
}

// notePeer updates what this node keeps about a peer.
func (n *Node) notePeer(ctx context.Context, p NodeInfo, f func(*PeerRecord)) error {
	tx, err := n.db.Begin(ctx, true)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	rec, err := tx.GetPeer(p.ID)
	if err != nil {
		return err
	}
	if rec == nil {
		rec = &PeerRecord{ID: p.ID}
	}
	if p.Name != "" {
		rec.Name = p.Name
	}
	f(rec)
	if err := tx.PutPeer(rec); err != nil {
		return err
	}
	return tx.Commit()
}

// MaxBatchRows bounds the rows a receiver applies in one transaction: a
// sender must checkpoint at least this often.
const MaxBatchRows = 100_000

// batch is one transaction applying received rows.
type batch struct {
	n       *Node
	tx      Tx
	st      State
	clock   Clock
	d       *txDict
	from    string
	fromIdx int64
	applied map[*Table][][]Value
	failed  []failedRow
	res     *ReceiveResult
	rows    int // rows applied in this batch
	// orig holds the values of rows resolveSwaps moved out of the way,
	// by table and key.
	orig map[string][]Value
	// The chunk of incoming rows of one table not yet applied (see add),
	// and the bookkeeping of rows written but not yet stored.
	pendT    *Table
	pending  []*Row
	pendKeys map[string]bool
	shadows  []*Shadow
	// recv is set when the stream is a bundle (see recvOptions).
	recv *recvOptions
}

// recvOptions are the variations of receive for a stream that does not
// answer this node's own cursors: a bundle (bundle.go), which may start
// above them, leave rows out, or be imported twice.
type recvOptions struct {
	// have are this node's cursors for the sender (keys with Seq zero)
	// when the stream started. Rows at or below them are already here and
	// are skipped, and a checkpoint's cursor is stored only above them.
	have map[Cursor]int64
	// store are the tables and kinds whose cursors a checkpoint may
	// advance: those where the stream starts at or below have and leaves
	// no row out.
	store map[Cursor]bool
	// skipped counts the rows skipped; applied the rows of committed
	// batches (skipped or not).
	skipped, applied int64
}

type failedRow struct {
	t    *Table
	in   *Row
	err  error
	from string // the peer the row came from
}

func (n *Node) beginBatch(ctx context.Context, from string, res *ReceiveResult) (*batch, error) {
	tx, err := n.db.Begin(ctx, true)
	if err != nil {
		return nil, err
	}
	b := &batch{n: n, tx: tx, from: from, applied: map[*Table][][]Value{}, res: res}
	if err := b.init(); err != nil {
		tx.Rollback()
		return nil, err
	}
	return b, nil
}

func (b *batch) init() error {
	var err error
	if b.st, err = b.tx.LoadState(); err != nil {
		return err
	}
	if b.d, err = newTxDict(b.tx); err != nil {
		return err
	}
	b.clock = Clock{Last: b.st.Clock}
	// Local writes made before this batch are stamped first, so that
	// everything written after it is ordered after what it brings.
	if _, err := b.n.fold(b.tx, &b.st, &b.clock, b.d, nil); err != nil {
		return err
	}
	if b.from != "" {
		if b.fromIdx, err = b.d.index(b.from); err != nil {
			return err
		}
	}
	return b.tx.BeginApply()
}

// apply merges one incoming row. A constraint failure is kept in b.failed.
func (b *batch) apply(t *Table, in *Row) error {
	err := b.applyRow(t, in)
	if _, ok := errorsAsConstraint(err); ok {
		b.failed = append(b.failed, failedRow{t, in, err, b.from})
		return nil
	}
	return err
}

func (b *batch) applyRow(t *Table, in *Row) error {
	s, err := b.tx.GetShadow(t, in.Key)
	if err != nil {
		return err
	}
	w, err := b.prepare(t, in, s)
	if err != nil || w == nil {
		return err
	}
	if err := w.write(b.tx); err != nil {
		return err
	}
	return b.commitRow(w, false)
}

// rowWrite is a merged row ready to be written: the write to the user's
// table it takes, and its new bookkeeping.
type rowWrite struct {
	t         *Table
	in        *Row
	op        LogOp // OpInsert, OpUpdate, OpDelete, or 0 when only the versions change
	full      []Value
	cols      []int
	vals      []Value
	shadow    *Shadow
	conflicts []Conflict
}

func (w *rowWrite) write(tx Tx) error {
	switch w.op {
	case OpInsert:
		return tx.InsertRow(w.t, w.full)
	case OpUpdate:
		return tx.UpdateRow(w.t, w.in.Key, w.cols, w.vals)
	case OpDelete:
		return tx.DeleteRow(w.t, w.in.Key)
	}
	return nil
}

// prepare merges an incoming row with the local one (whose bookkeeping is
// s, or nil), and returns what to write, or nil if the incoming row lost
// everywhere (its conflicts are recorded).
func (b *batch) prepare(t *Table, in *Row, s *Shadow) (*rowWrite, error) {
	for i := range in.Cells {
		b.clock.Observe(in.Cells[i].V.HLC)
	}
	b.clock.Observe(in.Live.HLC)
	b.clock.Observe(in.Tomb.HLC)
	var local *Row
	gone := false // alive by its bookkeeping, but not in the table
	if s != nil {
		var full []Value
		if !s.Deleted {
			row, ok, err := b.tx.GetRow(t, s.Key)
			if err != nil {
				return nil, err
			}
			full, gone = row, !ok
		}
		var err error
		if local, err = loadRow(b.tx, t, s, full, b.d); err != nil {
			return nil, err
		}
		if vals, ok := b.orig[t.Name+"\x00"+keyString(in.Key)]; ok {
			// Placeholders of resolveSwaps: merge against the real values.
			for i := range local.Cells {
				local.Cells[i].Value = vals[i]
			}
		}
	}
	m := merge(t, local, in)
	if !m.changed {
		// The incoming row lost everywhere: what it lost is still a
		// conflict this node knows of.
		return nil, b.addConflicts(m.conflicts)
	}
	out := m.out
	w := &rowWrite{t: t, in: in, conflicts: m.conflicts}
	wasAlive := local != nil && local.Alive()
	nowAlive := out.Alive()
	switch {
	case wasAlive && nowAlive:
		for i := range out.Cells {
			if !out.Cells[i].Value.Equal(local.Cells[i].Value) {
				w.cols = append(w.cols, t.Cols[i])
				w.vals = append(w.vals, out.Cells[i].Value)
			}
		}
		if len(w.cols) > 0 {
			w.op = OpUpdate
		}
		if gone && w.op == OpUpdate {
			// Deleted in this transaction by a side effect of another
			// row's write (an ON DELETE CASCADE) that no fold has stamped
			// yet: an update would change nothing, and EndApply would
			// take the delete for this write's echo. Held, the row is
			// merged again after the next fold, against the delete
			// (TestCascadeBeforeRetriedUpdate).
			return nil, &ConstraintError{Err: fmt.Errorf("row %s of %q was deleted since the fold (a cascade of this batch); applied again after the next fold", FormatKey(in.Key), t.Name)}
		}
	case nowAlive:
		w.op, w.full = OpInsert, t.JoinRow(in.Key, out.Values())
	case wasAlive:
		w.op = OpDelete
	}
	meta, err := encodeMeta(out, b.d)
	if err != nil {
		return nil, err
	}
	w.shadow = &Shadow{Key: in.Key, Deleted: !nowAlive, Meta: meta}
	if sameVersions(out, in) {
		w.shadow.Src = b.fromIdx
	}
	if !nowAlive {
		w.shadow.Dead = EncodeValues(out.Values())
	}
	return w, nil
}

// commitRow records a written row: its bookkeeping (kept for one bulk
// write at the end of the chunk when bulk is set), the key for EndApply,
// its conflicts.
func (b *batch) commitRow(w *rowWrite, bulk bool) error {
	b.st.Seq++
	w.shadow.Seq = b.st.Seq
	if bulk {
		b.shadows = append(b.shadows, w.shadow)
	} else if err := b.tx.PutShadow(w.t, w.shadow); err != nil {
		return err
	}
	if w.op != 0 {
		// Only rows written to the table can have echoes; a row whose
		// versions alone changed must not be named, or a cascade that hits
		// it in this batch would be taken for an echo.
		b.applied[w.t] = append(b.applied[w.t], w.in.Key)
	}
	b.res.Changed++
	return b.addConflicts(w.conflicts)
}

// add queues an incoming row of the stream; rows of one table are merged
// and written a chunk at a time (see flush).
func (b *batch) add(t *Table, in *Row) error {
	k := keyString(in.Key)
	if b.pendT != t || len(b.pending) >= chunkRows(t) || b.pendKeys[k] {
		if err := b.flush(); err != nil {
			return err
		}
	}
	if b.pendKeys == nil {
		b.pendKeys = map[string]bool{}
	}
	b.pendT = t
	b.pending = append(b.pending, in)
	b.pendKeys[k] = true
	return nil
}

// chunkRows is how many rows of t are applied together: up to 256, fewer
// for wide tables so that one statement's parameters stay within what
// every engine takes.
func chunkRows(t *Table) int {
	n := 30000 / (len(t.Columns) + 6)
	return max(1, min(256, n))
}

// flush merges and writes the queued rows. With a BulkTx it reads their
// bookkeeping in one query, inserts the new rows in one statement (row by
// row again if a constraint refuses it, to find which) and writes the
// bookkeeping in one statement.
func (b *batch) flush() error {
	rows, t := b.pending, b.pendT
	b.pending = nil
	clear(b.pendKeys)
	if len(rows) == 0 {
		return nil
	}
	bulk, ok := b.tx.(BulkTx)
	if !ok || len(rows) == 1 {
		for _, in := range rows {
			if err := b.apply(t, in); err != nil {
				return fmt.Errorf("apply %q key %s: %w", t.Name, FormatKey(in.Key), err)
			}
		}
		return nil
	}
	keys := make([][]Value, len(rows))
	for i, in := range rows {
		keys[i] = in.Key
	}
	shadows, err := bulk.GetShadows(t, keys)
	if err != nil {
		return err
	}
	var inserts []*rowWrite
	for i, in := range rows {
		w, err := b.prepare(t, in, shadows[i])
		if _, refused := errorsAsConstraint(err); refused {
			b.failed = append(b.failed, failedRow{t, in, err, b.from})
			continue
		}
		if err != nil {
			return fmt.Errorf("apply %q key %s: %w", t.Name, FormatKey(in.Key), err)
		}
		if w == nil {
			continue
		}
		if w.op == OpInsert {
			inserts = append(inserts, w)
			continue
		}
		if err := b.writeOne(w); err != nil {
			return err
		}
	}
	if len(inserts) > 0 {
		full := make([][]Value, len(inserts))
		for i, w := range inserts {
			full[i] = w.full
		}
		err := bulk.InsertRows(t, full)
		if _, refused := errorsAsConstraint(err); refused {
			// One of them is refused: write them one by one to hold
			// just that one.
			for _, w := range inserts {
				if err := b.writeOne(w); err != nil {
					return err
				}
			}
		} else if err != nil {
			return fmt.Errorf("apply %d rows of %q: %w", len(inserts), t.Name, err)
		} else {
			for _, w := range inserts {
				if err := b.commitRow(w, true); err != nil {
					return err
				}
			}
		}
	}
	ss := b.shadows
	b.shadows = nil
	return putShadows(b.tx, t, ss)
}

// writeOne writes one merged row of a chunk, keeping a row refused by a
// constraint in b.failed.
func (b *batch) writeOne(w *rowWrite) error {
	if err := w.write(b.tx); err != nil {
		if _, ok := errorsAsConstraint(err); ok {
			b.failed = append(b.failed, failedRow{w.t, w.in, err, b.from})
			return nil
		}
		return fmt.Errorf("apply %q key %s: %w", w.t.Name, FormatKey(w.in.Key), err)
	}
	return b.commitRow(w, true)
}

// addConflicts records the conflicts of a merge.
func (b *batch) addConflicts(cs []Conflict) error {
	now := b.n.Now().UTC()
	for i := range cs {
		c := &cs[i]
		c.At, c.Peer = now, b.from
		isNew, err := b.tx.AddConflict(c)
		if err != nil {
			return err
		}
		if isNew {
			b.res.NewConflicts++
		}
	}
	return nil
}

// finish retries rows that failed on a constraint (a later row of the
// batch may have made room), holds the rest, stores the cursors and
// commits.
func (b *batch) finish(cursors []Cursor) error {
	defer b.tx.Rollback()
	if err := b.flush(); err != nil {
		return err
	}
	if err := b.retryFailed(); err != nil {
		return err
	}
	if err := b.resolveSwaps(); err != nil {
		return err
	}
	for _, f := range b.failed {
		if err := b.hold(f); err != nil {
			return err
		}
	}
	if err := b.tx.EndApply(b.applied); err != nil {
		return err
	}
	// The side effects of the batch's writes on other rows (a foreign-key
	// cascade, an application's trigger) are local writes: stamped now, in
	// the batch's transaction, and a row they removed is a conflict, since
	// the change that set them off did not name it.
	if _, err := b.n.fold(b.tx, &b.st, &b.clock, b.d, b.removed); err != nil {
		return err
	}
	for _, c := range cursors {
		if _, ok := b.n.byName[c.Table]; !ok {
			return fmt.Errorf("%w: checkpoint names table %q, which is not tracked here", ErrUnknownTable, c.Table)
		}
		if k := (Cursor{Table: c.Table, Kind: c.Kind}); b.recv != nil && (!b.recv.store[k] || c.Seq <= b.recv.have[k]) {
			continue
		}
		if err := b.tx.SetCursor(b.from, c); err != nil {
			return err
		}
	}
	b.st.Clock = b.clock.Last
	if err := b.tx.SaveState(b.st); err != nil {
		return err
	}
	if err := b.tx.Commit(); err != nil {
		return err
	}
	b.res.Batches++
	return nil
}

// removed records the values of a row that a side effect of the batch's
// writes deleted (a cascade of a received delete, say): the peer's change
// did not name the row, so whatever it held, inserted or edited here or
// elsewhere without the deleting node knowing, would otherwise be gone
// with no trace. Each value is a delete-wins conflict.
func (b *batch) removed(t *Table, before *Row, dead []Value, tomb Version) error {
	var cs []Conflict
	for i, c := range before.Cells {
		if c.V.IsZero() {
			continue
		}
		cs = append(cs, Conflict{Table: t.Name, Key: before.Key, Column: t.Columns[t.Cols[i]].Name, Kind: ConflictDeleteWins,
			WinnerV: tomb, Loser: dead[i], LoserV: c.V,
			Detail: "row removed by a foreign-key action or trigger that a received change set off"})
	}
	if len(cs) == 0 {
		// A row of key columns only: its existence is what was lost.
		cs = append(cs, Conflict{Table: t.Name, Key: before.Key, Kind: ConflictDeleteWins, WinnerV: tomb, LoserV: before.Newest(),
			Detail: "row removed by a foreign-key action or trigger that a received change set off"})
	}
	return b.addConflicts(cs)
}

func (b *batch) hold(f failedRow) error {
	h := &Held{Table: f.t.Name, Key: f.in.Key, Peer: f.from, Change: encodeHeldRow(f.in), Error: f.err.Error(), At: b.n.Now().UTC()}
	if err := b.tx.PutHeld(h); err != nil {
		return err
	}
	c := &Conflict{At: h.At, Table: f.t.Name, Key: f.in.Key, Kind: ConflictConstraint, LoserV: f.in.Newest(), Peer: f.from,
		Detail: "held until it can be applied: " + f.err.Error()}
	isNew, err := b.tx.AddConflict(c)
	if isNew {
		b.res.NewConflicts++
	}
	return err
}

// Receive applies a change stream from the peer from: each batch in one
// transaction with the cursors of its checkpoint, so that a cut stream
// leaves the database as of its last checkpoint and the next session
// resumes from there. Changes held by a constraint are retried at the end.
func (n *Node) Receive(ctx context.Context, r io.Reader, from NodeInfo) (*ReceiveResult, error) {
	res := &ReceiveResult{}
	err := n.receive(ctx, NewDecoder(r), from, res, nil)
	if err != nil {
		return res, err
	}
	held, err := n.RetryHeld(ctx)
	res.Held = held
	if err != nil {
		return res, err
	}
	err = n.notePeer(ctx, from, func(p *PeerRecord) {
		p.RowsIn += res.Rows
		p.LastSync = n.Now().UTC()
	})
	return res, err
}

// localLayout maps a stream's table header onto a local table.
type localLayout struct {
	t     *Table
	key   []int // header key position -> local key position
	cells []int // header cell position -> local cell position
}

func (n *Node) layout(h *TableHeader) (*localLayout, error) {
	t, ok := n.byName[h.Name]
	if !ok {
		return nil, fmt.Errorf("%w: %q is not tracked here", ErrUnknownTable, h.Name)
	}
	if len(h.Columns) != len(t.Columns) {
		return nil, CompareSchemas([]TableSchema{t.Schema()}, []TableSchema{{Name: h.Name, Columns: h.Columns, Key: h.Key}}, "the sender")
	}
	l := &localLayout{t: t}
	isKey := map[string]bool{}
	for _, k := range h.Key {
		isKey[k] = true
	}
	keyNames := t.KeyNames()
	if len(h.Key) != len(keyNames) {
		return nil, &SchemaError{Table: t.Name, Detail: "primary key differs from the sender's"}
	}
	for i, k := range keyNames {
		if h.Key[i] != k {
			return nil, &SchemaError{Table: t.Name, Column: h.Key[i], Detail: "primary key differs from the sender's"}
		}
		l.key = append(l.key, i)
	}
	seen := map[string]bool{}
	for _, c := range h.Columns {
		if seen[c.Name] {
			return nil, fmt.Errorf("%w: table %q: column %q twice in header", ErrMalformed, h.Name, c.Name)
		}
		seen[c.Name] = true
		i := t.ColumnIndex(c.Name)
		if i < 0 {
			return nil, &SchemaError{Table: t.Name, Column: c.Name, Detail: "column sent by the peer does not exist here"}
		}
		if t.Columns[i].Class != c.Class {
			return nil, &SchemaError{Table: t.Name, Column: c.Name, Detail: fmt.Sprintf("type class %s here, %s on the sender", t.Columns[i].Class, c.Class)}
		}
		if isKey[c.Name] {
			continue
		}
		ci := slices.Index(t.Cols, i)
		if ci < 0 {
			return nil, &SchemaError{Table: t.Name, Column: c.Name, Detail: "key column here but not on the sender"}
		}
		l.cells = append(l.cells, ci)
	}
	return l, nil
}

func (l *localLayout) row(r *Row) *Row {
	out := &Row{Key: r.Key, Live: r.Live, Tomb: r.Tomb, TombPrev: r.TombPrev, Cells: make([]Cell, len(l.t.Cols))}
	for i, ci := range l.cells {
		out.Cells[ci] = r.Cells[i]
	}
	return out
}

func (n *Node) receive(ctx context.Context, dec *Decoder, from NodeInfo, res *ReceiveResult, opt *recvOptions) (err error) {
	f, err := dec.Next()
	if err != nil {
		return fmt.Errorf("read change stream: %w", err)
	}
	if f.Type != FrameBegin {
		return fmt.Errorf("%w: change stream does not start with a begin frame", ErrMalformed)
	}
	if from.ID != "" && f.Begin.NodeID != from.ID {
		return fmt.Errorf("%w: stream is from node %s, expected %s", ErrProtocol, f.Begin.NodeID, from.ID)
	}
	if f.Begin.NodeID == n.id {
		return fmt.Errorf("%w: stream comes from this node itself", ErrProtocol)
	}
	from = NodeInfo{ID: f.Begin.NodeID, Name: f.Begin.Name}
	var b *batch
	defer func() {
		if b != nil {
			b.tx.Rollback()
		}
	}()
	var lay *localLayout
	var kind ChangeKind
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		f, err := dec.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read change stream: %w", err)
		}
		switch f.Type {
		case FrameBegin:
			return fmt.Errorf("%w: second begin frame", ErrMalformed)
		case FrameTable:
			if lay, err = n.layout(f.Table); err != nil {
				return err
			}
			kind = f.Table.Kind
		case FrameRow:
			if lay == nil {
				return fmt.Errorf("%w: row before table header", ErrMalformed)
			}
			if slices.ContainsFunc(f.Row.Key, Value.IsNull) {
				return fmt.Errorf("%w: table %q: row with a NULL key value %s", ErrMalformed, lay.t.Name, FormatKey(f.Row.Key))
			}
			if b == nil {
				if b, err = n.beginBatch(ctx, from.ID, res); err != nil {
					return err
				}
				b.recv = opt
			}
			res.Rows++
			if b.rows++; b.rows > MaxBatchRows {
				return fmt.Errorf("%w: more than %d rows without a checkpoint", ErrMalformed, MaxBatchRows)
			}
			if opt != nil && f.Seq <= opt.have[Cursor{Table: lay.t.Name, Kind: kind}] {
				opt.skipped++ // already here: received up to there before
				continue
			}
			if err := b.add(lay.t, lay.row(f.Row)); err != nil {
				return err
			}
		case FrameCheckpoint:
			if b == nil {
				if b, err = n.beginBatch(ctx, from.ID, res); err != nil {
					return err
				}
				b.recv = opt
			}
			err := b.finish(f.Cursors)
			b = nil
			if err != nil {
				return err
			}
			if opt != nil {
				opt.applied = res.Rows
			}
		case FrameEnd:
			if b != nil {
				return fmt.Errorf("%w: rows after the last checkpoint", ErrMalformed)
			}
			if f.Count != res.Rows {
				return fmt.Errorf("%w: stream announced %d rows, carried %d", ErrMalformed, f.Count, res.Rows)
			}
			if err := dec.ExpectEOF(); err != nil {
				return err
			}
		}
	}
}

// RetryHeld tries again every change held by a constraint, and returns how
// many are still held. Changes of tables in a foreign-key cycle that are
// still held after that are tried once more together, with the foreign
// keys checked at commit where the database can defer them (DeferTx): two
// new rows that reference each other can only be written that way.
func (n *Node) RetryHeld(ctx context.Context) (int64, error) {
	left, cyclic, err := n.retryHeld(ctx, false)
	if err != nil || !cyclic {
		return left, err
	}
	l, _, err := n.retryHeld(ctx, true)
	if _, refused := errorsAsConstraint(err); refused {
		// A deferred key did not hold at commit: all stay held.
		n.Logger.Debug("held changes still refused with deferred foreign keys", "error", err)
		return left, nil
	}
	return l, err
}

// retryHeld is one retry of the held changes, all of them or, when
// deferred is set, those of tables in a foreign-key cycle with the
// foreign keys deferred (nothing is done if they cannot be). It returns
// how many changes are held after it and whether some of them are of
// tables in a cycle.
func (n *Node) retryHeld(ctx context.Context, deferred bool) (left int64, cyclic bool, err error) {
	tx, err := n.db.Begin(ctx, false)
	if err != nil {
		return 0, false, err
	}
	all, err := tx.HeldChanges()
	tx.Rollback()
	if err != nil || len(all) == 0 {
		return 0, false, err
	}
	hs := all
	if deferred {
		hs = nil
		for _, h := range all {
			if n.cyclic[h.Table] {
				hs = append(hs, h)
			}
		}
		if len(hs) == 0 {
			return int64(len(all)), false, nil
		}
	}
	total := int64(len(all))
	res := &ReceiveResult{}
	b, err := n.beginBatch(ctx, "", res)
	if err != nil {
		return total, false, err
	}
	defer b.tx.Rollback()
	if deferred {
		dt, ok := b.tx.(DeferTx)
		if !ok {
			return total, false, nil
		}
		if ok, err := dt.DeferForeignKeys(); err != nil || !ok {
			return total, false, err
		}
	}
	// Every held change is taken out and applied again as one batch, so
	// that the batch's retries and swap resolution see them together;
	// finish holds again those that still fail.
	for _, h := range hs {
		t, ok := n.byName[h.Table]
		if !ok {
			continue // not tracked any more: stays held
		}
		in, err := decodeHeldRow(h.Change, len(t.Cols))
		if err == nil {
			err = b.setFrom(h.Peer)
		}
		if err == nil {
			err = b.tx.DeleteHeld(h.ID)
		}
		if err == nil {
			err = b.apply(t, in)
		}
		if err != nil {
			return total, false, err
		}
	}
	if err := b.retryFailed(); err != nil {
		return total, false, err
	}
	if err := b.resolveSwaps(); err != nil {
		return total, false, err
	}
	// A row's constraint conflicts are resolved once no change of it is
	// held any more (several peers may have sent one).
	still := map[string]bool{}
	for _, f := range b.failed {
		still[f.t.Name+"\x00"+keyString(f.in.Key)] = true
		cyclic = cyclic || n.cyclic[f.t.Name]
	}
	left = total - int64(len(hs))
	for _, h := range hs {
		if _, ok := n.byName[h.Table]; !ok {
			left++
			continue
		}
		if still[h.Table+"\x00"+keyString(h.Key)] {
			continue
		}
		still[h.Table+"\x00"+keyString(h.Key)] = true // once
		if err := b.tx.ResolveConflicts(h.Table, h.Key); err != nil {
			return total, false, err
		}
	}
	left += int64(len(b.failed))
	if err := b.finish(nil); err != nil {
		return total, false, err
	}
	return left, cyclic, nil
}

// SyncOptions chooses the directions of a sync.
type SyncOptions struct {
	PushOnly bool
	PullOnly bool
	// URL is recorded as the peer's address.
	URL string
}

// SyncResult reports a sync session.
type SyncResult struct {
	Peer   NodeInfo       `json:"peer"`
	Pushed *ReceiveResult `json:"pushed,omitempty"` // as applied on the peer
	Pulled *ReceiveResult `json:"pulled,omitempty"` // as applied here
}

// Sync runs one session with a peer: hello (schemas compared before
// anything changes), push of this node's changes, pull of the peer's.
func (n *Node) Sync(ctx context.Context, p Peer, opt SyncOptions) (*SyncResult, error) {
	start := time.Now()
	res, err := n.sync(ctx, p, opt)
	if res == nil {
		return nil, err
	}
	peer := res.Peer
	if err != nil {
		// Keep the error with the peer, for status; the error itself is
		// returned, not logged: the caller handles it.
		n.notePeer(context.WithoutCancel(ctx), peer, func(r *PeerRecord) { r.LastError = err.Error() })
		return res, err
	}
	var pushed, pulled int64
	if res.Pushed != nil {
		pushed = res.Pushed.Rows
	}
	if res.Pulled != nil {
		pulled = res.Pulled.Rows
	}
	n.Logger.Info("synced", LogKeyNode, n.name, LogKeyPeer, peer.Name, "sent", pushed, "received", pulled, "took", time.Since(start))
	return res, nil
}

func (n *Node) sync(ctx context.Context, p Peer, opt SyncOptions) (*SyncResult, error) {
	if opt.PushOnly && opt.PullOnly {
		return nil, errors.New("sync: --push-only and --pull-only exclude each other")
	}
	hello, err := p.Hello(ctx, &HelloRequest{Protocol: ProtocolVersion, Node: n.Info(), Tables: WithoutForeignKeys(n.Schema())})
	if err != nil {
		return nil, err
	}
	if hello.Node.ID == n.id {
		return nil, fmt.Errorf("%w: a node cannot sync with itself (both sides are node %s)", ErrProtocol, n.id)
	}
	if err := CompareSchemas(n.Schema(), hello.Tables, "node "+hello.Node.Name); err != nil {
		return nil, err
	}
	res := &SyncResult{Peer: hello.Node}
	if !opt.PullOnly {
		pr, pw := io.Pipe()
		sent := make(chan *SendResult, 1)
		go func() {
			r, err := n.Send(ctx, pw, hello.Node, hello.Cursors)
			sent <- r
			pw.CloseWithError(err)
		}()
		pushed, err := p.Push(ctx, n.Info(), pr)
		pr.CloseWithError(errors.New("push ended"))
		sr := <-sent
		if err != nil {
			return res, fmt.Errorf("push to %s: %w", hello.Node.Name, err)
		}
		res.Pushed = pushed
		if sr != nil {
			if err := n.notePeer(ctx, hello.Node, func(r *PeerRecord) { r.AckedSeq = sr.UpTo }); err != nil {
				return res, err
			}
		}
	}
	if !opt.PushOnly {
		tx, err := n.db.Begin(ctx, false)
		if err != nil {
			return res, err
		}
		cs, err := tx.Cursors(hello.Node.ID)
		tx.Rollback()
		if err != nil {
			return res, err
		}
		rc, err := p.Pull(ctx, &PullRequest{Node: n.Info(), Cursors: cs})
		if err != nil {
			return res, fmt.Errorf("pull from %s: %w", hello.Node.Name, err)
		}
		pulled, err := n.Receive(ctx, rc, hello.Node)
		rc.Close()
		res.Pulled = pulled
		if err != nil {
			return res, fmt.Errorf("pull from %s: %w", hello.Node.Name, err)
		}
	}
	err = n.notePeer(ctx, hello.Node, func(r *PeerRecord) {
		r.SyncCount++
		r.LastSync = n.Now().UTC()
		r.LastError = ""
		if opt.URL != "" {
			r.URL = opt.URL
		}
	})
	return res, err
}
