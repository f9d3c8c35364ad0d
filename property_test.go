package rowsync_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rowsync/rowsync"
	"github.com/rowsync/rowsync/rowsynctest"
)

// The property test: random writes on several nodes (inserts, updates,
// deletes, upserts, INSERT OR REPLACE, key changes, small transactions)
// over a schema with foreign keys, a cascade, a UNIQUE column and a
// composite key, with small key spaces so that writes meet; random syncs
// between them, in random directions, some repeated, some cut mid-stream;
// then syncs along a ring until a whole round moves nothing. Then:
//
//   - every node has the same rows (read with SELECT), except rows held
//     back by an unresolved constraint conflict on some node, and every
//     held change is listed by an unresolved conflict;
//   - no write is lost silently: every value a statement wrote is still
//     there on some node, or is the loser of a logged conflict, or was
//     overwritten or deleted by a node that had it (a later local write,
//     a delete, a cascade), or its row is gone everywhere.
//
// ROWSYNC_SEED=n runs only seed n; ROWSYNC_TRACE=1 logs every step;
// ROWSYNC_WATCH="table key" (key as rowsync.FormatKey renders it) logs
// that row on every node whenever it changes.

const propertySchema = `
CREATE TABLE parent(id INTEGER PRIMARY KEY, name TEXT, code INTEGER UNIQUE, score REAL);
CREATE TABLE child(id INTEGER PRIMARY KEY, pid INTEGER NOT NULL REFERENCES parent(id), note TEXT, n INTEGER);
CREATE TABLE tag(id INTEGER PRIMARY KEY, pid INTEGER REFERENCES parent(id) ON DELETE CASCADE, label TEXT);
CREATE TABLE pair(a INTEGER, b TEXT, x TEXT, y BLOB, PRIMARY KEY(a, b)) WITHOUT ROWID;`

func TestProperty(t *testing.T) {
	seeds := []uint64{1, 2, 3, uint64(time.Now().UnixNano())}
	nodes, steps := 4, 1200
	if testing.Short() {
		seeds, steps = []uint64{1, uint64(time.Now().UnixNano())}, 300
	}
	if s := os.Getenv("ROWSYNC_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("ROWSYNC_SEED: %v", err)
		}
		seeds = []uint64{seed}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			runProperty(t, seed, nodes, steps)
		})
	}
}

// cell names one column of one row.
type cell struct {
	table, key, col string
}

// write is a value a local statement put into a cell.
type write struct {
	node int
	step int
	cell cell
	val  rowsync.Value
}

// history is what the test keeps to check that no write is lost.
type history struct {
	writes []write
	// gone holds the values a node overwrote or deleted locally while it
	// had them: their loss is the application's doing.
	gone map[cell]map[string]bool
}

func (h *history) forget(c cell, v rowsync.Value) {
	if h.gone[c] == nil {
		h.gone[c] = map[string]bool{}
	}
	h.gone[c][string(rowsync.EncodeValues([]rowsync.Value{v}))] = true
}

func (h *history) wasGone(c cell, v rowsync.Value) bool {
	return h.gone[c][string(rowsync.EncodeValues([]rowsync.Value{v}))]
}

// snapshot is every tracked row of a node, by table and key.
type snapshot map[string]map[string][]rowsync.Value

func readSnapshot(tb testing.TB, s *site) snapshot {
	tb.Helper()
	snap := snapshot{}
	for _, t := range s.node.Tables() {
		rows := map[string][]rowsync.Value{}
		cols := make([]string, len(t.Columns))
		for i, c := range t.Columns {
			cols[i] = quoteName(c.Name)
		}
		raws, err := rowsynctest.QueryAll(s.app, fmt.Sprintf("SELECT %s FROM %s", strings.Join(cols, ", "), quoteName(t.Name)))
		if err != nil {
			tb.Fatal(err)
		}
		for _, raw := range raws {
			row := make([]rowsync.Value, len(raw))
			for i, x := range raw {
				if row[i], err = rowsync.ValueOf(x); err != nil {
					tb.Fatal(err)
				}
			}
			key, _ := t.SplitRow(row)
			rows[rowsync.FormatKey(key)] = row
		}
		snap[t.Name] = rows
	}
	return snap
}

