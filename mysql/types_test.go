package mysql_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/rowsync/rowsync"
)

// typedDDL has a column of every type the adapter maps (MariaDB flavour:
// the JSON alias is LONGTEXT with a json_valid check, UUID is native).
const typedDDL = `CREATE TABLE typed(
	id BIGINT AUTO_INCREMENT PRIMARY KEY,
	ti TINYINT, si SMALLINT, mi MEDIUMINT, ii INT, bi BIGINT,
	tiu TINYINT UNSIGNED, siu SMALLINT UNSIGNED, miu MEDIUMINT UNSIGNED, iu INT UNSIGNED, biu BIGINT UNSIGNED,
	bo BOOLEAN, dc DECIMAL(40,10), fl FLOAT, db DOUBLE,
	ch CHAR(10), vc VARCHAR(100), tx TEXT, bn BINARY(4), vb VARBINARY(100), bl BLOB,
	dt DATE, tm TIME(6), dtt DATETIME(6), ts TIMESTAMP(6) NULL, js JSON, en ENUM('red', 'green', 'blue'), uu UUID
) ENGINE=InnoDB`

var wantClasses = map[string]rowsync.TypeClass{
	"id": "integer", "ti": "integer", "si": "integer", "mi": "integer", "ii": "integer", "bi": "integer",
	"tiu": "integer", "siu": "integer", "miu": "integer", "iu": "integer", "biu": "integer",
	"bo": "boolean", "dc": "decimal", "fl": "real", "db": "real",
	"ch": "text", "vc": "text", "tx": "text", "bn": "blob", "vb": "blob", "bl": "blob",
	"dt": "datetime", "tm": "datetime", "dtt": "datetime", "ts": "datetime", "js": "json", "en": "text", "uu": "text",
}

