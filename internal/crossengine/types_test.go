package crossengine

import (
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/rowsync/rowsync"
	"github.com/rowsync/rowsync/engines"
	"github.com/rowsync/rowsync/internal/testdb"
)

// typesDDL is one logical table with a column of every type rowsync maps,
// on each engine. Each column has the same type class everywhere.
var typesDDL = map[string]string{
	"sqlite": `CREATE TABLE types(id INTEGER PRIMARY KEY, i16 SMALLINT, i64 BIGINT, dec DECIMAL TEXT, price NUMERIC(10,2),
		r REAL, f DOUBLE, t TEXT, vc VARCHAR(20), b BLOB, flag BOOLEAN, d DATE, tm TIME, ts TIMESTAMP, tstz TIMESTAMPTZ,
		u UUID, js JSON, en TEXT, arr TEXT)`,
	"postgres": `CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
		CREATE TABLE types(id bigint PRIMARY KEY, i16 smallint, i64 bigint, dec numeric(40,10), price numeric(10,2),
		r real, f double precision, t text, vc varchar(20), b bytea, flag boolean, d date, tm time, ts timestamp, tstz timestamptz,
		u uuid, js jsonb, en mood, arr int[])`,
	"mysql": "CREATE TABLE types(id BIGINT PRIMARY KEY, i16 SMALLINT, i64 BIGINT, `dec` DECIMAL(40,10), price DECIMAL(10,2)," +
		" r FLOAT, f DOUBLE, t LONGTEXT, vc VARCHAR(20), b LONGBLOB, flag BOOLEAN, d DATE, tm TIME(6), ts DATETIME(6), tstz TIMESTAMP(6) NULL," +
		" u CHAR(36), js JSON, en ENUM('sad','ok','happy'), arr TEXT)",
}

// typeRows are rows written on the source node, as SQL literals per engine
// where they differ (%s marks the engine's form of a blob and a boolean).
type typeRow struct {
	id   int
	vals map[string]string // column -> SQL literal (engine-neutral unless in per)
	per  map[string]map[string]string
}

func typeRows() []typeRow {
	return []typeRow{
		{id: 1, vals: map[string]string{
			"i16": "-32768", "i64": "9223372036854775807", "dec": "'12345678901234567890.0123456789'", "price": "0.99",
			"r": "1.5", "f": "0.1", "t": `'héllo "quoted" ✓'`, "vc": "'short'",
			"d": "'2024-02-29'", "tm": "'23:59:59.123456'", "ts": "'2024-02-29 23:59:59.123456'", "tstz": "'2024-02-29 23:59:59.5Z'",
			"u": "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", "js": `'{"a": [1, 2]}'`, "en": "'happy'", "arr": "'{1,2,3}'"},
			per: map[string]map[string]string{
				"b":    {"sqlite": "X'00FF10'", "postgres": `'\x00ff10'::bytea`, "mysql": "X'00FF10'"},
				"flag": {"sqlite": "1", "postgres": "true", "mysql": "TRUE"},
				"tstz": {"mysql": "'2024-02-29 23:59:59.5'"}, // the session time zone is UTC
			}},
		{id: 2, vals: map[string]string{}},
		{id: 3, vals: map[string]string{
			"i16": "0", "i64": "-1", "dec": "'-0.5'", "price": "12.5", "r": "0", "f": "-2.5e-10", "t": "''", "vc": "''",
			"d": "'1970-01-01'", "tm": "'00:00:00'", "ts": "'1970-01-01 00:00:00'", "tstz": "'1999-12-31 23:00:00Z'",
			"u": "'00000000-0000-0000-0000-000000000000'", "js": "'[]'", "en": "'sad'", "arr": "'{}'"},
			per: map[string]map[string]string{
				"b":    {"sqlite": "X''", "postgres": `''::bytea`, "mysql": "X''"},
				"flag": {"sqlite": "0", "postgres": "false", "mysql": "FALSE"},
				"tstz": {"mysql": "'1999-12-31 23:00:00'"},
			}},
	}
}

// insertSQL renders a row as an INSERT for engine.
func (r typeRow) insertSQL(engine string) string {
	cols := []string{"id"}
	vals := []string{fmt.Sprint(r.id)}
	names := slices.Sorted(maps.Keys(r.vals))
	for c := range r.per {
		if _, ok := r.vals[c]; !ok {
			names = append(names, c)
		}
	}
	for _, c := range names {
		v, ok := r.per[c][engine]
		if !ok {
			v, ok = r.vals[c]
		}
		if !ok {
			continue
		}
		cols = append(cols, testdb.Quote(engine, c))
		vals = append(vals, v)
	}
	return fmt.Sprintf("INSERT INTO types(%s) VALUES (%s)", strings.Join(cols, ", "), strings.Join(vals, ", "))
}

