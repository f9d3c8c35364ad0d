package rowsync

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"
)

// Log keys.
const (
	LogKeyNode  = "node"
	LogKeyPeer  = "peer"
	LogKeyTable = "table"
	LogKeyRows  = "rows"
)

// DefaultBatchRows is the number of rows per applied batch (one transaction).
const DefaultBatchRows = 1000

// Node is one rowsync node: a database with tracking installed, and the
// engine that folds its captured writes into versions, sends its changes
// and merges a peer's. A Node is safe for concurrent use; its database
// serializes writers.
type Node struct {
	// BatchRows is the number of rows per batch sent (default 1000).
	BatchRows int
	// Logger receives the node's log; default: discard.
	Logger *slog.Logger
	// Now returns the current time (for conflict and peer timestamps).
	Now func() time.Time

	db     Database
	id     string
	name   string
	tables []*Table // parents first
	byName map[string]*Table
	cyclic map[string]bool // tables in a foreign-key cycle (see cyclicTables)
}

// NewNode returns a node over db with default settings; call Open next.
func NewNode(db Database) *Node {
	return &Node{db: db, BatchRows: DefaultBatchRows, Logger: slog.New(slog.DiscardHandler), Now: time.Now}
}

// InitOptions says what Init tracks.
type InitOptions struct {
	Tables []string // tables to track (added to those already tracked)
	All    bool     // track every user table
	Name   string   // the node's name (default: kept, or "node-XXXX")
}

// Init installs tracking on db (idempotent) and gives the node an id if it
// has none. Rows present before tracking get an initial version.
func Init(ctx context.Context, db Database, opt InitOptions) (*Node, error) {
	names := append([]string(nil), opt.Tables...)
	if opt.All {
		all, err := db.UserTables(ctx)
		if err != nil {
			return nil, err
		}
		names = append(names, all...)
	}
	if err := db.Install(ctx, names); err != nil {
		return nil, err
	}
	tx, err := db.Begin(ctx, true)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	st, err := tx.LoadState()
	if err != nil {
		return nil, err
	}
	if st.NodeID == "" {
		st.NodeID = newNodeID()
	}
	if opt.Name != "" {
		st.Name = opt.Name
	}
	if st.Name == "" {
		st.Name = "node-" + st.NodeID[:6]
	}
	if _, err := tx.NodeIndex(st.NodeID); err != nil {
		return nil, err
	}
	if err := tx.SaveState(st); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	n := NewNode(db)
	if err := n.Open(ctx); err != nil {
		if errors.Is(err, ErrNotInitialized) && len(names) == 0 {
			return nil, fmt.Errorf("nothing to track: %s has no tables (create them first, then run init)", db.Address())
		}
		return nil, err
	}
	// Stamp the rows that were there before tracking.
	if err := n.Fold(ctx); err != nil {
		return nil, err
	}
	return n, nil
}

func newNodeID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

// Open loads the node's identity and tracked tables.
func (n *Node) Open(ctx context.Context) error {
	ts, err := n.db.Tables(ctx)
	if err != nil {
		return err
	}
	tx, err := n.db.Begin(ctx, false)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	st, err := tx.LoadState()
	if err != nil {
		return err
	}
	if st.NodeID == "" {
		return ErrNotInitialized
	}
	n.id, n.name = st.NodeID, st.Name
	n.tables = SortTables(ts)
	n.byName = map[string]*Table{}
	for _, t := range n.tables {
		n.byName[t.Name] = t
	}
	n.cyclic = cyclicTables(n.tables)
	return nil
}

// ID returns the node's id.
func (n *Node) ID() string { return n.id }

// Name returns the node's name.
func (n *Node) Name() string { return n.name }

// Info returns the node's id and name.
func (n *Node) Info() NodeInfo { return NodeInfo{ID: n.id, Name: n.name} }

// Tables returns the tracked tables, parents first.
func (n *Node) Tables() []*Table { return n.tables }

// Table returns a tracked table by name.
func (n *Node) Table(name string) (*Table, bool) {
	t, ok := n.byName[name]
	return t, ok
}

