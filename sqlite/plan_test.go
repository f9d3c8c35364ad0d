package sqlite

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rowsync/rowsync"
)

// installed opens a database with the given tables, tracked.
func installed(t *testing.T, ddl string, tables ...string) *DB {
	t.Helper()
	d, err := Open(filepath.Join(t.TempDir(), "node.db"), true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if _, err := d.db.Exec(ddl); err != nil {
		t.Fatal(err)
	}
	if err := d.Install(t.Context(), tables); err != nil {
		t.Fatal(err)
	}
	return d
}

// queryPlan returns the details of EXPLAIN QUERY PLAN of q.
func queryPlan(t *testing.T, d *DB, q string, args ...any) []string {
	t.Helper()
	rows, err := d.db.Query("EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		out = append(out, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestChangesPlan checks that Changes skips rows in the shadow index alone
// and reads each table by key: a push after a large pull skips every row
// of it, which must cost an index entry per row, not a lookup in the
// shadow table (docs/BENCHMARKS.md, incremental sync).
func TestChangesPlan(t *testing.T) {
	d := installed(t, `CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT, qty INTEGER);
		CREATE TABLE pair(a TEXT, b INTEGER, v TEXT, PRIMARY KEY(a, b));
		CREATE TABLE word(w TEXT PRIMARY KEY, n INTEGER) WITHOUT ROWID;`, "item", "pair", "word")
	tables, err := d.Tables(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		for _, kind := range []rowsync.ChangeKind{rowsync.KindLive, rowsync.KindDead} {
			t.Run(fmt.Sprintf("%s/%d", tb.Name, kind), func(t *testing.T) {
				plan := queryPlan(t, d, changesQuery(tb, kind), 0, 100, -1, 10)
				want := []string{
					fmt.Sprintf("SEARCH c USING COVERING INDEX _rowsync_shadow_%d_seqsrc (del=? AND seq>? AND seq<?)", tb.ID),
					"SEARCH s USING PRIMARY KEY",
				}
				if kind == rowsync.KindLive {
					want = append(want, "SEARCH b USING")
				}
				if len(plan) != len(want) {
					t.Fatalf("plan %q, want %d steps like %q", plan, len(want), want)
				}
				for i, w := range want {
					if !strings.HasPrefix(plan[i], w) {
						t.Errorf("plan step %d: %q, want %q…", i, plan[i], w)
					}
				}
			})
		}
	}
}

// TestShadowIndexUpgrade checks that init replaces the (del, seq) index of
// earlier versions with the (del, seq, src) one.
func TestShadowIndexUpgrade(t *testing.T) {
	d := installed(t, `CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT)`, "item")
	if _, err := d.db.Exec(`DROP INDEX _rowsync_shadow_1_seqsrc; CREATE INDEX _rowsync_shadow_1_seq ON _rowsync_shadow_1(del, seq)`); err != nil {
		t.Fatal(err)
	}
	if err := d.Install(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	rows, err := d.db.Query(`SELECT name FROM pragma_index_list('_rowsync_shadow_1') WHERE origin = 'c' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		got = append(got, n)
	}
	if want := []string{"_rowsync_shadow_1_seqsrc"}; !slices.Equal(got, want) {
		t.Errorf("indexes of the shadow table after init: %q, want %q", got, want)
	}
}

// TestPutShadowsFresh checks the hint GetShadows leaves for PutShadows:
// the keys it found no bookkeeping for, each taken once.
func TestPutShadowsFresh(t *testing.T) {
	d := installed(t, `CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT)`, "item")
	tables, err := d.Tables(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	item := tables[0]
	key := func(i int64) []rowsync.Value { return []rowsync.Value{rowsync.IntValue(i)} }
	shadow := func(i int64) *rowsync.Shadow {
		return &rowsync.Shadow{Key: key(i), Seq: i, Meta: []byte{0}}
	}
	rtx, err := d.Begin(t.Context(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer rtx.Rollback()
	tx := rtx.(*Tx)
	if err := tx.PutShadow(item, shadow(1)); err != nil {
		t.Fatal(err)
	}
	ss, err := tx.GetShadows(item, [][]rowsync.Value{key(1), key(2), key(3), key(4)})
	if err != nil {
		t.Fatal(err)
	}
	if ss[0] == nil || ss[1] != nil || ss[2] != nil || ss[3] != nil {
		t.Fatalf("GetShadows: got %v, want only key 1", ss)
	}
	if got := len(tx.fresh[item]); got != 3 {
		t.Fatalf("fresh keys after GetShadows: %d, want 3", got)
	}
	// Keys 2 and 3 fresh (one multi-row statement), 1 not, 5 never asked for.
	if err := tx.PutShadows(item, []*rowsync.Shadow{shadow(2), shadow(1), shadow(3), shadow(5)}); err != nil {
		t.Fatal(err)
	}
	if got := len(tx.fresh[item]); got != 1 {
		t.Errorf("fresh keys after PutShadows: %d, want 1 (key 4)", got)
	}
	ss, err = tx.GetShadows(item, [][]rowsync.Value{key(1), key(2), key(3), key(5)})
	if err != nil {
		t.Fatal(err)
	}
	for i, sh := range ss {
		if sh == nil || sh.Seq != sh.Key[0].Int {
			t.Errorf("bookkeeping %d after PutShadows: %+v", i, sh)
		}
	}
}
