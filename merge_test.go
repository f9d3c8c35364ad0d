package rowsync_test

import (
	"bytes"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rowsync/rowsync"
	"github.com/rowsync/rowsync/rowsynctest"
	"github.com/rowsync/rowsync/sqlite"
)

// The merge rules of SPEC §2, one by one, end to end over SQLite nodes
// synced in-process.

const mergeSchema = `
CREATE TABLE item(id INTEGER PRIMARY KEY, a TEXT, b TEXT, code INTEGER UNIQUE);
CREATE TABLE parent(id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE child(id INTEGER PRIMARY KEY, pid INTEGER NOT NULL REFERENCES parent(id), note TEXT);`

// site is one node of a test: its database, an application connection
// of its own, and the node.
type site struct {
	name string
	path string
	db   rowsync.Database
	app  *sql.DB
	node *rowsync.Node
}

// newSite creates a SQLite file with the schema and initializes it as a
// node tracking every table.
func newSite(tb testing.TB, name, schema string) *site {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), name+".db")
	db, err := sqlite.Open(path, true)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	app, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)")
	if err != nil {
		tb.Fatal(err)
	}
	app.SetMaxOpenConns(1)
	tb.Cleanup(func() { app.Close() })
	if _, err := app.Exec(schema); err != nil {
		tb.Fatal(err)
	}
	n, err := rowsync.Init(tb.Context(), db, rowsync.InitOptions{All: true, Name: name})
	if err != nil {
		tb.Fatal(err)
	}
	return &site{name: name, path: path, db: db, app: app, node: n}
}

// newSites creates n nodes named a, b, c… with the same schema.
func newSites(tb testing.TB, n int, schema string) []*site {
	tb.Helper()
	var out []*site
	for i := range n {
		out = append(out, newSite(tb, string(rune('a'+i)), schema))
	}
	return out
}

// exec runs SQL as the application.
func (s *site) exec(tb testing.TB, q string, args ...any) {
	tb.Helper()
	if _, err := s.app.Exec(q, args...); err != nil {
		tb.Fatalf("%s: %s: %v", s.name, q, err)
	}
}

// rows returns a table's rows as the application sees them: every value
// with its storage class and bytes, ordered by key.
func (s *site) rows(tb testing.TB, table string) []string {
	tb.Helper()
	t, ok := s.node.Table(table)
	if !ok {
		tb.Fatalf("%s: table %s is not tracked", s.name, table)
	}
	return selectRows(tb, s.app, t, nil)
}

