package postgres_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/rowsync/rowsync"
)

func bulkOf(tb testing.TB, tx rowsync.Tx) rowsync.BulkTx {
	tb.Helper()
	b, ok := tx.(rowsync.BulkTx)
	if !ok {
		tb.Fatalf("%T does not implement rowsync.BulkTx", tx)
	}
	return b
}

func itemRow(id int64, code string, qty float64) []rowsync.Value {
	return []rowsync.Value{rowsync.IntValue(id), rowsync.TextValue(code), rowsync.RealValue(qty)}
}

func isConstraint(err error) bool {
	var ce *rowsync.ConstraintError
	return errors.As(err, &ce)
}

// TestBulkInsertRows checks that InsertRows inserts all rows or none, and
// leaves the transaction usable after a refusal.
func TestBulkInsertRows(t *testing.T) {
	s := newSite(t, `CREATE TABLE item(id bigint PRIMARY KEY, code text UNIQUE, qty real)`)
	s.init(t, "item")
	tb := s.table(t, "item")
	count := func() int64 { return s.query(t, `SELECT count(*) FROM item`)[0][0].(int64) }
	s.update(t, func(tx rowsync.Tx) {
		b := bulkOf(t, tx)
		if err := b.InsertRows(tb, [][]rowsync.Value{itemRow(1, "a", 1), itemRow(2, "b", 2.5), itemRow(3, "c", -4)}); err != nil {
			t.Fatal(err)
		}
		// A unique violation in the database.
		err := b.InsertRows(tb, [][]rowsync.Value{itemRow(4, "d", 1), itemRow(5, "a", 1)})
		if !isConstraint(err) {
			t.Fatalf("duplicate code: %v, want a ConstraintError", err)
		}
		// A value refused before the database sees it (0.1 is not a float4).
		err = b.InsertRows(tb, [][]rowsync.Value{itemRow(6, "f", 1), itemRow(7, "g", 0.1)})
		if !isConstraint(err) {
			t.Fatalf("inexact real: %v, want a ConstraintError", err)
		}
		// A key the column refuses (invalid integer text).
		err = b.InsertRows(tb, [][]rowsync.Value{itemRow(8, "h", 1), {rowsync.TextValue("x"), rowsync.TextValue("i"), rowsync.NullValue()}})
		if !isConstraint(err) {
			t.Fatalf("bad integer: %v, want a ConstraintError", err)
		}
		// Still usable.
		if err := tx.InsertRow(tb, itemRow(9, "j", 0)); err != nil {
			t.Fatal(err)
		}
	})
	if got := count(); got != 4 {
		t.Fatalf("%d rows, want 4 (1, 2, 3, 9)", got)
	}
	got := s.query(t, `SELECT id, code, qty FROM item ORDER BY id`)
	if fmt.Sprint(got) != "[[1 a 1] [2 b 2.5] [3 c -4] [9 j 0]]" {
		t.Fatalf("rows %v", got)
	}

	// More rows than one statement's 65,535 parameters take: several
	// INSERTs in one savepoint, still all or none.
	const n = 25_000
	rows := make([][]rowsync.Value, n)
	for i := range rows {
		rows[i] = itemRow(int64(100+i), fmt.Sprint("x", i), float64(i))
	}
	s.update(t, func(tx rowsync.Tx) {
		last := rows[n-1]
		rows[n-1] = itemRow(int64(100+n-1), "a", 0) // duplicate code in the last statement
		if err := bulkOf(t, tx).InsertRows(tb, rows); !isConstraint(err) {
			t.Fatalf("duplicate in the last part: %v, want a ConstraintError", err)
		}
		rows[n-1] = last
	})
	if got := count(); got != 4 {
		t.Fatalf("%d rows after a refused long insert, want 4", got)
	}
	s.update(t, func(tx rowsync.Tx) {
		if err := bulkOf(t, tx).InsertRows(tb, rows); err != nil {
			t.Fatal(err)
		}
	})
	if got := count(); got != 4+n {
		t.Fatalf("%d rows, want %d", got, 4+n)
	}
}

// TestBulkInsertRowsEcho checks that rows inserted by InsertRows while
// applying leave no log entries after EndApply.
func TestBulkInsertRowsEcho(t *testing.T) {
	s := newSite(t, `CREATE TABLE item(id bigint PRIMARY KEY, code text UNIQUE, qty real)`)
	s.init(t, "item")
	tb := s.table(t, "item")
	s.update(t, func(tx rowsync.Tx) {
		if err := tx.BeginApply(); err != nil {
			t.Fatal(err)
		}
		rows := [][]rowsync.Value{itemRow(1, "a", 1), itemRow(2, "b", 2)}
		if err := bulkOf(t, tx).InsertRows(tb, rows); err != nil {
			t.Fatal(err)
		}
		keys := [][]rowsync.Value{{rowsync.IntValue(1)}, {rowsync.IntValue(2)}}
		if err := tx.EndApply(map[*rowsync.Table][][]rowsync.Value{tb: keys}); err != nil {
			t.Fatal(err)
		}
	})
	if log := s.logOf(t, tb); len(log) != 0 {
		t.Fatalf("log after applying: %+v, want none", log)
	}
}