// DB returns the node's database.
func (n *Node) DB() Database { return n.db }

// Schema returns the comparable schema of the tracked tables.
func (n *Node) Schema() []TableSchema {
	s := make([]TableSchema, len(n.tables))
	for i, t := range n.tables {
		s[i] = t.Schema()
	}
	return s
}

// txDict is a nodeDict over a transaction, with a cache.
type txDict struct {
	tx  Tx
	ids map[int64]string
	idx map[string]int64
}

func newTxDict(tx Tx) (*txDict, error) {
	ids, err := tx.NodeIDs()
	if err != nil {
		return nil, err
	}
	d := &txDict{tx: tx, ids: ids, idx: map[string]int64{}}
	for i, id := range ids {
		d.idx[id] = i
	}
	return d, nil
}

func (d *txDict) index(id string) (int64, error) {
	if i, ok := d.idx[id]; ok {
		return i, nil
	}
	i, err := d.tx.NodeIndex(id)
	if err != nil {
		return 0, err
	}
	d.idx[id], d.ids[i] = i, id
	return i, nil
}

func (d *txDict) id(i int64) (string, error) {
	if id, ok := d.ids[i]; ok {
		return id, nil
	}
	return "", fmt.Errorf("%w: unknown node index %d in stored versions", ErrMalformed, i)
}

// loadRow builds a row's state from its shadow and, for a live row, its
// current values (full row, column order; nil to read them from tx).
func loadRow(tx Tx, t *Table, s *Shadow, full []Value, d nodeDict) (*Row, error) {
	r := &Row{Key: s.Key, Cells: make([]Cell, len(t.Cols))}
	if err := decodeMeta(s.Meta, r, d); err != nil {
		return nil, fmt.Errorf("table %q key %s: %w", t.Name, FormatKey(s.Key), err)
	}
	var vals []Value
	if s.Deleted {
		if len(s.Dead) > 0 {
			vs, err := DecodeValues(s.Dead)
			if err != nil {
				return nil, fmt.Errorf("table %q key %s: %w", t.Name, FormatKey(s.Key), err)
			}
			vals = vs
		}
	} else {
		if full == nil {
			row, ok, err := tx.GetRow(t, s.Key)
			if err != nil {
				return nil, err
			}
			if ok {
				full = row
			}
		}
		if full != nil {
			_, vals = t.SplitRow(full)
		}
	}
	for i := range r.Cells {
		if i < len(vals) {
			r.Cells[i].Value = vals[i]
		}
	}
	return r, nil
}

// Fold turns captured writes into versions now. Sync does this itself; it
// is exported for status and tests.
func (n *Node) Fold(ctx context.Context) error {
	tx, err := n.db.Begin(ctx, true)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	st, err := tx.LoadState()
	if err != nil {
		return err
	}
	d, err := newTxDict(tx)
	if err != nil {
		return err
	}
	clock := Clock{Last: st.Clock}
	if _, err := n.fold(tx, &st, &clock, d, nil); err != nil {
		return err
	}
	st.Clock = clock.Last
	if err := tx.SaveState(st); err != nil {
		return err
	}
	return tx.Commit()
}

const foldChunk = 2000

type foldRow struct {
	row   *Row
	dead  []Value // values of a deleted row
	dirty bool
}

// removedFunc is told of a live row that a fold deletes by an entry marked
// Applied: before is the row's versions, dead its values (in Cols order),
// tomb the delete's new version.
type removedFunc func(t *Table, before *Row, dead []Value, tomb Version) error