func TestTypesRoundTrip(t *testing.T) {
	a, b := openTestDB(t), openTestDB(t)
	for _, x := range []*testDB{a, b} {
		x.exec(t, typedDDL)
	}
	// The application writes TIMESTAMP values in its own time zone; rowsync
	// reads them in UTC.
	a.exec(t, `SET time_zone = '+02:00'; INSERT INTO typed VALUES (1,
		-128, -32768, -8388608, -2147483648, -9223372036854775808,
		255, 65535, 16777215, 4294967295, 18446744073709551615,
		TRUE, '-123456789012345678901234567890.1234567890', 0.1, 0.1,
		'abc', 'Grüße 👍', 'line1\nline2', X'00FF0102', X'', X'DEADBEEF',
		'2024-02-29', '-838:59:59.5', '2024-02-29 23:59:59.123456', '2024-06-01 12:00:00.5', '{"a": [1, 2.5, "x"]}', 'green',
		'6CCD780C-BABA-1026-9564-5B8C656024DB')`)
	a.exec(t, `INSERT INTO typed(id, bo, dc, fl, db, biu, dtt, tm) VALUES (2, FALSE, 2.50, -3.5, 1e308, 9223372036854775807, '1000-01-01 00:00:00', '00:00:00')`)
	a.exec(t, `INSERT INTO typed(id) VALUES (3)`)

	na, nb := initNode(t, a, "typed"), initNode(t, b, "typed")
	tb, _ := na.Table("typed")
	for _, c := range tb.Columns {
		if w, ok := wantClasses[c.Name]; !ok || c.Class != w {
			t.Errorf("column %s (%s): class %s, want %s", c.Name, c.Type, c.Class, w)
		}
	}
	syncNodes(t, na, nb)

	text, i := rowsync.TextValue, rowsync.IntValue
	null := rowsync.NullValue()
	want := map[int64]map[string]rowsync.Value{
		1: {
			"ti": i(-128), "si": i(-32768), "mi": i(-8388608), "ii": i(-2147483648), "bi": i(-9223372036854775808),
			"tiu": i(255), "siu": i(65535), "miu": i(16777215), "iu": i(4294967295), "biu": text("18446744073709551615"),
			"bo": i(1), "dc": text("-123456789012345678901234567890.123456789"), "fl": rowsync.RealValue(float64(float32(0.1))),
			"db": rowsync.RealValue(0.1), "ch": text("abc"), "vc": text("Grüße 👍"), "tx": text("line1\nline2"),
			"bn": rowsync.BlobValue([]byte{0, 0xff, 1, 2}), "vb": rowsync.BlobValue(nil), "bl": rowsync.BlobValue([]byte{0xde, 0xad, 0xbe, 0xef}),
			"dt": text("2024-02-29"), "tm": text("-838:59:59.5"), "dtt": text("2024-02-29 23:59:59.123456"),
			"ts": text("2024-06-01 10:00:00.5Z"), "js": text(`{"a": [1, 2.5, "x"]}`), "en": text("green"),
			"uu": text("6ccd780c-baba-1026-9564-5b8c656024db"),
		},
		2: {"bo": i(0), "dc": text("2.5"), "fl": rowsync.RealValue(-3.5), "db": rowsync.RealValue(1e308), "biu": i(9223372036854775807),
			"dtt": text("1000-01-01 00:00:00"), "tm": text("00:00:00"), "ti": null, "vb": null, "ts": null},
		3: {"bo": null, "dc": null, "js": null, "uu": null, "en": null},
	}
	for _, x := range []struct {
		name string
		n    *rowsync.Node
	}{{"a", na}, {"b", nb}} {
		tbl, _ := x.n.Table("typed")
		got := scanAll(t, x.n, tbl)
		for id, cols := range want {
			row := got[id]
			if row == nil {
				t.Errorf("%s: row %d missing", x.name, id)
				continue
			}
			for name, w := range cols {
				if v := row[tbl.ColumnIndex(name)]; !v.Equal(w) {
					t.Errorf("%s: row %d column %s: got %s %s, want %s %s", x.name, id, name, v.Kind, v, w.Kind, w)
				}
			}
		}
	}
	// The stored values are identical, byte for byte.
	q := `SELECT CONCAT_WS('|', id, ti, si, mi, ii, bi, tiu, siu, miu, iu, biu, bo, dc, HEX(fl + 0E0), db, ch, vc, tx, HEX(bn), HEX(vb),
		HEX(bl), dt, tm, dtt, UNIX_TIMESTAMP(ts), js, en, uu, ISNULL(vb), ISNULL(ts)) FROM typed ORDER BY id`
	if ga, gb := dump(t, a, q), dump(t, b, q); ga != gb {
		t.Errorf("stored values differ:\na: %s\nb: %s", ga, gb)
	}
	// And back: b changes every column of row 1, a gets the same.
	b.exec(t, `UPDATE typed SET ti = 127, biu = biu - 1, dc = dc * 2, fl = 1.5, db = -0.25, vc = 'ß', bn = X'01020304',
		dt = '2000-01-01', tm = '23:59:59.999999', dtt = '2000-01-01 00:00:00.000001', ts = '2038-01-19 03:14:07.999999',
		js = '[]', en = 'blue', uu = UUID() WHERE id = 1`)
	syncNodes(t, nb, na)
	if ga, gb := dump(t, a, q), dump(t, b, q); ga != gb {
		t.Errorf("stored values differ after an update on b:\na: %s\nb: %s", ga, gb)
	}
}