// selectRows reads a table with SELECT, leaving out rows whose key skip
// reports true.
func selectRows(tb testing.TB, db *sql.DB, t *rowsync.Table, skip func(key string) bool) []string {
	tb.Helper()
	var exprs, order []string
	for _, c := range t.Columns {
		q := quoteName(c.Name)
		exprs = append(exprs, fmt.Sprintf("typeof(%[1]s) || ':' || quote(%[1]s) || ':' || hex(%[1]s)", q))
	}
	for _, k := range t.Key {
		order = append(order, quoteName(t.Columns[k].Name))
	}
	q := fmt.Sprintf("SELECT %s, %s FROM %s ORDER BY %s", strings.Join(order, ", "), strings.Join(exprs, ", "), quoteName(t.Name), strings.Join(order, ", "))
	rs, err := db.Query(q)
	if err != nil {
		tb.Fatalf("%s: %v", q, err)
	}
	defer rs.Close()
	var out []string
	for rs.Next() {
		key := make([]any, len(t.Key))
		vals := make([]string, len(t.Columns))
		ptrs := make([]any, 0, len(key)+len(vals))
		for i := range key {
			ptrs = append(ptrs, &key[i])
		}
		for i := range vals {
			ptrs = append(ptrs, &vals[i])
		}
		if err := rs.Scan(ptrs...); err != nil {
			tb.Fatal(err)
		}
		if skip != nil && skip(keyOf(tb, key)) {
			continue
		}
		out = append(out, strings.Join(vals, " "))
	}
	if err := rs.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// keyOf renders a key as scanned from the database like
// rowsync.FormatKey does.
func keyOf(tb testing.TB, key []any) string {
	vs := make([]rowsync.Value, len(key))
	for i, k := range key {
		v, err := rowsync.ValueOf(k)
		if err != nil {
			tb.Fatal(err)
		}
		vs[i] = v
	}
	return rowsync.FormatKey(vs)
}

func quoteName(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func (s *site) conflicts(tb testing.TB) []rowsync.Conflict {
	tb.Helper()
	cs, err := s.node.Conflicts(tb.Context())
	if err != nil {
		tb.Fatal(err)
	}
	return cs
}

func (s *site) held(tb testing.TB) []rowsync.Held {
	tb.Helper()
	tx, err := s.db.Begin(tb.Context(), false)
	if err != nil {
		tb.Fatal(err)
	}
	defer tx.Rollback()
	hs, err := tx.HeldChanges()
	if err != nil {
		tb.Fatal(err)
	}
	return hs
}

// setClock sets the node's hybrid clock, as a node whose wall clock runs
// ahead would have it.
func (s *site) setClock(tb testing.TB, hlc int64) {
	tb.Helper()
	tx, err := s.db.Begin(tb.Context(), true)
	if err != nil {
		tb.Fatal(err)
	}
	defer tx.Rollback()
	st, err := tx.LoadState()
	if err != nil {
		tb.Fatal(err)
	}
	st.Clock = hlc
	if err := tx.SaveState(st); err != nil {
		tb.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
}

// syncSites runs a full sync session of a with b.
func syncSites(tb testing.TB, a, b *site) *rowsync.SyncResult {
	tb.Helper()
	res, err := a.node.Sync(tb.Context(), b.node, rowsync.SyncOptions{})
	if err != nil {
		tb.Fatalf("sync %s with %s: %v", a.name, b.name, err)
	}
	return res
}

// converged fails tb unless every site has the same rows as the first in
// every table.
func converged(tb testing.TB, sites ...*site) {
	tb.Helper()
	for _, t := range sites[0].node.Tables() {
		want := sites[0].rows(tb, t.Name)
		for _, s := range sites[1:] {
			if got := s.rows(tb, t.Name); !slices.Equal(got, want) {
				tb.Errorf("table %s: %s has\n%q\n%s has\n%q", t.Name, s.name, got, sites[0].name, want)
			}
		}
	}
}

// laterMilli waits until the wall clock has moved on by a few
// milliseconds, so that the next captured write is later by its clock
// than every write before.
func laterMilli(tb testing.TB) {
	tb.Helper()
	start := time.Now().UnixMilli()
	for time.Now().UnixMilli() < start+3 {
	}
}

// row returns the row of a table with id as the application sees it, or "".
func (s *site) row(tb testing.TB, table string, id int64) string {
	tb.Helper()
	t, _ := s.node.Table(table)
	rs := selectRows(tb, s.app, t, func(key string) bool { return key != fmt.Sprint(id) })
	if len(rs) == 0 {
		return ""
	}
	return rs[0]
}

func text(s string) rowsync.Value { return rowsync.TextValue(s) }

// findConflict returns the conflicts of a kind on a row.
func findConflicts(cs []rowsync.Conflict, kind, table string, id int64) []rowsync.Conflict {
	var out []rowsync.Conflict
	for _, c := range cs {
		if c.Kind == kind && c.Table == table && rowsync.FormatKey(c.Key) == fmt.Sprint(id) {
			out = append(out, c)
		}
	}
	return out
}

func TestConcurrentEditsOfDifferentColumnsBothSurvive(t *testing.T) {
	s := newSites(t, 2, mergeSchema)
	a, b := s[0], s[1]
	a.exec(t, `INSERT INTO item VALUES (1, 'a0', 'b0', NULL)`)
	syncSites(t, a, b)
	a.exec(t, `UPDATE item SET a = 'aA' WHERE id = 1`)
	b.exec(t, `UPDATE item SET b = 'bB' WHERE id = 1`)
	syncSites(t, a, b)
	converged(t, a, b)
	if got, want := a.row(t, "item", 1), "integer:1:31 text:'aA':6141 text:'bB':6242 null:NULL:"; got != want {
		t.Errorf("row 1: got %q, want %q", got, want)
	}
	for _, x := range s {
		if cs := x.conflicts(t); len(cs) != 0 {
			t.Errorf("%s: conflicts for edits of different columns: %v", x.name, cs)
		}
	}
}

func TestSameColumnLaterWriteWins(t *testing.T) {
	tests := []struct {
		name      string
		initiator int // which node runs the sync
	}{
		{"earlier writer syncs", 0},
		{"later writer syncs", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSites(t, 2, mergeSchema)
			a, b := s[0], s[1]
			a.exec(t, `INSERT INTO item VALUES (1, 'a0', 'b0', NULL)`)
			syncSites(t, a, b)
			a.exec(t, `UPDATE item SET a = 'aA' WHERE id = 1`)
			laterMilli(t)
			b.exec(t, `UPDATE item SET a = 'aB' WHERE id = 1`)
			syncSites(t, s[tt.initiator], s[1-tt.initiator])
			converged(t, a, b)
			if got, want := a.row(t, "item", 1), "integer:1:31 text:'aB':6142 text:'b0':6230 null:NULL:"; got != want {
				t.Errorf("row 1: got %q, want %q", got, want)
			}
			// The losing value is logged where it was overwritten: on a,
			// which wrote it, and on b if it got there (when a pushed it).
			logged := []*site{a}
			if tt.initiator == 0 {
				logged = append(logged, b)
			}
			for _, x := range logged {
				cs := findConflicts(x.conflicts(t), rowsync.ConflictUpdate, "item", 1)
				if len(cs) != 1 {
					t.Errorf("%s: update conflicts of item 1: got %v, want 1", x.name, cs)
					continue
				}
				c := cs[0]
				if c.Column != "a" || !c.Loser.Equal(text("aA")) || !c.Winner.Equal(text("aB")) ||
					c.LoserV.Node != a.node.ID() || c.WinnerV.Node != b.node.ID() || !c.WinnerV.After(c.LoserV) {
					t.Errorf("%s: conflict %s: winner %s (%s) loser %s (%s), want column a, winner 'aB' by b, loser 'aA' by a",
						x.name, c.String(), c.Winner, c.WinnerV, c.Loser, c.LoserV)
				}
			}
		})
	}
}

func TestLaterUpdateBringsDeletedRowBackWhole(t *testing.T) {
	s := newSites(t, 3, mergeSchema)
	a, b, c := s[0], s[1], s[2]
	a.exec(t, `INSERT INTO item VALUES (1, 'a0', 'b0', 7)`)
	syncSites(t, a, b)
	syncSites(t, a, c)
	// a edits b and deletes the row: only a (and then c) knows bA.
	a.exec(t, `UPDATE item SET b = 'bA' WHERE id = 1`)
	a.exec(t, `DELETE FROM item WHERE id = 1`)
	syncSites(t, c, a)
	if got := c.row(t, "item", 1); got != "" {
		t.Fatalf("c still has the deleted row: %q", got)
	}
	laterMilli(t)
	b.exec(t, `UPDATE item SET a = 'aB' WHERE id = 1`)
	syncSites(t, b, c)
	syncSites(t, a, b)
	syncSites(t, c, a)
	converged(t, a, b, c)
	if got, want := a.row(t, "item", 1), "integer:1:31 text:'aB':6142 text:'bA':6241 integer:7:37"; got != want {
		t.Errorf("row 1: got %q, want %q", got, want)
	}
}

func TestLaterDeleteRemovesUpdatedRow(t *testing.T) {
	s := newSites(t, 3, mergeSchema)
	a, b, c := s[0], s[1], s[2]
	a.exec(t, `INSERT INTO item VALUES (1, 'a0', 'b0', NULL), (2, 'keep', NULL, NULL)`)
	syncSites(t, a, b)
	syncSites(t, b, c)
	a.exec(t, `UPDATE item SET a = 'aA' WHERE id = 1`)
	laterMilli(t)
	b.exec(t, `DELETE FROM item WHERE id = 1`)
	syncSites(t, a, c)
	syncSites(t, b, c)
	syncSites(t, a, b)
	converged(t, a, b, c)
	if got := a.row(t, "item", 1); got != "" {
		t.Errorf("row 1 after a later delete: %q", got)
	}
	// The update that the delete had not seen is not lost silently.
	var found bool
	for _, x := range s {
		for _, c := range findConflicts(x.conflicts(t), rowsync.ConflictDeleteWins, "item", 1) {
			if c.Loser.Equal(text("aA")) && c.Column == "a" {
				found = true
			}
		}
	}
	if !found {
		t.Error("no node logged the update 'aA' that lost to the delete")
	}
}

func TestValueOverwrittenByADeletedRowsValueIsLogged(t *testing.T) {
	s := newSites(t, 3, mergeSchema)
	upd, loser, del := s[0], s[1], s[2]
	upd.exec(t, `INSERT INTO item VALUES (1, 'a0', 'b0', NULL)`)
	syncSites(t, upd, loser)
	syncSites(t, upd, del)
	loser.exec(t, `UPDATE item SET b = 'bL' WHERE id = 1`)
	laterMilli(t)
	del.exec(t, `UPDATE item SET b = 'bD' WHERE id = 1; DELETE FROM item WHERE id = 1`)
	laterMilli(t)
	upd.exec(t, `UPDATE item SET a = 'aU' WHERE id = 1`)
	// loser sees upd's update first, then del's deleted row, whose b is
	// newer than its own: the row lives on (upd's update is the newest
	// write) with b from del, and bL is overwritten on arrival.
	for _, p := range []*site{upd, del} {
		if _, err := loser.node.Sync(t.Context(), p.node, rowsync.SyncOptions{PullOnly: true}); err != nil {
			t.Fatal(err)
		}
	}
	syncSites(t, loser, upd)
	syncSites(t, loser, del)
	converged(t, s...)
	if got, want := upd.row(t, "item", 1), "integer:1:31 text:'aU':6155 text:'bD':6244 null:NULL:"; got != want {
		t.Errorf("row 1: got %q, want %q", got, want)
	}
	var logged bool
	for _, x := range s {
		for _, c := range findConflicts(x.conflicts(t), rowsync.ConflictUpdate, "item", 1) {
			if c.Column == "b" && c.Loser.Equal(text("bL")) && c.Winner.Equal(text("bD")) {
				logged = true
			}
		}
	}
	if !logged {
		t.Error("bL lost to bD, but no node logged it")
	}
}

func TestSwapOfUniqueValues(t *testing.T) {
	s := newSites(t, 2, mergeSchema)
	a, b := s[0], s[1]
	a.exec(t, `INSERT INTO item VALUES (1, 'x', NULL, 1), (2, 'y', NULL, 2)`)
	syncSites(t, a, b)
	a.exec(t, `BEGIN; UPDATE item SET code = -1 WHERE id = 1; UPDATE item SET code = 1 WHERE id = 2; UPDATE item SET code = 2 WHERE id = 1; COMMIT`)
	res := syncSites(t, a, b)
	converged(t, a, b)
	if got, want := b.rows(t, "item"), []string{"integer:1:31 text:'x':78 null:NULL: integer:2:32", "integer:2:32 text:'y':79 null:NULL: integer:1:31"}; !slices.Equal(got, want) {
		t.Errorf("b after the swap: got %q, want %q", got, want)
	}
	if hs := b.held(t); len(hs) != 0 || res.Pushed.Held != 0 {
		t.Errorf("b holds %d changes after the swap: %v", len(hs), hs)
	}
	if cs := findConflicts(b.conflicts(t), rowsync.ConflictConstraint, "item", 1); len(cs) != 0 {
		t.Errorf("b: constraint conflicts after the swap: %v", cs)
	}
}

// A swap whose two rows arrive in different batches: each is held by its
// own batch, and the retry at the end of the sync applies them together.
func TestSwapOfUniqueValuesAcrossBatches(t *testing.T) {
	s := newSites(t, 2, mergeSchema)
	a, b := s[0], s[1]
	a.node.BatchRows = 1
	a.exec(t, `INSERT INTO item VALUES (1, 'x', NULL, 1), (2, 'y', NULL, 2)`)
	syncSites(t, a, b)
	a.exec(t, `BEGIN; UPDATE item SET code = -1 WHERE id = 1; UPDATE item SET code = 1 WHERE id = 2; UPDATE item SET code = 2 WHERE id = 1; COMMIT`)
	res := syncSites(t, a, b)
	if res.Pushed.Batches < 2 {
		t.Fatalf("the swap came in %d batches, want 2 or more", res.Pushed.Batches)
	}
	converged(t, a, b)
	if hs := b.held(t); len(hs) != 0 || res.Pushed.Held != 0 {
		t.Errorf("b holds %d changes after the swap: %v", len(hs), hs)
	}
	for _, c := range b.conflicts(t) {
		if c.Kind == rowsync.ConflictConstraint && !c.Resolved {
			t.Errorf("b: unresolved constraint conflict after the swap: %v", c)
		}
	}
}

func TestIndependentInsertsOfOneKeyMerge(t *testing.T) {
	s := newSites(t, 2, mergeSchema)
	a, b := s[0], s[1]
	a.exec(t, `INSERT INTO item VALUES (5, 'aA', 'bA', NULL)`)
	laterMilli(t)
	b.exec(t, `INSERT INTO item VALUES (5, 'aB', 'bB', NULL)`)
	laterMilli(t)
	a.exec(t, `UPDATE item SET b = 'bA2' WHERE id = 5`)
	syncSites(t, a, b)
	converged(t, a, b)
	// Per column: a from b's later insert, b from a's later update.
	if got, want := a.row(t, "item", 5), "integer:5:35 text:'aB':6142 text:'bA2':624132 null:NULL:"; got != want {
		t.Errorf("row 5: got %q, want %q", got, want)
	}
	// Both nodes see the collision; each losing value is logged at least
	// where it was overwritten, on the node that wrote it.
	for _, tt := range []struct {
		x     *site
		loser string
	}{{a, `a="aA"`}, {b, `b="bB"`}} {
		if cs := findConflicts(tt.x.conflicts(t), rowsync.ConflictKeyCollision, "item", 5); len(cs) != 1 {
			t.Errorf("%s: key-collision conflicts of item 5: got %v, want 1", tt.x.name, cs)
		}
		losers := map[string]bool{}
		for _, c := range findConflicts(tt.x.conflicts(t), rowsync.ConflictUpdate, "item", 5) {
			losers[c.Column+"="+c.Loser.String()] = true
		}
		if !losers[tt.loser] {
			t.Errorf("%s: losing values logged: %v, want %s", tt.x.name, losers, tt.loser)
		}
	}
}

func TestChildOfConcurrentlyDeletedParentIsHeld(t *testing.T) {
	s := newSites(t, 2, mergeSchema)
	a, b := s[0], s[1]
	a.exec(t, `INSERT INTO parent VALUES (1, 'p'), (2, 'other')`)
	syncSites(t, a, b)
	a.exec(t, `DELETE FROM parent WHERE id = 1`)
	b.exec(t, `INSERT INTO child VALUES (10, 1, 'orphan'), (11, 2, 'fine')`)

	res, err := b.node.Sync(t.Context(), a.node, rowsync.SyncOptions{})
	if err != nil {
		t.Fatalf("sync with a child of a deleted parent: %v", err)
	}
	// a cannot insert the child; b cannot delete the parent.
	if res.Pushed.Held != 1 || res.Pulled.Held != 1 {
		t.Errorf("held after the sync: on a %d, on b %d, want 1 and 1", res.Pushed.Held, res.Pulled.Held)
	}
	if res.Pushed.NewConflicts == 0 || res.Pulled.NewConflicts == 0 {
		t.Errorf("new conflicts: on a %d, on b %d, want some on both", res.Pushed.NewConflicts, res.Pulled.NewConflicts)
	}
	for _, tt := range []struct {
		x     *site
		table string
		id    int64
	}{{a, "child", 10}, {b, "parent", 1}} {
		hs := tt.x.held(t)
		if len(hs) != 1 || hs[0].Table != tt.table || rowsync.FormatKey(hs[0].Key) != fmt.Sprint(tt.id) {
			t.Errorf("%s holds %v, want %s %d", tt.x.name, hs, tt.table, tt.id)
		}
		cs := findConflicts(tt.x.conflicts(t), rowsync.ConflictConstraint, tt.table, tt.id)
		if len(cs) != 1 || cs[0].Resolved {
			t.Errorf("%s: constraint conflicts of %s %d: %v, want one unresolved", tt.x.name, tt.table, tt.id, cs)
		}
	}
	if got := a.row(t, "child", 11); got == "" {
		t.Error("the child of the other parent did not reach a")
	}

	// Held changes are retried at every sync: a later edit of the parent
	// brings it back, and the child with it.
	laterMilli(t)
	b.exec(t, `UPDATE parent SET name = 'p again' WHERE id = 1`)
	syncSites(t, b, a)
	syncSites(t, a, b)
	converged(t, a, b)
	if got := a.row(t, "child", 10); got == "" {
		t.Error("the held child was not applied once its parent came back")
	}
	for _, x := range s {
		if hs := x.held(t); len(hs) != 0 {
			t.Errorf("%s still holds %v", x.name, hs)
		}
		for _, c := range x.conflicts(t) {
			if c.Kind == rowsync.ConflictConstraint && !c.Resolved {
				t.Errorf("%s: constraint conflict %s not resolved", x.name, c.String())
			}
		}
	}
}

func TestHeldRowStaysListedUntilNoChangeOfItIsHeld(t *testing.T) {
	s := newSites(t, 3, mergeSchema)
	x, b, c := s[0], s[1], s[2]
	x.exec(t, `INSERT INTO parent VALUES (1, 'p1'), (2, 'p2'), (3, 'p3')`)
	syncSites(t, x, b)
	syncSites(t, x, c)
	x.exec(t, `DELETE FROM parent WHERE id IN (1, 3)`)
	b.exec(t, `INSERT INTO child VALUES (10, 1, 'from b')`)
	syncSites(t, b, c)
	laterMilli(t)
	c.exec(t, `UPDATE child SET pid = 3 WHERE id = 10`)
	push := func(from *site) {
		t.Helper()
		if _, err := from.node.Sync(t.Context(), x.node, rowsync.SyncOptions{PushOnly: true}); err != nil {
			t.Fatal(err)
		}
	}
	// x holds child 10 twice: from b (parent 1) and from c (parent 3).
	push(b)
	push(c)
	if hs := x.held(t); len(hs) != 2 {
		t.Fatalf("x holds %v, want child 10 from b and from c", hs)
	}
	// Parent 1 comes back: b's change applies, c's (parent 3) still not.
	laterMilli(t)
	b.exec(t, `UPDATE parent SET name = 'p1 again' WHERE id = 1`)
	push(b)
	hs := x.held(t)
	if len(hs) != 1 || hs[0].Peer != c.node.ID() {
		t.Fatalf("x holds %v, want child 10 from c", hs)
	}
	var unresolved int
	for _, cf := range findConflicts(x.conflicts(t), rowsync.ConflictConstraint, "child", 10) {
		if !cf.Resolved {
			unresolved++
		}
	}
	if unresolved == 0 {
		t.Error("x still holds a change of child 10, but lists no unresolved conflict of it")
	}
}

func TestCascadeOnARowAppliedInTheSameBatchIsCaptured(t *testing.T) {
	const schema = `CREATE TABLE parent(id INTEGER PRIMARY KEY, name TEXT);
		CREATE TABLE tag(id INTEGER PRIMARY KEY, pid INTEGER REFERENCES parent(id) ON DELETE CASCADE, label TEXT);`
	s := newSites(t, 2, schema)
	a, b := s[0], s[1]
	a.exec(t, `INSERT INTO parent VALUES (5, 'five'), (7, 'seven'); INSERT INTO tag VALUES (3, 7, 'x')`)
	syncSites(t, a, b)
	// a moves the tag to parent 5, deletes it, then deletes parent 5.
	a.exec(t, `UPDATE tag SET pid = 5 WHERE id = 3; DELETE FROM tag WHERE id = 3; DELETE FROM parent WHERE id = 5`)
	// b edits the tag later: the edit brings the row back whole, with
	// pid 5; applying a's delete of parent 5 in the same batch then
	// cascades to it on b. That cascade is b's own write.
	laterMilli(t)
	b.exec(t, `UPDATE tag SET label = 'b' WHERE id = 3`)
	if _, err := b.node.Sync(t.Context(), a.node, rowsync.SyncOptions{PullOnly: true}); err != nil {
		t.Fatal(err)
	}
	if got := b.row(t, "tag", 3); got != "" {
		t.Fatalf("b: tag 3 after its parent was deleted: %q", got)
	}
	syncSites(t, b, a)
	converged(t, a, b)
	// b's bookkeeping agrees with its table: a new insert of the key
	// reaches it.
	laterMilli(t)
	a.exec(t, `INSERT INTO tag VALUES (3, 7, 'again')`)
	syncSites(t, a, b)
	converged(t, a, b)
	if got, want := b.row(t, "tag", 3), "integer:3:33 integer:7:37 text:'again':616761696E"; got != want {
		t.Errorf("b: tag 3 after a inserted it again: got %q, want %q", got, want)
	}
}

// An incoming update set aside by a constraint, retried at the checkpoint
// after a later row of the batch (a parent's delete) cascaded to the same
// row here: the retry updated a row no longer in the table, stored its
// bookkeeping as alive, and EndApply took the cascade's delete for the
// update's echo. The row was gone here, alive on the sender, and nothing
// was held or logged. It is held instead and merged after the next fold.
func TestCascadeBeforeRetriedUpdate(t *testing.T) {
	const schema = `CREATE TABLE parent(id INTEGER PRIMARY KEY, name TEXT);
		CREATE TABLE tag(id INTEGER PRIMARY KEY, pid INTEGER REFERENCES parent(id) ON DELETE CASCADE, label TEXT UNIQUE);`
	s := newSites(t, 2, schema)
	a, b := s[0], s[1]
	a.exec(t, `INSERT INTO parent VALUES (1, 'p'), (2, 'q'); INSERT INTO tag VALUES (10, 1, 't'), (11, 1, 'L')`)
	syncSites(t, a, b)
	// b moves tag 10 to parent 2, deletes parent 1 (which cascades to tag
	// 11), then gives tag 10 the label tag 11 had. On a, the update of tag
	// 10 comes first and is refused (tag 11 still holds 'L'); the deletes
	// of tag 11 and parent 1 follow, and parent 1's cascades to tag 10,
	// still under it here.
	b.exec(t, `UPDATE tag SET pid = 2 WHERE id = 10; DELETE FROM parent WHERE id = 1; UPDATE tag SET label = 'L' WHERE id = 10`)
	syncSites(t, a, b)
	syncSites(t, a, b)
	converged(t, a, b)
	if a.row(t, "tag", 10) == "" {
		// The cascade won: b's update of tag 10 is a logged loser.
		logged := false
		for _, c := range a.conflicts(t) {
			if c.Table == "tag" && c.Kind != rowsync.ConflictConstraint && c.Loser.Equal(rowsync.TextValue("L")) {
				logged = true
			}
		}
		if !logged {
			t.Errorf("tag 10 is gone on a, but b's label is no logged loser there: %v", a.conflicts(t))
		}
	}
	if hs := a.held(t); len(hs) != 0 {
		t.Errorf("a still holds %v", hs)
	}
}

func TestClockSkew(t *testing.T) {
	s := newSites(t, 2, mergeSchema)
	a, b := s[0], s[1]
	a.exec(t, `INSERT INTO item VALUES (1, 'a0', 'b0', NULL)`)
	syncSites(t, a, b)
	// a's clock runs an hour ahead: its next write is stamped then.
	future := rowsync.HLCFromWall(time.Now().Add(time.Hour).UnixMilli())
	a.setClock(t, future)
	a.exec(t, `UPDATE item SET a = 'future' WHERE id = 1`)
	syncSites(t, a, b)
	if got, want := b.row(t, "item", 1), "integer:1:31 text:'future':667574757265 text:'b0':6230 null:NULL:"; got != want {
		t.Fatalf("b after a's write: got %q, want %q", got, want)
	}
	// b writes after it saw a's version: its write must win although its
	// wall clock is an hour behind that version.
	b.exec(t, `UPDATE item SET a = 'later' WHERE id = 1`)
	syncSites(t, b, a)
	converged(t, a, b)
	if got, want := a.row(t, "item", 1), "integer:1:31 text:'later':6C61746572 text:'b0':6230 null:NULL:"; got != want {
		t.Errorf("a after b's later write: got %q, want %q", got, want)
	}
	for _, x := range s {
		if cs := findConflicts(x.conflicts(t), rowsync.ConflictUpdate, "item", 1); len(cs) != 0 {
			t.Errorf("%s: b's write had seen a's, yet conflicts were logged: %v", x.name, cs)
		}
	}
	// b's clock has moved past a's.
	st, err := b.node.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if clock, _ := time.Parse(time.RFC3339Nano, st.Clock); clock.UnixMilli() < future>>16 {
		t.Errorf("b's clock %s is behind the version it received (%s)", st.Clock, time.UnixMilli(future>>16).UTC())
	}
}

// streamOf returns the change stream from sends to to.
func streamOf(tb testing.TB, from, to *site) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if _, err := from.node.Send(tb.Context(), &buf, to.node.Info(), nil); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func TestInterruptedSyncResumes(t *testing.T) {
	const rows, batch = 20, 3
	// Measure the stream once.
	x := newSites(t, 2, mergeSchema)
	x[0].node.BatchRows = batch
	x[0].exec(t, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20) INSERT INTO item SELECT i, 'a' || i, NULL, NULL FROM n`)
	size := int64(len(streamOf(t, x[0], x[1])))
	for _, dir := range []string{"pull", "push"} {
		for _, cut := range []int64{1, size / 4, size / 2, 3 * size / 4, size - 1} {
			t.Run(fmt.Sprintf("%s cut at %d of %d bytes", dir, cut, size), func(t *testing.T) {
				s := newSites(t, 2, mergeSchema)
				a, b := s[0], s[1]
				a.node.BatchRows = batch
				a.exec(t, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20) INSERT INTO item SELECT i, 'a' || i, NULL, NULL FROM n`)
				var err error
				if dir == "pull" {
					_, err = b.node.Sync(t.Context(), &rowsynctest.CutPeer{Peer: a.node, PullAfter: cut}, rowsync.SyncOptions{PullOnly: true})
				} else {
					_, err = a.node.Sync(t.Context(), &rowsynctest.CutPeer{Peer: b.node, PushAfter: cut}, rowsync.SyncOptions{PushOnly: true})
				}
				if err == nil {
					t.Fatal("a sync over a link cut mid-stream succeeded")
				}
				// b has the rows of the batches committed before the cut:
				// a prefix of a's rows, a whole number of batches.
				got := b.rows(t, "item")
				want := a.rows(t, "item")
				if len(got)%batch != 0 && len(got) != rows {
					t.Errorf("b has %d rows after the cut, not a whole number of batches of %d", len(got), batch)
				}
				if !slices.Equal(got, want[:min(len(got), len(want))]) {
					t.Errorf("b's rows are not a prefix of a's: %q", got)
				}
				if hs := b.held(t); len(hs) != 0 {
					t.Errorf("b holds %v", hs)
				}
				res := syncSites(t, b, a)
				converged(t, a, b)
				if res.Pulled.Rows > int64(rows-len(got)) {
					t.Errorf("the resumed sync received %d rows, want at most the %d missing", res.Pulled.Rows, rows-len(got))
				}
			})
		}
	}
}

