package crossengine

import (
	"database/sql"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/rowsync/rowsync"
	"github.com/rowsync/rowsync/internal/testdb"
)

// TestCloneChinookFromPostgres clones the Chinook sample from a PostgreSQL
// hub, over HTTP, into a new SQLite file: the file gets the hub's tables
// with SQLite types of the same classes and the hub's eleven foreign keys
// (enforced, and the rows satisfy them), the rows are identical by digest,
// and a write on the clone syncs back to the hub.
func TestCloneChinookFromPostgres(t *testing.T) {
	hub := chinookNode(t, "postgres", "hub", chinookScript(t, "Chinook_PostgreSql.sql", true))
	client := serve(t, hub)
	addr := testdb.New(t, "sqlite")
	db, err := openAddr(t, addr)
	if err != nil {
		t.Fatal(err)
	}
	res, err := rowsync.Clone(t.Context(), db, client, rowsync.CloneOptions{Name: "laptop"})
	if err != nil {
		t.Fatal(err)
	}
	lite := &node{engine: "sqlite", app: testdb.App(t, addr), db: db, n: res.Node}
	if len(res.Created) != 11 {
		t.Errorf("created %q", res.Created)
	}
	if total := identical(t, hub, lite); total < 15000 || res.Sync.Pulled.Rows != total {
		t.Errorf("%d rows pulled of %d", res.Sync.Pulled.Rows, total)
	}

	// The hub's foreign keys, as PostgreSQL reports them, are in the file.
	var want []string
	for _, ts := range hub.n.Schema() {
		for _, fk := range ts.ForeignKeys {
			want = append(want, ts.Name+"("+strings.Join(fk.Columns, ",")+")->"+fk.Parent+"("+strings.Join(fk.ParentColumns, ",")+") "+fk.OnDelete+"/"+fk.OnUpdate)
		}
	}
	var got []string
	rows, err := lite.app.Query(`SELECT m.name, f.id, group_concat(f."from"), f."table", group_concat(f."to"), f.on_delete, f.on_update
		FROM sqlite_schema m, pragma_foreign_key_list(m.name) f WHERE m.type = 'table' GROUP BY m.name, f.id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var tbl, from, parent, to, del, upd string
		var id int
		if err := rows.Scan(&tbl, &id, &from, &parent, &to, &del, &upd); err != nil {
			t.Fatal(err)
		}
		got = append(got, tbl+"("+from+")->"+parent+"("+to+") "+del+"/"+upd)
	}
	rows.Close()
	sort.Strings(got)
	sort.Strings(want)
	if len(want) != 11 || !slices.Equal(got, want) {
		t.Errorf("foreign keys in the clone\n got %q\nwant %q", got, want)
	}
	if n := count(t, lite.app, `SELECT count(*) FROM pragma_foreign_key_check`); n != 0 {
		t.Errorf("%d foreign key violations in the clone", n)
	}
	if _, err := lite.app.Exec(`INSERT INTO track(track_id, name, album_id, media_type_id, milliseconds, unit_price) VALUES (99999, 'x', 123456, 1, 1, 0.99)`); err == nil || !testdb.IsConstraint(err) {
		t.Errorf("a track of a missing album: %v, want a foreign key error", err)
	}
	types := map[string]string{}
	rows, err = lite.app.Query(`SELECT name, type FROM pragma_table_info('invoice')`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n, ty string
		rows.Scan(&n, &ty)
		types[n] = ty
	}
	rows.Close()
	if types["invoice_id"] != "INTEGER" || types["invoice_date"] != "DATETIME" || types["total"] != "NUMERIC(10,2)" || types["billing_city"] != "TEXT" {
		t.Errorf("declared types of invoice: %v", types)
	}

	// A write on the clone goes back to the hub.
	if _, err := lite.app.Exec(`UPDATE artist SET name = 'changed on the laptop' WHERE artist_id = 1`); err != nil {
		t.Fatal(err)
	}
	sr, err := lite.n.Sync(t.Context(), client, rowsync.SyncOptions{})
	if err != nil || sr.Pushed.Changed != 1 {
		t.Fatalf("sync back: %+v %v", sr, err)
	}
	identical(t, hub, lite)
}

// TestForeignKeysAcrossEngines: one schema with a composite foreign key
// and referential actions, on every engine, exports the same foreign keys.
func TestForeignKeysAcrossEngines(t *testing.T) {
	ddl := `CREATE TABLE p(a VARCHAR(10), b INTEGER, PRIMARY KEY(a, b));
CREATE TABLE q(id INTEGER PRIMARY KEY);
CREATE TABLE c(id INTEGER PRIMARY KEY, pa VARCHAR(10), pb INTEGER, qid INTEGER,
  FOREIGN KEY(qid) REFERENCES q(id) ON DELETE SET NULL,
  FOREIGN KEY(pa, pb) REFERENCES p(a, b) ON DELETE CASCADE ON UPDATE CASCADE)`
	var first []rowsync.ForeignKey
	for _, engine := range testdb.Engines {
		x := newNode(t, engine, ddl)
		c, ok := x.n.Table("c")
		if !ok {
			t.Fatalf("%s: no table c", engine)
		}
		fks := slices.Clone(c.Schema().ForeignKeys)
		slices.SortFunc(fks, func(a, b rowsync.ForeignKey) int { return strings.Compare(a.Parent, b.Parent) })
		if len(fks) != 2 || fks[0].Parent != "p" || !slices.Equal(fks[0].Columns, []string{"pa", "pb"}) || !slices.Equal(fks[0].ParentColumns, []string{"a", "b"}) ||
			fks[0].OnDelete != rowsync.FKCascade || fks[0].OnUpdate != rowsync.FKCascade || fks[1].OnDelete != rowsync.FKSetNull {
			t.Errorf("%s: foreign keys of c: %+v", engine, fks)
		}
		if first == nil {
			first = fks
		} else if !slices.EqualFunc(first, fks, func(a, b rowsync.ForeignKey) bool {
			return a.Parent == b.Parent && slices.Equal(a.Columns, b.Columns) && slices.Equal(a.ParentColumns, b.ParentColumns) && a.OnDelete == b.OnDelete
		}) {
			t.Errorf("%s: foreign keys %+v, sqlite %+v", engine, fks, first)
		}
		if !slices.Equal(c.Parents, []string{"p", "q"}) {
			t.Errorf("%s: parents of c: %q", engine, c.Parents)
		}
	}
}

func count(tb testing.TB, db *sql.DB, q string) int64 {
	tb.Helper()
	var n int64
	if err := db.QueryRow(q).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}