// TestBulkShadows checks GetShadows and PutShadows against GetShadow.
func TestBulkShadows(t *testing.T) {
	s := newSite(t, `CREATE TABLE item(id bigint PRIMARY KEY, code text, qty real);
		CREATE TABLE pair(a varchar(5), b bytea, v int, PRIMARY KEY(a, b))`)
	s.init(t, "item", "pair")
	item, pair := s.table(t, "item"), s.table(t, "pair")
	ik := func(v int64) []rowsync.Value { return []rowsync.Value{rowsync.IntValue(v)} }
	pk := func(a, b string) []rowsync.Value {
		return []rowsync.Value{rowsync.TextValue(a), rowsync.BlobValue([]byte(b))}
	}
	s.update(t, func(tx rowsync.Tx) {
		b := bulkOf(t, tx)
		if err := b.PutShadows(item, []*rowsync.Shadow{
			{Key: ik(1), Seq: 10, Src: 2, Meta: []byte{1, 2}},
			{Key: ik(2), Seq: 11, Deleted: true, Meta: nil, Dead: []byte("dead")},
		}); err != nil {
			t.Fatal(err)
		}
		// Update one, add one.
		if err := b.PutShadows(item, []*rowsync.Shadow{
			{Key: ik(2), Seq: 12, Meta: []byte{3}},
			{Key: ik(3), Seq: 13, Meta: []byte{4}},
		}); err != nil {
			t.Fatal(err)
		}
		keys := [][]rowsync.Value{ik(3), ik(99), ik(1), {rowsync.TextValue("2")}}
		got, err := b.GetShadows(item, keys)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(keys) || got[1] != nil {
			t.Fatalf("GetShadows: %+v", got)
		}
		for i, k := range keys {
			want, err := tx.GetShadow(item, k)
			if err != nil {
				t.Fatal(err)
			}
			if (want == nil) != (got[i] == nil) {
				t.Fatalf("key %v: GetShadows %+v, GetShadow %+v", k, got[i], want)
			}
			if want == nil {
				continue
			}
			if got[i].Seq != want.Seq || got[i].Deleted != want.Deleted || got[i].Src != want.Src ||
				!bytes.Equal(got[i].Meta, want.Meta) || !bytes.Equal(got[i].Dead, want.Dead) || rowsync.FormatKey(got[i].Key) != rowsync.FormatKey(k) {
				t.Fatalf("key %v: GetShadows %+v, GetShadow %+v", k, got[i], want)
			}
		}
		if got[3].Seq != 12 || got[3].Deleted || got[3].Dead != nil || got[2].Seq != 10 || got[2].Src != 2 {
			t.Fatalf("GetShadows: %+v %+v", got[2], got[3])
		}
		// Two keys equal as bigint: the last one wins, as with PutShadow.
		if err := b.PutShadows(item, []*rowsync.Shadow{
			{Key: ik(5), Seq: 20, Meta: []byte{}},
			{Key: []rowsync.Value{rowsync.TextValue("5")}, Seq: 21, Meta: []byte{}},
		}); err != nil {
			t.Fatal(err)
		}
		if sh, err := tx.GetShadow(item, ik(5)); err != nil || sh == nil || sh.Seq != 21 {
			t.Fatalf("GetShadow(5) = %+v, %v; want seq 21", sh, err)
		}
		// A malformed key is an error, as for GetShadow.
		if _, err := b.GetShadows(item, [][]rowsync.Value{ik(1), {rowsync.IntValue(1), rowsync.IntValue(2)}}); !errors.Is(err, rowsync.ErrMalformed) {
			t.Fatalf("GetShadows with a malformed key: %v", err)
		}
	})
	s.update(t, func(tx rowsync.Tx) {
		b := bulkOf(t, tx)
		if err := b.PutShadows(pair, []*rowsync.Shadow{
			{Key: pk("x", "\x00\xff"), Seq: 1, Meta: []byte{1}},
			{Key: pk("x", "b"), Seq: 2, Meta: []byte{2}},
			{Key: pk("y", "\x00\xff"), Seq: 3, Meta: []byte{3}},
		}); err != nil {
			t.Fatal(err)
		}
		got, err := b.GetShadows(pair, [][]rowsync.Value{pk("y", "\x00\xff"), pk("x", "\x00"), pk("x", "b"), pk("x", "\x00\xff")})
		if err != nil {
			t.Fatal(err)
		}
		if got[0] == nil || got[0].Seq != 3 || got[1] != nil || got[2] == nil || got[2].Seq != 2 || got[3] == nil || got[3].Seq != 1 {
			t.Fatalf("GetShadows: %+v", got)
		}
	})
	// Too long for varchar(5): refused by the column, as by PutShadow.
	tx, err := s.db.Begin(t.Context(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if err := bulkOf(t, tx).PutShadows(pair, []*rowsync.Shadow{{Key: pk("toolong", "b"), Seq: 4, Meta: []byte{}}}); err == nil {
		t.Fatal("PutShadows of a key too long for varchar(5): no error")
	}
}