// scanAll reads a table through the adapter, by integer key.
func scanAll(tb testing.TB, n *rowsync.Node, t *rowsync.Table) map[int64][]rowsync.Value {
	tb.Helper()
	tx, err := n.DB().Begin(tb.Context(), false)
	if err != nil {
		tb.Fatal(err)
	}
	defer tx.Rollback()
	out := map[int64][]rowsync.Value{}
	err = tx.ScanRows(t, func(row []rowsync.Value) error {
		key, _ := t.SplitRow(row)
		out[key[0].Int] = slices.Clone(row)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// Values a column cannot hold are refused as constraint errors, and the
// transaction goes on.
func TestBadValues(t *testing.T) {
	x := openTestDB(t)
	x.exec(t, `CREATE TABLE bad(id INT PRIMARY KEY, i INT, v VARCHAR(10), d DECIMAL(5,2), dt DATE, f FLOAT, ts TIMESTAMP(3) NULL, b BOOLEAN)`)
	n := initNode(t, x, "bad")
	tb, _ := n.Table("bad")
	text, null, i := rowsync.TextValue, rowsync.NullValue(), rowsync.IntValue
	row := func(col string, v rowsync.Value) []rowsync.Value {
		r := []rowsync.Value{i(1), null, null, null, null, null, null, null}
		r[tb.ColumnIndex(col)] = v
		return r
	}
	tx, err := x.db.Begin(t.Context(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	for _, tt := range []struct {
		name string
		row  []rowsync.Value
	}{
		{"text into INT", row("i", text("abc"))},
		{"non-integral real into INT", row("i", rowsync.RealValue(1.5))},
		{"out of range INT", row("i", i(1<<40))},
		{"300 chars into VARCHAR(10)", row("v", text(strings.Repeat("x", 300)))},
		{"11 chars into VARCHAR(10)", row("v", text("ééééééééééé"))},
		{"too many fractional digits for DECIMAL(5,2)", row("d", text("1.005"))},
		{"too many digits for DECIMAL(5,2)", row("d", text("1234.5"))},
		{"not a number for DECIMAL", row("d", text("1,5"))},
		{"NaN for DECIMAL", row("d", text("NaN"))},
		{"invalid date", row("dt", text("2023-02-30"))},
		{"not a date", row("dt", text("yesterday"))},
		{"integer for a DATE", row("dt", i(20240101))},
		{"FLOAT rounding", row("f", rowsync.RealValue(0.1))},
		{"infinity for FLOAT", row("f", text("Infinity"))},
		{"timestamp beyond its precision", row("ts", text("2024-01-01 00:00:00.0001Z"))},
		{"timestamp out of range", row("ts", text("2040-01-01 00:00:00Z"))},
		{"not a boolean", row("b", text("maybe"))},
		{"invalid UTF-8 into VARCHAR", row("v", text("\xff\xfe"))},
	} {
		err := tx.InsertRow(tb, tt.row)
		if !isConstraint(err) {
			t.Errorf("%s: got %v (%T), want a *rowsync.ConstraintError", tt.name, err, err)
		} else if !strings.Contains(err.Error(), "bad") {
			t.Errorf("%s: error does not name the table: %v", tt.name, err)
		}
		if _, _, err := tx.GetRow(tb, []rowsync.Value{i(1)}); err != nil {
			t.Fatalf("after %s: GetRow: %v", tt.name, err)
		}
	}
	// Values that fit exactly, in other kinds than the column's own.
	good := []rowsync.Value{i(1), text(" 42 "), i(7), rowsync.RealValue(1.25), text("2024-02-29T00:00:00"[:10]), i(3), text("2024-01-01T10:00:00.5+02:00"), text("true")}
	if err := tx.InsertRow(tb, good); err != nil {
		t.Fatalf("insert of values that fit: %v", err)
	}
	if err := tx.UpdateRow(tb, []rowsync.Value{i(1)}, []int{tb.ColumnIndex("d")}, []rowsync.Value{text("999.999")}); !isConstraint(err) {
		t.Errorf("update to a decimal that does not fit: got %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	got := scanAll(t, n, tb)[1]
	want := []rowsync.Value{i(1), i(42), text("7"), text("1.25"), text("2024-02-29"), rowsync.RealValue(3), text("2024-01-01 08:00:00.5Z"), i(1)}
	if !slices.EqualFunc(got, want, rowsync.Value.Equal) {
		t.Errorf("row after the transaction: got %v, want %v", got, want)
	}
}

func TestSetIDRange(t *testing.T) {
	x := openTestDB(t)
	x.exec(t, `CREATE TABLE a(id BIGINT AUTO_INCREMENT PRIMARY KEY, v TEXT); CREATE TABLE b(id BIGINT AUTO_INCREMENT PRIMARY KEY, v TEXT);
		CREATE TABLE c(k VARCHAR(10) PRIMARY KEY); CREATE TABLE untracked(id BIGINT AUTO_INCREMENT PRIMARY KEY)`)
	x.exec(t, `INSERT INTO b(id, v) VALUES (5000, 'high')`)
	initNode(t, x, "a", "b", "c")
	moved, err := x.db.SetIDRange(t.Context(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(moved, []string{"a"}) {
		t.Errorf("moved %q, want only a (b is above 1000 already, c has no counter)", moved)
	}
	x.exec(t, `INSERT INTO a(v) VALUES ('x'); INSERT INTO b(v) VALUES ('y'); INSERT INTO untracked VALUES ()`)
	if got := dump(t, x, `SELECT id FROM a`); got != "1000" {
		t.Errorf("first id of a after SetIDRange(1000): %s", got)
	}
	if got := dump(t, x, `SELECT MAX(id) FROM b`); got != "5001" {
		t.Errorf("b's counter moved back: next id %s", got)
	}
	if got := dump(t, x, `SELECT id FROM untracked`); got != "1" {
		t.Errorf("untracked table moved: %s", got)
	}
	// Never backwards.
	if moved, err := x.db.SetIDRange(t.Context(), 10); err != nil || len(moved) != 0 {
		t.Errorf("SetIDRange(10) after 1000: moved %q, %v", moved, err)
	}
}