// record notes what a local statement did to a node's rows.
func (h *history) record(s *site, node, step int, before, after snapshot) {
	for _, t := range s.node.Tables() {
		b, a := before[t.Name], after[t.Name]
		for key, old := range b {
			now, ok := a[key]
			for _, ci := range t.Cols {
				c := cell{t.Name, key, t.Columns[ci].Name}
				if !ok {
					if !old[ci].IsNull() {
						h.forget(c, old[ci])
					}
					continue
				}
				if !now[ci].Equal(old[ci]) && !old[ci].IsNull() {
					h.forget(c, old[ci])
				}
			}
		}
		for key, now := range a {
			old, existed := b[key]
			for _, ci := range t.Cols {
				if now[ci].IsNull() || (existed && now[ci].Equal(old[ci])) {
					continue
				}
				h.writes = append(h.writes, write{node: node, step: step, cell: cell{t.Name, key, t.Columns[ci].Name}, val: now[ci]})
			}
		}
	}
}

// deleted notes the values of every deleted row of a node, as the
// node's own change stream carries them: values the deleting node had
// when it deleted the row (its version is not after the newest version
// that delete had seen). Those are lost by a delete, not by a merge: a
// cascade, on whatever node, is the schema's doing.
func (h *history) deleted(tb testing.TB, s *site) {
	tb.Helper()
	var buf bytes.Buffer
	if _, err := s.node.Send(tb.Context(), &buf, rowsync.NodeInfo{ID: "observer", Name: "observer"}, nil); err != nil {
		tb.Fatal(err)
	}
	dec := rowsync.NewDecoder(&buf)
	var cols []string
	var table string
	for {
		f, err := dec.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			tb.Fatal(err)
		}
		switch f.Type {
		case rowsync.FrameTable:
			table, cols = f.Table.Name, nil
			for _, c := range f.Table.Columns {
				if !slices.Contains(f.Table.Key, c.Name) {
					cols = append(cols, c.Name)
				}
			}
		case rowsync.FrameRow:
			if f.Row.Alive() {
				continue
			}
			key := rowsync.FormatKey(f.Row.Key)
			for i, c := range f.Row.Cells {
				if !c.Value.IsNull() && !c.V.After(f.Row.TombPrev) {
					h.forget(cell{table, key, cols[i]}, c.Value)
				}
			}
		}
	}
}

// gen makes random statements with small key spaces, so that writes of
// different nodes meet.
type gen struct {
	r    *rand.Rand
	node int
	n    int // a counter that makes every written value unique
}

func (g *gen) text() string { g.n++; return fmt.Sprintf("%c%d", 'a'+g.node, g.n) }
func (g *gen) num() int64   { g.n++; return int64(g.n*10 + g.node) }
func (g *gen) real() float64 {
	g.n++
	return float64(g.n*10+g.node) + 0.25
}
func (g *gen) blob() []byte {
	g.n++
	if g.r.IntN(8) == 0 {
		return []byte{}
	}
	return fmt.Appendf([]byte{0, 0xff}, "%d.%d", g.node, g.n)
}
func (g *gen) parentID() int64 { return 1 + g.r.Int64N(8) }
func (g *gen) code() any {
	if g.r.IntN(3) > 0 {
		return nil
	}
	return 1 + g.r.Int64N(12)
}
func (g *gen) pairKey() (int64, string) {
	return 1 + g.r.Int64N(3), []string{"x", "y", "z", ""}[g.r.IntN(4)]
}

