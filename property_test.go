package rowsync_test

import (
	"bytes"
	"database/sql"
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
	"github.com/rowsync/rowsync/internal/testdb"
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

// propertySchema is the schema of the property test on each engine: one
// logical schema, so nodes of different engines can sync. tag's foreign
// key cascades on every engine (MySQL's cascades are captured from the
// parent's triggers, see mysql/cascade.go).
var propertySchema = map[string]string{
	"sqlite": `
CREATE TABLE parent(id INTEGER PRIMARY KEY, name TEXT, code INTEGER UNIQUE, score REAL);
CREATE TABLE child(id INTEGER PRIMARY KEY, pid INTEGER NOT NULL REFERENCES parent(id), note TEXT, n INTEGER);
CREATE TABLE tag(id INTEGER PRIMARY KEY, pid INTEGER REFERENCES parent(id) ON DELETE CASCADE, label TEXT);
CREATE TABLE pair(a INTEGER, b TEXT, x TEXT, y BLOB, PRIMARY KEY(a, b)) WITHOUT ROWID;`,
	"postgres": `
CREATE TABLE parent(id bigint PRIMARY KEY, name text, code bigint UNIQUE, score double precision);
CREATE TABLE child(id bigint PRIMARY KEY, pid bigint NOT NULL REFERENCES parent(id), note text, n bigint);
CREATE TABLE tag(id bigint PRIMARY KEY, pid bigint REFERENCES parent(id) ON DELETE CASCADE, label text);
CREATE TABLE pair(a bigint, b text, x text, y bytea, PRIMARY KEY(a, b));`,
	"mysql": `
CREATE TABLE parent(id BIGINT PRIMARY KEY, name TEXT, code BIGINT UNIQUE, score DOUBLE);
CREATE TABLE child(id BIGINT PRIMARY KEY, pid BIGINT NOT NULL, note TEXT, n BIGINT, FOREIGN KEY (pid) REFERENCES parent(id));
CREATE TABLE tag(id BIGINT PRIMARY KEY, pid BIGINT, label TEXT, FOREIGN KEY (pid) REFERENCES parent(id) ON DELETE CASCADE);
CREATE TABLE pair(a BIGINT, b VARCHAR(8), x TEXT, y LONGBLOB, PRIMARY KEY(a, b));`,
}

// propertyTables maps each table of the schema to its key and columns, for
// statements that name them all.
var propertyTables = map[string][2][]string{
	"parent": {{"id"}, {"id", "name", "code", "score"}},
	"child":  {{"id"}, {"id", "pid", "note", "n"}},
	"tag":    {{"id"}, {"id", "pid", "label"}},
	"pair":   {{"a", "b"}, {"a", "b", "x", "y"}},
}

func TestProperty(t *testing.T) {
	seeds := []uint64{1, 2, 3, uint64(time.Now().UnixNano())}
	steps := 1200
	if testing.Short() {
		seeds, steps = []uint64{1, uint64(time.Now().UnixNano())}, 300
	}
	runProperties(t, seeds, steps, "sqlite", "sqlite", "sqlite", "sqlite")
}

// runProperties runs the property test once per seed (or for the seed in
// ROWSYNC_SEED) over nodes of the given engines.
func runProperties(t *testing.T, seeds []uint64, steps int, engines ...string) {
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
			runProperty(t, seed, engines, steps)
		})
	}
}

// psite is one node of the property test: a site of any engine.
type psite struct {
	*site
	engine string
}

func newPropertySite(tb testing.TB, name, engine string) *psite {
	tb.Helper()
	return newEngineSite(tb, name, engine, propertySchema[engine])
}

// newEngineSite creates a database of the engine with the schema and
// initializes it as a node tracking every table.
func newEngineSite(tb testing.TB, name, engine, schema string) *psite {
	tb.Helper()
	addr := testdb.New(tb, engine)
	app := testdb.App(tb, addr)
	if _, err := app.Exec(schema); err != nil {
		tb.Fatalf("%s: schema: %v", engine, err)
	}
	db := openEngine(tb, addr)
	n, err := rowsync.Init(tb.Context(), db, rowsync.InitOptions{All: true, Name: name})
	if err != nil {
		tb.Fatal(err)
	}
	return &psite{site: &site{name: name + "(" + engine + ")", path: addr, db: db, app: app, node: n}, engine: engine}
}