func TestReceiveIsIdempotentAndCommutative(t *testing.T) {
	s := newSites(t, 5, mergeSchema)
	o, a, c, d1, d2 := s[0], s[1], s[2], s[3], s[4]
	o.exec(t, `INSERT INTO parent VALUES (1, 'p1'), (2, 'p2'), (3, 'p3');
		INSERT INTO child VALUES (10, 1, 'c10'), (11, 2, 'c11');
		INSERT INTO item VALUES (1, 'a1', 'b1', 1), (2, 'a2', 'b2', 2), (3, 'a3', 'b3', 3)`)
	for _, x := range s[1:] {
		syncSites(t, o, x)
	}
	a.exec(t, `UPDATE item SET a = 'A' WHERE id = 1; DELETE FROM item WHERE id = 2; DELETE FROM child WHERE id = 11;
		INSERT INTO parent VALUES (4, 'p4 from a'); UPDATE parent SET name = 'pA' WHERE id = 1`)
	laterMilli(t)
	c.exec(t, `UPDATE item SET a = 'C', b = 'bC' WHERE id = 1; UPDATE item SET b = 'bC' WHERE id = 2;
		INSERT INTO child VALUES (12, 3, 'c12'); INSERT INTO parent VALUES (4, 'p4 from c'); DELETE FROM item WHERE id = 3`)
	sa, sc := streamOf(t, a, d1), streamOf(t, c, d1)
	receive := func(x *site, stream []byte) *rowsync.ReceiveResult {
		t.Helper()
		res, err := x.node.Receive(t.Context(), bytes.NewReader(stream), rowsync.NodeInfo{})
		if err != nil {
			t.Fatalf("%s: receive: %v", x.name, err)
		}
		return res
	}
	if res := receive(d1, sa); res.Changed == 0 {
		t.Fatalf("d1: first receive changed nothing: %+v", res)
	}
	before := map[string][]string{}
	for _, tb := range d1.node.Tables() {
		before[tb.Name] = d1.rows(t, tb.Name)
	}
	conflicts := len(d1.conflicts(t))
	if res := receive(d1, sa); res.Changed != 0 || res.NewConflicts != 0 {
		t.Errorf("d1: the same stream again changed %d rows, %d new conflicts", res.Changed, res.NewConflicts)
	}
	for _, tb := range d1.node.Tables() {
		if got := d1.rows(t, tb.Name); !slices.Equal(got, before[tb.Name]) {
			t.Errorf("d1: %s changed by the same stream again", tb.Name)
		}
	}
	if got := len(d1.conflicts(t)); got != conflicts {
		t.Errorf("d1: conflicts %d after the same stream again, %d before", got, conflicts)
	}
	// The other order gives the same database.
	receive(d1, sc)
	receive(d2, sc)
	receive(d2, sa)
	receive(d2, sc)
	converged(t, d1, d2)
	if got, want := d1.row(t, "item", 1), "integer:1:31 text:'C':43 text:'bC':6243 integer:1:31"; got != want {
		t.Errorf("item 1: got %q, want %q", got, want)
	}
}