func (g *gen) statement() (string, []any) {
	r := g.r
	switch r.IntN(4) {
	case 0:
		id := g.parentID()
		switch r.IntN(8) {
		case 0, 1:
			return `INSERT INTO parent VALUES (?, ?, ?, ?)`, []any{id, g.text(), g.code(), g.real()}
		case 2:
			return `INSERT OR REPLACE INTO parent VALUES (?, ?, ?, ?)`, []any{id, g.text(), g.code(), g.real()}
		case 3:
			return `INSERT INTO parent(id, name, score) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET name = excluded.name`, []any{id, g.text(), g.real()}
		case 4:
			return `UPDATE parent SET name = ? WHERE id = ?`, []any{g.text(), id}
		case 5:
			return `UPDATE parent SET score = ?, code = ? WHERE id = ?`, []any{g.real(), g.code(), id}
		case 6:
			return `UPDATE parent SET id = ? WHERE id = ?`, []any{g.parentID(), id}
		default:
			return `DELETE FROM parent WHERE id = ?`, []any{id}
		}
	case 1:
		id := 1 + r.Int64N(12)
		switch r.IntN(6) {
		case 0, 1:
			return `INSERT INTO child VALUES (?, ?, ?, ?)`, []any{id, g.parentID(), g.text(), g.num()}
		case 2:
			return `INSERT OR REPLACE INTO child VALUES (?, ?, ?, ?)`, []any{id, g.parentID(), g.text(), g.num()}
		case 3:
			return `UPDATE child SET note = ?, n = ? WHERE id = ?`, []any{g.text(), g.num(), id}
		case 4:
			return `UPDATE child SET pid = ? WHERE id = ?`, []any{g.parentID(), id}
		default:
			return `DELETE FROM child WHERE id = ?`, []any{id}
		}
	case 2:
		id := 1 + r.Int64N(8)
		switch r.IntN(4) {
		case 0, 1:
			return `INSERT OR REPLACE INTO tag VALUES (?, ?, ?)`, []any{id, g.parentID(), g.text()}
		case 2:
			return `UPDATE tag SET label = ? WHERE id = ?`, []any{g.text(), id}
		default:
			return `DELETE FROM tag WHERE id = ?`, []any{id}
		}
	default:
		a, b := g.pairKey()
		switch r.IntN(6) {
		case 0, 1:
			return `INSERT INTO pair VALUES (?, ?, ?, ?)`, []any{a, b, g.text(), g.blob()}
		case 2:
			return `INSERT OR REPLACE INTO pair VALUES (?, ?, ?, ?)`, []any{a, b, g.text(), g.blob()}
		case 3:
			return `UPDATE pair SET x = ? WHERE a = ? AND b = ?`, []any{g.text(), a, b}
		case 4:
			return `UPDATE pair SET y = ?, b = ? WHERE a = ? AND b = ?`, []any{g.blob(), []string{"x", "y", "z", ""}[r.IntN(4)], a, b}
		default:
			return `DELETE FROM pair WHERE a = ? AND b = ?`, []any{a, b}
		}
	}
}