// fold stamps every captured write of every table with a version, in
// capture order, and updates the rows' bookkeeping. It runs inside a write
// transaction, before anything is applied, so that a local write is
// ordered after every version the node had received when it was made, and
// again after a batch's writes, for their side effects (removed, if not
// nil, is told of the rows they deleted).
func (n *Node) fold(tx Tx, st *State, clock *Clock, d nodeDict, removed removedFunc) (int, error) {
	total := 0
	// Each table's writes are stamped in their capture order by a clock
	// that starts where the node's was before the fold: after every version
	// the node had seen, and from then on at the time of each write. One
	// clock through all tables would stamp a table's writes after the last
	// write of the tables folded before it, however much earlier they were
	// made: an edit could then beat a delete made after it on another node
	// (TestFoldStampsWritesAtTheirTime). A row's writes are all in one
	// table, so they stay ordered.
	base := *clock
	for _, t := range n.tables {
		tc := base
		var after int64
		for {
			entries, err := tx.ReadLog(t, after, foldChunk)
			if err != nil {
				return total, fmt.Errorf("read captured writes of %q: %w", t.Name, err)
			}
			if len(entries) == 0 {
				break
			}
			if err := n.foldChunk(tx, t, entries, st, &tc, d, removed); err != nil {
				return total, err
			}
			total += len(entries)
			after = entries[len(entries)-1].ID
		}
		clock.Observe(tc.Last)
		if after > 0 {
			if err := tx.DeleteLog(t, after, nil); err != nil {
				return total, err
			}
		}
	}
	return total, nil
}

func (n *Node) foldChunk(tx Tx, t *Table, entries []LogEntry, st *State, clock *Clock, d nodeDict, removed removedFunc) error {
	rows := map[string]*foldRow{}
	var order []string
	keyOf := func(e *LogEntry) []Value {
		k := make([]Value, len(t.Key))
		for i, c := range t.Key {
			k[i] = e.Row[c]
		}
		return k
	}
	stamp := func(wall int64) Version { return Version{HLC: clock.Next(wall), Node: n.id} }
	shadows, err := foldShadows(tx, t, entries, keyOf)
	if err != nil {
		return err
	}
	// Fold stamps versions; it needs a live row's versions, not its
	// values, so it does not read the row (a row of NULLs stands in).
	noValues := make([]Value, len(t.Columns))
	for i := range entries {
		e := &entries[i]
		key := keyOf(e)
		ks := keyString(key)
		fr := rows[ks]
		if fr == nil {
			fr = &foldRow{}
			if s := shadows[ks]; s != nil {
				r, err := loadRow(tx, t, s, noValues, d)
				if err != nil {
					return err
				}
				fr.row = r
				if s.Deleted {
					fr.dead = r.Values()
				}
			}
			rows[ks] = fr
			order = append(order, ks)
		}
		op := e.Op
		if op == OpMaybeDelete {
			real, err := maybeDeleteIsReal(tx, t, entries[i+1:], e, key, ks)
			if err != nil {
				return err
			}
			if !real {
				continue
			}
			op = OpDelete
		}
		if op == OpUpdate && (fr.row == nil || !fr.row.Alive()) {
			op = OpInsert
		}
		switch op {
		case OpInsert:
			v := stamp(e.Wall)
			if fr.row == nil {
				fr.row = &Row{Key: key, Cells: make([]Cell, len(t.Cols))}
			}
			// A row that comes into existence gets a new Live version; an
			// INSERT OR REPLACE of a live row is an update of every column
			// (the same row, not a new one that could collide with it).
			if !fr.row.Alive() {
				fr.row.Live = v
			}
			for c := range fr.row.Cells {
				n.stampCell(&fr.row.Cells[c], v)
			}
			fr.dead = nil
			fr.dirty = true
		case OpUpdate:
			var v Version
			for c, col := range t.Cols {
				if e.Changed(col) {
					if v.IsZero() {
						v = stamp(e.Wall)
					}
					n.stampCell(&fr.row.Cells[c], v)
					fr.dirty = true
				}
			}
		case OpDelete:
			if fr.row == nil || !fr.row.Alive() {
				continue
			}
			v := stamp(e.Wall)
			_, fr.dead = t.SplitRow(e.Row)
			if removed != nil && e.Applied {
				if err := removed(t, fr.row, fr.dead, v); err != nil {
					return err
				}
			}
			fr.row.TombPrev = fr.row.Newest()
			fr.row.Tomb = v
			fr.dirty = true
		}
	}
	var out []*Shadow
	for _, ks := range order {
		fr := rows[ks]
		if !fr.dirty {
			continue
		}
		meta, err := encodeMeta(fr.row, d)
		if err != nil {
			return err
		}
		st.Seq++
		s := &Shadow{Key: fr.row.Key, Seq: st.Seq, Meta: meta, Deleted: !fr.row.Alive()}
		if s.Deleted {
			s.Dead = EncodeValues(fr.dead)
		}
		out = append(out, s)
	}
	return putShadows(tx, t, out)
}