func TestNoSendBack(t *testing.T) {
	s := newSites(t, 3, mergeSchema)
	a, b, c := s[0], s[1], s[2]
	a.exec(t, `INSERT INTO parent VALUES (1, 'p'); INSERT INTO child VALUES (1, 1, 'c'); INSERT INTO item VALUES (1, 'x', 'y', 1)`)
	a.exec(t, `INSERT INTO parent VALUES (2, 'q'); DELETE FROM parent WHERE id = 2`)
	res, err := a.node.Sync(t.Context(), b.node, rowsync.SyncOptions{PushOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Pushed.Rows != 4 {
		t.Errorf("pushed %d rows, want 4", res.Pushed.Rows)
	}
	res = syncSites(t, b, a)
	if res.Pushed.Rows != 0 || res.Pulled.Rows != 0 {
		t.Errorf("b synced back with a: pushed %+v pulled %+v, want 0 rows each way", res.Pushed, res.Pulled)
	}
	// Multi-hop: c gets a's rows through b.
	syncSites(t, c, b)
	converged(t, a, b, c)
	res = syncSites(t, c, b)
	if res.Pushed.Rows != 0 || res.Pulled.Rows != 0 {
		t.Errorf("c synced again with b: pushed %+v pulled %+v, want 0 rows each way", res.Pushed, res.Pulled)
	}
	// c may send a's rows on to a (it got them from b), but they change nothing there.
	res = syncSites(t, c, a)
	if res.Pushed.Changed != 0 || res.Pulled.Changed != 0 {
		t.Errorf("c synced with a: pushed %+v pulled %+v, want nothing changed", res.Pushed, res.Pulled)
	}
	for _, x := range s {
		if cs := x.conflicts(t); len(cs) != 0 {
			t.Errorf("%s: conflicts %v", x.name, cs)
		}
	}
}

func TestTypesAndValuesSurviveAHop(t *testing.T) {
	s := newSites(t, 3, `CREATE TABLE p(id INTEGER PRIMARY KEY, name TEXT, dt DATETIME, b BLOB, n NUMERIC, j JSON, ok BOOLEAN)`)
	a, b, c := s[0], s[1], s[2]
	a.exec(t, `INSERT INTO p VALUES (1, 'one', '2009-01-01 00:00:00', x'00ff', '12.50', '{"k": [1, 2]}', 1),
		(2, 'two', NULL, x'', 'x', '[]', 0), (3, NULL, '2024-01-01T00:00:00Z', NULL, 7, NULL, NULL)`)
	syncSites(t, a, b)
	syncSites(t, b, c)
	converged(t, a, b, c)
	diffs, err := a.node.Verify(t.Context(), c.node)
	if err != nil || len(diffs) != 0 {
		t.Errorf("verify a with c: %v %v", diffs, err)
	}
}