func runProperty(t *testing.T, seed uint64, nnodes, steps int) {
	t.Logf("seed %d (rerun with ROWSYNC_SEED=%d)", seed, seed)
	defer func() {
		if t.Failed() {
			t.Logf("failed with seed %d: rerun with ROWSYNC_SEED=%d (and ROWSYNC_TRACE=1 to see every step)", seed, seed)
		}
	}()
	trace := os.Getenv("ROWSYNC_TRACE") != ""
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	sites := newSites(t, nnodes, propertySchema)
	gens := make([]*gen, nnodes)
	for i, s := range sites {
		s.node.BatchRows = 2 + r.IntN(8)
		gens[i] = &gen{r: r, node: i}
	}
	if trace {
		for _, s := range sites {
			t.Logf("node %s is %.8s", s.name, s.node.ID())
		}
	}
	h := &history{gone: map[cell]map[string]bool{}}
	snaps := make([]snapshot, nnodes) // a node's rows as last read; nil: read again
	snapOf := func(i int) snapshot {
		if snaps[i] == nil {
			snaps[i] = readSnapshot(t, sites[i])
		}
		return snaps[i]
	}
	var statements, refused, syncs, cuts int

	// write runs one statement, or a transaction of a few, on node i.
	write := func(step, i int) {
		s := sites[i]
		before := snapOf(i)
		tx, err := s.app.Begin()
		if err != nil {
			t.Fatal(err)
		}
		n := 1
		if r.IntN(10) == 0 {
			n = 2 + r.IntN(3)
		}
		for range n {
			q, args := gens[i].statement()
			statements++
			if _, err := tx.Exec(q, args...); err != nil {
				if !strings.Contains(err.Error(), "constraint failed") {
					t.Fatalf("step %d: %s: %s %v: %v", step, s.name, q, args, err)
				}
				refused++
				continue
			}
			if trace {
				t.Logf("step %d: %s: %s %v", step, s.name, q, args)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatalf("step %d: %s: commit: %v", step, s.name, err)
		}
		after := readSnapshot(t, s)
		h.record(s, i, step, before, after)
		snaps[i] = after
	}

	// sync runs a sync of node i with node j, in one direction or both,
	// maybe over a link that drops, maybe twice.
	sync := func(step, i, j int) {
		a, b := sites[i], sites[j]
		opt := rowsync.SyncOptions{}
		switch r.IntN(4) {
		case 0:
			opt.PushOnly = true
		case 1:
			opt.PullOnly = true
		}
		var peer rowsync.Peer = b.node
		if r.IntN(6) == 0 {
			cut := &rowsynctest.CutPeer{Peer: b.node}
			if r.IntN(2) == 0 {
				cut.PullAfter = 1 + r.Int64N(3000)
			} else {
				cut.PushAfter = 1 + r.Int64N(3000)
			}
			peer = cut
			cuts++
		}
		for range 1 + r.IntN(2) {
			syncs++
			res, err := a.node.Sync(t.Context(), peer, opt)
			if trace && res != nil {
				t.Logf("step %d: sync %s with %s %+v: %v; pushed %+v pulled %+v", step, a.name, b.name, opt, err, res.Pushed, res.Pulled)
			}
			if err != nil && !errors.Is(err, rowsynctest.ErrCut) {
				t.Fatalf("step %d: sync %s with %s (%+v): %v", step, a.name, b.name, opt, err)
			}
			peer = b.node
		}
		// A sync can delete rows on a node by cascade: note what the
		// deleted rows held.
		for _, x := range []int{i, j} {
			h.deleted(t, sites[x])
			snaps[x] = nil
		}
	}

	// ROWSYNC_WATCH="table key" logs that row on every node when it changes.
	watch, lastWatch := strings.SplitN(os.Getenv("ROWSYNC_WATCH"), " ", 2), ""
	for step := range steps {
		if len(watch) == 2 {
			var parts []string
			for i, s := range sites {
				parts = append(parts, fmt.Sprintf("%s=%v", s.name, snapOf(i)[watch[0]][watch[1]]))
			}
			if w := strings.Join(parts, " "); w != lastWatch {
				t.Logf("before step %d: %s", step, w)
				lastWatch = w
			}
		}
		if r.IntN(12) > 0 {
			write(step, r.IntN(nnodes))
			continue
		}
		i, j := r.IntN(nnodes), r.IntN(nnodes-1)
		if j >= i {
			j++
		}
		sync(step, i, j)
	}
	nodes := make([]*rowsync.Node, nnodes)
	for i, s := range sites {
		nodes[i] = s.node
	}
	rounds := rowsynctest.SyncUntilQuiet(t, nodes, 30)
	t.Logf("%d statements (%d refused by a constraint), %d values written, %d syncs (%d cut), quiet after %d more rounds",
		statements, refused, len(h.writes), syncs, cuts, rounds)

	// Rows held back by an unresolved constraint conflict may differ.
	excluded := map[string]map[string]bool{}
	var conflicts [][]rowsync.Conflict
	for _, s := range sites {
		cs := s.conflicts(t)
		conflicts = append(conflicts, cs)
		unresolved := map[string]bool{}
		for _, c := range cs {
			if c.Kind == rowsync.ConflictConstraint && !c.Resolved {
				if excluded[c.Table] == nil {
					excluded[c.Table] = map[string]bool{}
				}
				excluded[c.Table][rowsync.FormatKey(c.Key)] = true
				unresolved[c.Table+" "+rowsync.FormatKey(c.Key)] = true
			}
		}
		for _, hc := range s.held(t) {
			if !unresolved[hc.Table+" "+rowsync.FormatKey(hc.Key)] {
				t.Errorf("%s holds a change of %s %s from %.8s that no unresolved conflict lists (%s)", s.name, hc.Table, rowsync.FormatKey(hc.Key), hc.Peer, hc.Error)
				for _, c := range cs {
					if c.Table == hc.Table && rowsync.FormatKey(c.Key) == rowsync.FormatKey(hc.Key) && c.Kind == rowsync.ConflictConstraint {
						t.Logf("  conflict %s from %.8s: loser %s resolved %v", c.String(), c.Peer, c.LoserV, c.Resolved)
					}
				}
			}
		}
	}
	nexcluded := 0
	for _, keys := range excluded {
		nexcluded += len(keys)
	}
	t.Logf("%d rows held back by unresolved constraint conflicts left out of the comparison", nexcluded)

	final := make([]snapshot, nnodes)
	for i, s := range sites {
		final[i] = readSnapshot(t, s)
	}
	total := 0
	for _, tb := range sites[0].node.Tables() {
		skip := func(key string) bool { return excluded[tb.Name][key] }
		want := selectRows(t, sites[0].app, tb, skip)
		for _, s := range sites[1:] {
			if got := selectRows(t, s.app, tb, skip); !slices.Equal(got, want) {
				t.Errorf("table %s: %s has\n%q\n%s has\n%q", tb.Name, s.name, got, sites[0].name, want)
			}
		}
		total += len(want)
	}
	if total == 0 {
		t.Error("every table is empty on every node: the test writes too little")
	}

	// No write is lost silently.
	lost := 0
	for _, w := range h.writes {
		present, rowExists := false, false
		for _, f := range final {
			if row, ok := f[w.cell.table][w.cell.key]; ok {
				rowExists = true
				t, _ := sites[0].node.Table(w.cell.table)
				if row[t.ColumnIndex(w.cell.col)].Equal(w.val) {
					present = true
				}
			}
		}
		if present || !rowExists || h.wasGone(w.cell, w.val) {
			continue
		}
		logged := false
		for _, cs := range conflicts {
			for _, c := range cs {
				if c.Table == w.cell.table && rowsync.FormatKey(c.Key) == w.cell.key && c.Column == w.cell.col && c.Loser.Equal(w.val) {
					logged = true
				}
			}
		}
		if !logged {
			lost++
			if lost <= 10 {
				t.Errorf("write lost silently: step %d on %s: %s %s.%s = %s", w.step, sites[w.node].name, w.cell.table, w.cell.key, w.cell.col, w.val)
				for i, cs := range conflicts {
					for _, c := range cs {
						if c.Table == w.cell.table && rowsync.FormatKey(c.Key) == w.cell.key {
							t.Logf("  %s has conflict %s: winner %s %s, loser %s %s (%s)", sites[i].name, c.String(), c.Winner, c.WinnerV, c.Loser, c.LoserV, c.Detail)
						}
					}
				}
			}
		}
	}
	if lost > 10 {
		t.Errorf("%d writes lost silently in all", lost)
	}
}
