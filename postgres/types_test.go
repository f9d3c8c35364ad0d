package postgres_test

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/rowsync/rowsync"
)

const typedDDL = `CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE typed(id serial PRIMARY KEY, si smallint, i integer, bi bigint, n numeric, n52 numeric(5,2), r real,
  d double precision, t text, vc varchar(10), ch char(5), b bytea, bo boolean, da date, ti time, ts timestamp,
  tz timestamptz, u uuid, j json, jb jsonb, e mood, ia integer[], ta text[])`

func TestTypesRoundTrip(t *testing.T) {
	a, b := newSite(t, typedDDL), newSite(t, typedDDL)
	a.exec(t, `INSERT INTO typed(si, i, bi, n, n52, r, d, t, vc, ch, b, bo, da, ti, ts, tz, u, j, jb, e, ia, ta) VALUES
		(-32768, 2147483647, -9223372036854775808, '123456789012345678901234567890.000000000000000000001', 1.50, 0.1, 1e-300,
		 'text', 'varchar', 'ab', '\xdeadbeef', true, '2024-02-29', '23:59:59.999999', '2024-02-29 12:34:56.789',
		 '2024-02-29 12:34:56.789+02', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '{"b": 1, "a": [1, 2]}', '{"b": 1, "a": [1, 2]}',
		 'happy', '{1,2,3}', '{"a b","c,d",NULL}');
		INSERT INTO typed(id) VALUES (2)`)
	a.init(t, "typed")
	b.init(t, "typed")
	tb := a.table(t, "typed")
	wantClass := map[string]rowsync.TypeClass{"id": "integer", "si": "integer", "i": "integer", "bi": "integer", "n": "decimal",
		"n52": "decimal", "r": "real", "d": "real", "t": "text", "vc": "text", "ch": "text", "b": "blob", "bo": "boolean",
		"da": "datetime", "ti": "datetime", "ts": "datetime", "tz": "datetime", "u": "text", "j": "json", "jb": "json",
		"e": "text", "ia": "text", "ta": "text"}
	for _, c := range tb.Columns {
		if c.Class != wantClass[c.Name] {
			t.Errorf("column %s (%s): class %s, want %s", c.Name, c.Type, c.Class, wantClass[c.Name])
		}
	}
	text, blob := rowsync.TextValue, rowsync.BlobValue
	want := map[string]rowsync.Value{
		"id": rowsync.IntValue(1), "si": rowsync.IntValue(-32768), "i": rowsync.IntValue(math.MaxInt32), "bi": rowsync.IntValue(math.MinInt64),
		"n": text("123456789012345678901234567890.000000000000000000001"), "n52": text("1.5"),
		"r": rowsync.RealValue(float64(float32(0.1))), "d": rowsync.RealValue(1e-300),
		"t": text("text"), "vc": text("varchar"), "ch": text("ab"), "b": blob([]byte{0xde, 0xad, 0xbe, 0xef}), "bo": rowsync.IntValue(1),
		"da": text("2024-02-29"), "ti": text("23:59:59.999999"), "ts": text("2024-02-29 12:34:56.789"), "tz": text("2024-02-29 10:34:56.789Z"),
		"u": text("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), "j": text(`{"b": 1, "a": [1, 2]}`), "jb": text(`{"a": [1, 2], "b": 1}`),
		"e": text("happy"), "ia": text("{1,2,3}"), "ta": text(`{"a b","c,d",NULL}`),
	}
	a.sync(t, b)
	for _, s := range []*site{a, b} {
		rows := s.values(t, tb)
		row := rows["1"]
		if row == nil {
			t.Fatalf("row 1 missing")
		}
		for i, c := range tb.Columns {
			if !row[i].Equal(want[c.Name]) {
				t.Errorf("column %s (%s): read %s %s, want %s %s", c.Name, c.Type, row[i].Kind, row[i], want[c.Name].Kind, want[c.Name])
			}
		}
		for i, v := range rows["2"] {
			if i > 0 && !v.IsNull() {
				t.Errorf("row 2 column %s: %v, want NULL", tb.Columns[i].Name, v)
			}
		}
	}
	sameText(t, a, b, "typed")

	// The forms other engines send: 'T' separators and zones, booleans as
	// integers, decimals as reals, integers as text, uuids in upper case.
	row := make([]rowsync.Value, len(tb.Columns))
	set := func(name string, v rowsync.Value) { row[tb.ColumnIndex(name)] = v }
	set("id", rowsync.IntValue(3))
	set("si", text("12"))
	set("n", rowsync.RealValue(1.25))
	set("n52", rowsync.IntValue(7))
	set("r", rowsync.IntValue(3))
	set("d", text("2.5"))
	set("bo", rowsync.IntValue(0))
	set("b", text("bytes"))
	set("ts", text("2024-02-29T23:30:00+01:00"))
	set("tz", text("2024-02-29T23:30:00.5+01:00"))
	set("da", text("2024-02-29"))
	set("u", text("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A12"))
	set("jb", text(`{"x":true}`))
	set("e", text("sad"))
	set("ia", text("{4,5}"))
	for i := range row {
		if row[i].Kind == rowsync.Null && i > 0 {
			row[i] = rowsync.NullValue()
		}
	}
	b.update(t, func(tx rowsync.Tx) {
		if err := tx.InsertRow(tb, row); err != nil {
			t.Fatalf("insert of values in other engines' forms: %v", err)
		}
	})
	want3 := map[string]rowsync.Value{"si": rowsync.IntValue(12), "n": text("1.25"), "n52": text("7"), "r": rowsync.RealValue(3),
		"d": rowsync.RealValue(2.5), "bo": rowsync.IntValue(0), "b": blob([]byte("bytes")), "ts": text("2024-02-29 22:30:00"),
		"tz": text("2024-02-29 22:30:00.5Z"), "u": text("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12"), "jb": text(`{"x": true}`),
		"e": text("sad"), "ia": text("{4,5}")}
	got := b.values(t, tb)["3"]
	for name, w := range want3 {
		if v := got[tb.ColumnIndex(name)]; !v.Equal(w) {
			t.Errorf("column %s written from another form: read %s %s, want %s %s", name, v.Kind, v, w.Kind, w)
		}
	}
	// Changes made on b travel back.
	b.exec(t, `UPDATE typed SET n = n * 2, tz = tz + interval '1 hour', e = 'ok', ia = ia || 9, jb = jb || '{"z": null}' WHERE id = 1`)
	b.sync(t, a)
	sameText(t, a, b, "typed")
}

// sameText compares the text rendering of every column of both sites'
// rows: the stored values are identical, not only equal.
func sameText(t *testing.T, a, b *site, table string) {
	t.Helper()
	tb := a.table(t, table)
	exprs := make([]string, len(tb.Columns))
	for i, c := range tb.Columns {
		exprs[i] = quoteIdent(c.Name) + "::text"
	}
	q := "SELECT " + strings.Join(exprs, ", ") + " FROM " + quoteIdent(table) + " ORDER BY 1"
	ra, rb := a.query(t, q), b.query(t, q)
	if len(ra) != len(rb) {
		t.Fatalf("%s: %d rows, other side %d", table, len(ra), len(rb))
	}
	for i := range ra {
		for j := range ra[i] {
			if ra[i][j] != rb[i][j] {
				t.Errorf("%s row %d column %s: %v here, %v there", table, i, tb.Columns[j].Name, ra[i][j], rb[i][j])
			}
		}
	}
}

func TestBadValues(t *testing.T) {
	s := newSite(t, `CREATE TABLE bad(id integer PRIMARY KEY, i integer, vc varchar(10), n numeric(5,2), t text, r real,
		b bytea, bo boolean, ts timestamp, da date)`)
	s.init(t, "bad")
	tb := s.table(t, "bad")
	tx, err := s.db.Begin(t.Context(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if err := tx.InsertRow(tb, rowOf(tb, map[string]rowsync.Value{"id": rowsync.IntValue(1), "vc": rowsync.TextValue("ok")})); err != nil {
		t.Fatal(err)
	}
	text := rowsync.TextValue
	tests := []struct {
		col string
		v   rowsync.Value
	}{
		{"i", text("abc")},
		{"i", rowsync.IntValue(1 << 40)},
		{"i", rowsync.RealValue(2.5)},
		{"vc", text(strings.Repeat("x", 300))},
		{"n", text("1e400")},
		{"n", text("123456.7")},
		{"n", text("1.234")},
		{"n", text("not a number")},
		{"t", text("a\x00b")},
		{"t", text("\xff\xfe")},
		{"r", rowsync.RealValue(0.1)},
		{"b", rowsync.IntValue(5)},
		{"bo", rowsync.IntValue(2)},
		{"da", text("2024-02-30")},
		{"ts", text("not a date")},
		{"id", rowsync.IntValue(1)}, // a taken key
	}
	for _, tt := range tests {
		vals := map[string]rowsync.Value{"id": rowsync.IntValue(2), tt.col: tt.v}
		err := tx.InsertRow(tb, rowOf(tb, vals))
		var ce *rowsync.ConstraintError
		if !errors.As(err, &ce) {
			t.Errorf("insert of %s %s into %s: got %v (%T), want a *rowsync.ConstraintError", tt.v.Kind, shortened(tt.v), tt.col, err, err)
		} else if !strings.Contains(err.Error(), "bad") {
			t.Errorf("insert of %s into %s: error %q does not name the table", shortened(tt.v), tt.col, err)
		}
		if tt.col != "id" {
			err = tx.UpdateRow(tb, []rowsync.Value{rowsync.IntValue(1)}, []int{tb.ColumnIndex(tt.col)}, []rowsync.Value{tt.v})
			if !errors.As(err, &ce) {
				t.Errorf("update of %s to %s %s: got %v, want a *rowsync.ConstraintError", tt.col, tt.v.Kind, shortened(tt.v), err)
			}
		}
		// The transaction is still usable.
		if _, ok, err := tx.GetRow(tb, []rowsync.Value{rowsync.IntValue(1)}); err != nil || !ok {
			t.Fatalf("after the insert of %s into %s: GetRow: %v %v", shortened(tt.v), tt.col, ok, err)
		}
	}
	if err := tx.InsertRow(tb, rowOf(tb, map[string]rowsync.Value{"id": rowsync.IntValue(2), "n": text("123.45"), "r": rowsync.RealValue(0.5)})); err != nil {
		t.Fatalf("valid insert after the failures: %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatalf("commit after the failures: %v", err)
	}
	got := s.values(t, tb)
	if len(got) != 2 || !got["2"][tb.ColumnIndex("n")].Equal(text("123.45")) || !got["1"][tb.ColumnIndex("vc")].Equal(text("ok")) {
		t.Errorf("rows after the transaction: %v", got)
	}
}

func shortened(v rowsync.Value) string {
	s := v.String()
	if len(s) > 20 {
		return s[:20] + "…"
	}
	return s
}

func rowOf(tb *rowsync.Table, vals map[string]rowsync.Value) []rowsync.Value {
	row := make([]rowsync.Value, len(tb.Columns))
	for name, v := range vals {
		row[tb.ColumnIndex(name)] = v
	}
	return row
}

func TestTruncateCapturedAsDeletes(t *testing.T) {
	ddl := `CREATE TABLE parent(id bigint PRIMARY KEY, name text);
		CREATE TABLE child(id bigint PRIMARY KEY, pid bigint REFERENCES parent ON DELETE CASCADE, note text)`
	a, b := newSite(t, ddl), newSite(t, ddl)
	a.exec(t, `INSERT INTO parent VALUES (1, 'p'), (2, 'q'); INSERT INTO child VALUES (10, 1, 'x'), (11, 2, 'y')`)
	a.init(t, "parent", "child")
	b.init(t, "parent", "child")
	if got := a.table(t, "child").Parents; len(got) != 1 || got[0] != "parent" {
		t.Errorf("parents of child: %q, want [parent]", got)
	}
	a.sync(t, b)
	a.exec(t, `TRUNCATE parent CASCADE`)
	a.sync(t, b)
	for _, table := range []string{"parent", "child"} {
		if rows := b.query(t, "SELECT * FROM "+table); len(rows) != 0 {
			t.Errorf("b: %s after TRUNCATE on a and a sync: %v", table, rows)
		}
	}
}