// foldShadows reads the bookkeeping of every row the entries name, by
// encoded key, with as few queries as the Tx allows.
func foldShadows(tx Tx, t *Table, entries []LogEntry, keyOf func(*LogEntry) []Value) (map[string]*Shadow, error) {
	out := map[string]*Shadow{}
	var keys [][]Value
	for i := range entries {
		k := keyOf(&entries[i])
		ks := keyString(k)
		if _, ok := out[ks]; ok {
			continue
		}
		out[ks] = nil
		keys = append(keys, k)
	}
	bulk, ok := tx.(BulkTx)
	if !ok {
		for _, k := range keys {
			s, err := tx.GetShadow(t, k)
			if err != nil {
				return nil, err
			}
			out[keyString(k)] = s
		}
		return out, nil
	}
	step := chunkRows(t)
	for len(keys) > 0 {
		part := keys[:min(step, len(keys))]
		keys = keys[len(part):]
		ss, err := bulk.GetShadows(t, part)
		if err != nil {
			return nil, err
		}
		for i, s := range ss {
			out[keyString(part[i])] = s
		}
	}
	return out, nil
}

// putShadows stores bookkeeping of distinct rows, with as few statements
// as the Tx allows.
func putShadows(tx Tx, t *Table, ss []*Shadow) error {
	bulk, ok := tx.(BulkTx)
	if !ok {
		for _, s := range ss {
			if err := tx.PutShadow(t, s); err != nil {
				return err
			}
		}
		return nil
	}
	step := chunkRows(t)
	for len(ss) > 0 {
		part := ss[:min(step, len(ss))]
		ss = ss[len(part):]
		if err := bulk.PutShadows(t, part); err != nil {
			return err
		}
	}
	return nil
}

// stampCell gives a cell a local write's version. Prev records the newest
// version from another node that the cell held (the write this node's
// chain of writes overwrote): a peer holding that version sees the new
// write as causal, not as a conflict, however many times this node wrote
// the cell in between.
func (n *Node) stampCell(c *Cell, v Version) {
	if c.V.Node != n.id {
		c.Prev = c.V
	}
	c.V = v
}

// maybeDeleteIsReal decides whether a row that conflicted with an INSERT OR
// REPLACE was removed by it: yes iff the next captured write of its key is
// an insert, or there is none and the row is gone.
func maybeDeleteIsReal(tx Tx, t *Table, rest []LogEntry, e *LogEntry, key []Value, ks string) (bool, error) {
	for i := range rest {
		k := make([]Value, len(t.Key))
		for j, c := range t.Key {
			k[j] = rest[i].Row[c]
		}
		if keyString(k) == ks {
			return rest[i].Op == OpInsert, nil
		}
	}
	last := e.ID
	if len(rest) > 0 {
		last = rest[len(rest)-1].ID
	}
	op, found, err := tx.NextLogOp(t, last, key)
	if err != nil {
		return false, err
	}
	if found {
		return op == OpInsert, nil
	}
	_, exists, err := tx.GetRow(t, key)
	return !exists, err
}

// sortedCursors returns cursors in a stable order.
func sortedCursors(m map[Cursor]bool) []Cursor {
	cs := make([]Cursor, 0, len(m))
	for c := range m {
		cs = append(cs, c)
	}
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].Table != cs[j].Table {
			return cs[i].Table < cs[j].Table
		}
		return cs[i].Kind < cs[j].Kind
	})
	return cs
}

// errorsAsConstraint reports whether err is a constraint failure.
func errorsAsConstraint(err error) (*ConstraintError, bool) {
	var ce *ConstraintError
	ok := errors.As(err, &ce)
	return ce, ok
}