// openAddr opens a database address, closed when tb ends.
func openAddr(tb testing.TB, addr string) (rowsync.Database, error) {
	db, err := engines.Open(tb.Context(), addr, true)
	if err == nil {
		tb.Cleanup(func() { db.Close() })
	}
	return db, err
}

type node struct {
	engine string
	app    *sql.DB
	db     rowsync.Database
	n      *rowsync.Node
}

func newNode(tb testing.TB, engine, ddl string) *node {
	tb.Helper()
	addr := testdb.New(tb, engine)
	app := testdb.App(tb, addr)
	if ddl == "" {
		// The caller fills the database and initializes it.
		db, err := openAddr(tb, addr)
		if err != nil {
			tb.Fatal(err)
		}
		return &node{engine: engine, app: app, db: db}
	}
	if _, err := app.Exec(ddl); err != nil {
		tb.Fatalf("%s: %v", engine, err)
	}
	db, err := openAddr(tb, addr)
	if err != nil {
		tb.Fatal(err)
	}
	n, err := rowsync.Init(tb.Context(), db, rowsync.InitOptions{All: true, Name: engine})
	if err != nil {
		tb.Fatalf("%s: init: %v", engine, err)
	}
	return &node{engine: engine, app: app, db: db, n: n}
}

// rows reads every row of a table through the adapter, each value in the
// canonical form of its column's class, by key.
func (x *node) rows(tb testing.TB, table string) map[string][]rowsync.Value {
	tb.Helper()
	t, ok := x.n.Table(table)
	if !ok {
		tb.Fatalf("%s: no table %s", x.engine, table)
	}
	tx, err := x.db.Begin(tb.Context(), false)
	if err != nil {
		tb.Fatal(err)
	}
	defer tx.Rollback()
	out := map[string][]rowsync.Value{}
	err = tx.ScanRows(t, func(row []rowsync.Value) error {
		row = slices.Clone(row)
		for i, c := range t.Columns {
			row[i] = rowsync.Canonical(c.Class, row[i])
		}
		key, _ := t.SplitRow(row)
		out[rowsync.FormatKey(key)] = row
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// sameRows fails tb unless a and b hold the same rows, value by value.
func sameRows(tb testing.TB, a, b *node, table string) {
	tb.Helper()
	t, _ := a.n.Table(table)
	ar, br := a.rows(tb, table), b.rows(tb, table)
	for k, row := range ar {
		other, ok := br[k]
		if !ok {
			tb.Errorf("%s: row %s of %s is missing on %s", table, k, a.engine, b.engine)
			continue
		}
		for i, c := range t.Columns {
			if !row[i].Equal(other[i]) {
				tb.Errorf("%s key %s column %s: %s has %s %s, %s has %s %s", table, k, c.Name, a.engine, row[i].Kind, row[i], b.engine, other[i].Kind, other[i])
			}
		}
	}
	for k := range br {
		if _, ok := ar[k]; !ok {
			tb.Errorf("%s: row %s is on %s but not on %s", table, k, b.engine, a.engine)
		}
	}
}

func syncNodes(tb testing.TB, a, b *node) *rowsync.SyncResult {
	tb.Helper()
	res, err := a.n.Sync(tb.Context(), b.n, rowsync.SyncOptions{})
	if err != nil {
		tb.Fatalf("sync %s with %s: %v", a.engine, b.engine, err)
	}
	return res
}

// TestTypesRoundTrip writes a row of every type on one engine, syncs it to
// every other engine, checks every value there, changes every row there
// and syncs back: both directions between each pair of engines.
func TestTypesRoundTrip(t *testing.T) {
	for _, from := range testdb.Engines {
		for _, to := range testdb.Engines {
			if from == to {
				continue
			}
			t.Run(from+"_to_"+to, func(t *testing.T) {
				t.Parallel()
				a := newNode(t, from, typesDDL[from])
				b := newNode(t, to, typesDDL[to])
				for _, r := range typeRows() {
					if _, err := a.app.Exec(r.insertSQL(from)); err != nil {
						t.Fatalf("%s: %s: %v", from, r.insertSQL(from), err)
					}
				}
				res := syncNodes(t, a, b)
				if res.Pushed.Changed != int64(len(typeRows())) {
					t.Errorf("applied %d rows on %s, want %d", res.Pushed.Changed, to, len(typeRows()))
				}
				cs, err := b.n.Conflicts(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range cs {
					t.Errorf("conflict on %s: %s: %s", to, c.String(), c.Detail)
				}
				sameRows(t, a, b, "types")
				want := map[string]rowsync.Value{
					"i16": rowsync.IntValue(-32768), "i64": rowsync.IntValue(9223372036854775807),
					"dec": rowsync.TextValue("12345678901234567890.0123456789"), "price": rowsync.TextValue("0.99"),
					"r": rowsync.RealValue(1.5), "f": rowsync.RealValue(0.1), "t": rowsync.TextValue(`héllo "quoted" ✓`),
					"b": rowsync.BlobValue([]byte{0, 0xff, 0x10}), "flag": rowsync.IntValue(1),
					"d": rowsync.TextValue("2024-02-29"), "tm": rowsync.TextValue("23:59:59.123456"),
					"ts": rowsync.TextValue("2024-02-29 23:59:59.123456"), "tstz": rowsync.TextValue("2024-02-29 23:59:59.5Z"),
					"u": rowsync.TextValue("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), "js": rowsync.TextValue(`{"a": [1, 2]}`),
					"en": rowsync.TextValue("happy"), "arr": rowsync.TextValue("{1,2,3}"),
				}
				tbl, _ := b.n.Table("types")
				row := b.rows(t, "types")["1"]
				for c, w := range want {
					if row == nil {
						break
					}
					if got := row[tbl.ColumnIndex(c)]; !got.Equal(w) {
						t.Errorf("%s reads column %s of row 1 as %s %s, want %s %s", to, c, got.Kind, got, w.Kind, w)
					}
				}
				// Back the other way: every row changed on b, every value
				// travels back and is read the same on a.
				if _, err := b.app.Exec(testdb.Rebind(to, `UPDATE types SET id = id + 100`)); err != nil {
					t.Fatal(err)
				}
				syncNodes(t, b, a)
				sameRows(t, a, b, "types")
				if got := len(a.rows(t, "types")); got != len(typeRows()) {
					t.Errorf("%s has %d rows after the round trip, want %d", from, got, len(typeRows()))
				}
			})
		}
	}
}

// TestValueTargetCannotHold sends values that a SQLite column holds but a
// server column cannot: each is held as a constraint conflict on the
// server, naming the row; the other rows apply.
func TestValueTargetCannotHold(t *testing.T) {
	for _, to := range []string{"postgres", "mysql"} {
		t.Run(to, func(t *testing.T) {
			t.Parallel()
			a := newNode(t, "sqlite", typesDDL["sqlite"])
			b := newNode(t, to, typesDDL[to])
			bad := map[int]string{
				10: `INSERT INTO types(id, i64) VALUES (10, 'not a number')`,
				11: `INSERT INTO types(id, vc) VALUES (11, 'a text far longer than twenty characters')`,
				12: `INSERT INTO types(id, i16) VALUES (12, 70000)`,
				13: `INSERT INTO types(id, d) VALUES (13, '2024-02-30')`,
				14: `INSERT INTO types(id, price) VALUES (14, 123456789012.5)`,
			}
			for _, q := range bad {
				if _, err := a.app.Exec(q); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := a.app.Exec(`INSERT INTO types(id, t) VALUES (20, 'fine')`); err != nil {
				t.Fatal(err)
			}
			if _, err := a.n.Sync(t.Context(), b.n, rowsync.SyncOptions{}); err != nil {
				var ce *rowsync.ConstraintError
				if errors.As(err, &ce) {
					t.Fatalf("a value the target cannot hold failed the sync: %v", err)
				}
				t.Fatal(err)
			}
			rows := b.rows(t, "types")
			if _, ok := rows["20"]; !ok {
				t.Errorf("%s: the good row did not arrive", to)
			}
			cs, err := b.n.Conflicts(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			held := map[string]string{}
			for _, c := range cs {
				if c.Kind == rowsync.ConflictConstraint {
					held[rowsync.FormatKey(c.Key)] = c.Detail
				}
			}
			for id := range bad {
				k := fmt.Sprint(id)
				if _, ok := rows[k]; ok {
					t.Errorf("%s: row %d arrived as %v; its value does not fit the column", to, id, rows[k])
				}
				if _, ok := held[k]; !ok {
					t.Errorf("%s: row %d is neither applied nor held as a constraint conflict", to, id)
				}
			}
			for k, d := range held {
				t.Logf("%s holds row %s: %s", to, k, d)
			}
		})
	}
}
