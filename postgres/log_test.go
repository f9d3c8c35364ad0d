package postgres_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/rowsync/rowsync"
)

// TestInsertLogArrays checks the log of a multi-row INSERT, whose keys the
// trigger writes 128 to a log row: ReadLog pages through and within log
// rows in order, entries of one row can be deleted one by one (the rest
// stay readable and counted), NextLogOp finds an entry in the middle of a
// row, and a row goes once all its entries are deleted. A composite key
// exercises parallel arrays.
func TestInsertLogArrays(t *testing.T) {
	s := newSite(t, `CREATE TABLE line(o bigint, n text, qty bigint, PRIMARY KEY (o, n))`)
	s.init(t, "line")
	tb := s.table(t, "line")
	s.exec(t, `INSERT INTO line SELECT i / 10, 'n' || (i % 10), i FROM generate_series(1, 300) AS i`)
	s.exec(t, `UPDATE line SET qty = -1 WHERE o = 5`)
	logRows := func() int64 {
		return s.query(t, fmt.Sprintf(`SELECT count(*) FROM _rowsync_log_%d`, tb.ID))[0][0].(int64)
	}
	// 300 inserts in 3 log rows, 10 updates in 10.
	if got := logRows(); got != 13 {
		t.Fatalf("log rows after a 300-row INSERT and a 10-row UPDATE: %d, want 13", got)
	}
	all := s.logOf(t, tb)
	if len(all) != 310 {
		t.Fatalf("%d entries, want 310", len(all))
	}
	keys := map[string]bool{}
	for i, e := range all {
		if i > 0 && e.ID <= all[i-1].ID {
			t.Fatalf("entry %d: id %d not after %d", i, e.ID, all[i-1].ID)
		}
		key, _ := tb.SplitRow(e.Row)
		if i < 300 {
			if e.Op != rowsync.OpInsert {
				t.Fatalf("entry %d: op %v, want insert", i, e.Op)
			}
			keys[rowsync.FormatKey(key)] = true
		} else if e.Op != rowsync.OpUpdate || key[0].Int != 5 {
			t.Fatalf("entry %d: %v of %s, want an update of order 5", i, e.Op, rowsync.FormatKey(key))
		}
	}
	if len(keys) != 300 {
		t.Fatalf("%d distinct keys inserted, want 300", len(keys))
	}

	s.update(t, func(tx rowsync.Tx) {
		// Pages of 50 cross log rows.
		var paged []rowsync.LogEntry
		for after := int64(0); ; {
			es, err := tx.ReadLog(tb, after, 50)
			if err != nil {
				t.Fatal(err)
			}
			if len(es) == 0 {
				break
			}
			if len(es) > 50 {
				t.Fatalf("page of %d entries, limit 50", len(es))
			}
			paged = append(paged, es...)
			after = es[len(es)-1].ID
		}
		if len(paged) != len(all) {
			t.Fatalf("paged: %d entries, want %d", len(paged), len(all))
		}
		for i := range paged {
			if paged[i].ID != all[i].ID || !slices.EqualFunc(paged[i].Row, all[i].Row, rowsync.Value.Equal) {
				t.Fatalf("paged entry %d differs", i)
			}
		}
		// NextLogOp from the middle of the first log row.
		key, _ := tb.SplitRow(all[60].Row)
		op, ok, err := tx.NextLogOp(tb, all[59].ID, key)
		if err != nil || !ok || op != rowsync.OpInsert {
			t.Fatalf("NextLogOp after entry 59 for its next key: %v %v %v", op, ok, err)
		}
		if _, ok, err := tx.NextLogOp(tb, all[60].ID, key); err != nil || ok {
			t.Fatalf("NextLogOp after the key's only entry: %v %v", ok, err)
		}
		// Delete two entries of the first log row, then every entry of
		// the second one by one id list.
		if err := tx.DeleteLog(tb, 0, []int64{all[3].ID, all[100].ID}); err != nil {
			t.Fatal(err)
		}
		var second []int64
		for _, e := range all[128:256] {
			second = append(second, e.ID)
		}
		if err := tx.DeleteLog(tb, 0, second); err != nil {
			t.Fatal(err)
		}
		n, err := tx.LogCount(tb)
		if err != nil || n != 310-2-128 {
			t.Fatalf("LogCount: %d %v, want %d", n, err, 310-2-128)
		}
	})
	if got := logRows(); got != 12 {
		t.Errorf("log rows after deleting one whole array row: %d, want 12", got)
	}
	left := s.logOf(t, tb)
	want := slices.Concat(all[:3], all[4:100], all[101:128], all[256:])
	if len(left) != len(want) {
		t.Fatalf("%d entries left, want %d", len(left), len(want))
	}
	for i := range left {
		if left[i].ID != want[i].ID {
			t.Fatalf("entry %d left: id %d, want %d", i, left[i].ID, want[i].ID)
		}
	}
	// A fold deletes the rest: the log is empty.
	s.update(t, func(tx rowsync.Tx) {
		es, err := tx.ReadLog(tb, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.DeleteLog(tb, es[len(es)-1].ID, nil); err != nil {
			t.Fatal(err)
		}
	})
	if got := logRows(); got != 0 {
		t.Errorf("log rows after deleting every entry read: %d, want 0", got)
	}
}

// TestInsertLogEcho checks that the echo of a bulk apply, logged in
// arrays, is dropped, while a row the application inserts in the same
// statement shape stays a local write.
func TestInsertLogEcho(t *testing.T) {
	a := newSite(t, `CREATE TABLE item(id bigint PRIMARY KEY, name text)`)
	b := newSite(t, `CREATE TABLE item(id bigint PRIMARY KEY, name text)`)
	a.init(t, "item")
	b.init(t, "item")
	a.exec(t, `INSERT INTO item SELECT i, 'a' || i FROM generate_series(1, 1000) AS i`)
	res := b.sync(t, a)
	if res.Pulled.Changed != 1000 {
		t.Fatalf("pulled %d rows, want 1000", res.Pulled.Changed)
	}
	tb := b.table(t, "item")
	if es := b.logOf(t, tb); len(es) != 0 {
		t.Fatalf("b's log after applying: %d entries, want none (all echo)", len(es))
	}
	b.exec(t, `INSERT INTO item SELECT i, 'b' || i FROM generate_series(1001, 1300) AS i`)
	res = b.sync(t, a)
	if res.Pushed.Changed != 300 {
		t.Errorf("pushed %d rows, want 300", res.Pushed.Changed)
	}
	if got := a.query(t, `SELECT count(*) FROM item`)[0][0].(int64); got != 1300 {
		t.Errorf("a has %d rows, want 1300", got)
	}
}

// TestLogUpgrade checks a log installed before inserts were logged in
// arrays: its one-row-per-insert entries are read by a process that sees
// no arrays, and again after init has upgraded the log, beside the
// array rows of later inserts.
func TestLogUpgrade(t *testing.T) {
	s := newSite(t, `CREATE TABLE item(id bigint PRIMARY KEY, name text)`)
	s.init(t, "item")
	tb := s.table(t, "item")
	log := fmt.Sprintf("_rowsync_log_%d", tb.ID)
	// The capture of the earlier version: no arrays, a log row per insert.
	s.exec(t, fmt.Sprintf(`ALTER TABLE %s DROP COLUMN n, DROP COLUMN a0;
		CREATE OR REPLACE FUNCTION _rowsync_%d_ins() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN INSERT INTO %s(op, wall, echo, c0) SELECT 1, 0, false, n.id FROM rowsync_new AS n; RETURN NULL; END $$`,
		log, tb.ID, s.schema+"."+log))
	s.exec(t, `INSERT INTO item SELECT i, 'old' || i FROM generate_series(1, 5) AS i`)
	old := openDB(t, s.addr) // a process started now: it sees no arrays
	read := func(db rowsync.Database) []int64 {
		tx, err := db.Begin(t.Context(), false)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		es, err := tx.ReadLog(tb, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, e := range es {
			key, _ := tb.SplitRow(e.Row)
			ids = append(ids, key[0].Int)
		}
		return ids
	}
	if got := read(old); !slices.Equal(got, []int64{1, 2, 3, 4, 5}) {
		t.Fatalf("old log read: keys %v, want 1..5", got)
	}
	if err := old.Install(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	s.exec(t, `INSERT INTO item SELECT i, 'new' || i FROM generate_series(6, 8) AS i`)
	if got := read(old); !slices.Equal(got, []int64{1, 2, 3, 4, 5, 6, 7, 8}) {
		t.Errorf("after init: keys %v, want 1..8", got)
	}
	if got := s.query(t, `SELECT count(*) FROM `+log)[0][0].(int64); got != 6 {
		t.Errorf("log rows after init and a 3-row insert: %d, want 6", got)
	}
}