// exec runs one application statement in tx. A statement refused by a
// constraint returns refused; on PostgreSQL it runs in a savepoint, so the
// transaction goes on as it does on the other engines.
func (s *psite) exec(tx *sql.Tx, q string, args []any) (refused bool, err error) {
	q = testdb.Rebind(s.engine, q)
	if s.engine != "postgres" {
		_, err = tx.Exec(q, args...)
		return testdb.IsConstraint(err), err
	}
	if _, err := tx.Exec("SAVEPOINT stmt"); err != nil {
		return false, err
	}
	if _, err = tx.Exec(q, args...); err != nil {
		if _, rerr := tx.Exec("ROLLBACK TO SAVEPOINT stmt"); rerr != nil {
			return false, rerr
		}
		return testdb.IsConstraint(err), err
	}
	_, err = tx.Exec("RELEASE SAVEPOINT stmt")
	return false, err
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

// readSnapshot reads every tracked row of a node through its database, in
// the canonical encoding of each column's class, so that nodes of
// different engines compare.
func readSnapshot(tb testing.TB, s *psite) snapshot {
	tb.Helper()
	snap := snapshot{}
	tx, err := s.db.Begin(tb.Context(), false)
	if err != nil {
		tb.Fatal(err)
	}
	defer tx.Rollback()
	for _, t := range s.node.Tables() {
		rows := map[string][]rowsync.Value{}
		err := tx.ScanRows(t, func(row []rowsync.Value) error {
			row = slices.Clone(row)
			for i, c := range t.Columns {
				row[i] = rowsync.Canonical(c.Class, row[i])
			}
			key, _ := t.SplitRow(row)
			rows[rowsync.FormatKey(key)] = row
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
		snap[t.Name] = rows
	}
	return snap
}

// sorted renders a table of a snapshot as text, one row per line in key
// order, every value with its kind.
func (snap snapshot) sorted(table string, skip func(key string) bool) []string {
	var out []string
	for key, row := range snap[table] {
		if skip(key) {
			continue
		}
		parts := make([]string, len(row))
		for i, v := range row {
			parts[i] = v.Kind.String() + " " + v.String()
		}
		out = append(out, key+": "+strings.Join(parts, ", "))
	}
	slices.Sort(out)
	return out
}

// record notes what a local statement did to a node's rows.
func (h *history) record(s *psite, node, step int, before, after snapshot) {
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
func (h *history) deleted(tb testing.TB, s *psite) {
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
	r      *rand.Rand
	node   int
	engine string
	n      int // a counter that makes every written value unique
}

// replace is the engine's statement that inserts a row or replaces the row
// with the same key: INSERT OR REPLACE on SQLite, REPLACE on MySQL (both
// also remove rows holding the row's unique values), an upsert setting
// every column on PostgreSQL (which has no REPLACE).
func (g *gen) replace(table string) string {
	kc := propertyTables[table]
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(kc[1])), ", ")
	switch g.engine {
	case "mysql":
		return fmt.Sprintf("REPLACE INTO %s VALUES (%s)", table, marks)
	case "postgres":
		var sets []string
		for _, c := range kc[1] {
			if !slices.Contains(kc[0], c) {
				sets = append(sets, c+" = excluded."+c)
			}
		}
		return fmt.Sprintf("INSERT INTO %s VALUES (%s) ON CONFLICT (%s) DO UPDATE SET %s", table, marks, strings.Join(kc[0], ", "), strings.Join(sets, ", "))
	}
	return fmt.Sprintf("INSERT OR REPLACE INTO %s VALUES (%s)", table, marks)
}

// upsertName inserts a parent or, if its key exists, sets its name only.
func (g *gen) upsertName() string {
	if g.engine == "mysql" {
		return `INSERT INTO parent(id, name, score) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE name = VALUES(name)`
	}
	return `INSERT INTO parent(id, name, score) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET name = excluded.name`
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
			return g.replace("parent"), []any{id, g.text(), g.code(), g.real()}
		case 3:
			return g.upsertName(), []any{id, g.text(), g.real()}
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
			return g.replace("child"), []any{id, g.parentID(), g.text(), g.num()}
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
			return g.replace("tag"), []any{id, g.parentID(), g.text()}
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
			return g.replace("pair"), []any{a, b, g.text(), g.blob()}
		case 3:
			return `UPDATE pair SET x = ? WHERE a = ? AND b = ?`, []any{g.text(), a, b}
		case 4:
			return `UPDATE pair SET y = ?, b = ? WHERE a = ? AND b = ?`, []any{g.blob(), []string{"x", "y", "z", ""}[r.IntN(4)], a, b}
		default:
			return `DELETE FROM pair WHERE a = ? AND b = ?`, []any{a, b}
		}
	}
}

func runProperty(t *testing.T, seed uint64, engines []string, steps int) {
	nnodes := len(engines)
	t.Logf("seed %d (rerun with ROWSYNC_SEED=%d)", seed, seed)
	defer func() {
		if t.Failed() {
			t.Logf("failed with seed %d: rerun with ROWSYNC_SEED=%d (and ROWSYNC_TRACE=1 to see every step)", seed, seed)
		}
	}()
	trace := os.Getenv("ROWSYNC_TRACE") != ""
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	sites := make([]*psite, nnodes)
	gens := make([]*gen, nnodes)
	for i, e := range engines {
		sites[i] = newPropertySite(t, string(rune('a'+i)), e)
		sites[i].node.BatchRows = 2 + r.IntN(8)
		gens[i] = &gen{r: r, node: i, engine: e}
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
			if refusedBy, err := s.exec(tx, q, args); err != nil {
				if !refusedBy {
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
		want := final[0].sorted(tb.Name, skip)
		for i, s := range sites[1:] {
			if got := final[i+1].sorted(tb.Name, skip); !slices.Equal(got, want) {
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
