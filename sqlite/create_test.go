package sqlite

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/rowsync/rowsync"
)

// TestDeclaredTypeRoundTrip: for every type class and every engine a peer
// may be, the declared type clone gives a SQLite column is one that
// ClassOfSQLiteType maps back to the same class, so the clone's first
// schema check passes; and a column created with it stores the class's
// canonical values unchanged (the affinity converts nothing).
func TestDeclaredTypeRoundTrip(t *testing.T) {
	// Declared types peers report, per class (SQLite, PostgreSQL, MySQL).
	decls := map[rowsync.TypeClass][]string{
		rowsync.ClassInteger:  {"INTEGER", "BIGINT", "integer", "smallint", "int(11)", "bigint unsigned", "interval"},
		rowsync.ClassReal:     {"REAL", "DOUBLE PRECISION", "double precision", "real", "float", "double"},
		rowsync.ClassDecimal:  {"NUMERIC(10,2)", "DECIMAL TEXT", "MONEY", "numeric(10,2)", "numeric", "numeric(30,10)", "money", "decimal(65,30)"},
		rowsync.ClassText:     {"TEXT", "NVARCHAR(160)", "character varying(120)", "uuid", "varchar(20)", "enum('a','b')", "inet"},
		rowsync.ClassBlob:     {"", "BLOB", "bytea", "longblob", "varbinary(16)"},
		rowsync.ClassBoolean:  {"BOOLEAN", "boolean", "tinyint(1)", "bit(1)"},
		rowsync.ClassDateTime: {"DATETIME", "DATE", "timestamp without time zone", "timestamp with time zone", "date", "time without time zone", "time(3)", "datetime(6)"},
		rowsync.ClassJSON:     {"JSON", "jsonb", "json", "longtext"},
	}
	canonical := map[rowsync.TypeClass]rowsync.Value{
		rowsync.ClassInteger:  rowsync.IntValue(-42),
		rowsync.ClassReal:     rowsync.RealValue(1.5),
		rowsync.ClassDecimal:  rowsync.TextValue("12.5"),
		rowsync.ClassText:     rowsync.TextValue("0012"),
		rowsync.ClassBlob:     rowsync.BlobValue([]byte{0, 1, 2}),
		rowsync.ClassBoolean:  rowsync.IntValue(1),
		rowsync.ClassDateTime: rowsync.TextValue("2024-02-29 23:59:59.5Z"),
		rowsync.ClassJSON:     rowsync.TextValue("123"),
	}
	d, err := Open(filepath.Join(t.TempDir(), "types.db"), true)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	i := 0
	for class, ds := range decls {
		for _, engine := range []string{"sqlite", "postgres", "mysql", ""} {
			for _, decl := range ds {
				if engine == "sqlite" && rowsync.ClassOfSQLiteType(decl) != class {
					continue // a SQLite peer cannot have this column
				}
				got, err := DeclaredType(rowsync.Column{Name: "c", Type: decl, Class: class}, engine)
				if err != nil {
					t.Fatalf("%s %q from %s: %v", class, decl, engine, err)
				}
				if back := rowsync.ClassOfSQLiteType(got); back != class {
					t.Errorf("%s column %q from a %q peer: declared %q, which is class %s", class, decl, engine, got, back)
				}
				if engine == "sqlite" && got != decl {
					t.Errorf("%s column %q from a SQLite peer: declared %q, want the peer's type", class, decl, got)
				}
				// What the column stores of a canonical value.
				i++
				tbl := quote("t" + strings.Repeat("x", i))
				if _, err := d.db.Exec(`CREATE TABLE ` + tbl + `(k INTEGER PRIMARY KEY, c ` + got + `)`); err != nil {
					t.Fatalf("declared %q: %v", got, err)
				}
				v := canonical[class]
				var arg any
				switch v.Kind {
				case rowsync.Integer:
					arg = v.Int
				case rowsync.Real:
					arg = v.Float
				case rowsync.Text:
					arg = v.Str
				case rowsync.Blob:
					arg = []byte(v.Str)
				}
				if _, err := d.db.Exec(`INSERT INTO `+tbl+` VALUES (1, ?)`, arg); err != nil {
					t.Fatal(err)
				}
				var typ string
				if err := d.db.QueryRow(`SELECT typeof(c) FROM ` + tbl).Scan(&typ); err != nil {
					t.Fatal(err)
				}
				want := map[rowsync.Kind]string{rowsync.Integer: "integer", rowsync.Real: "real", rowsync.Text: "text", rowsync.Blob: "blob"}[v.Kind]
				if class == rowsync.ClassDecimal && strings.HasPrefix(got, "NUMERIC") {
					want = "real" // 12.5 as a number: exact up to 15 digits, and the canonical form is the same
				}
				if typ != want && !(engine == "sqlite") {
					t.Errorf("%s column declared %q (peer %s %q) stores %v as %s, want %s", class, got, engine, decl, v, typ, want)
				}
			}
		}
	}
	for _, c := range []struct{ decl, want string }{
		{"numeric(10,2)", "NUMERIC(10,2)"}, {"numeric(15,0)", "NUMERIC(15,0)"}, {"numeric(16,2)", "DECIMAL TEXT"},
		{"numeric", "DECIMAL TEXT"}, {"money", "DECIMAL TEXT"},
	} {
		if got, _ := DeclaredType(rowsync.Column{Name: "c", Type: c.decl, Class: rowsync.ClassDecimal}, "postgres"); got != c.want {
			t.Errorf("decimal %q: declared %q, want %q", c.decl, got, c.want)
		}
	}
	if _, err := DeclaredType(rowsync.Column{Name: "c", Type: "x", Class: "geometry"}, "postgres"); err == nil {
		t.Error("an unknown type class was accepted")
	}
}

// TestCreateTableSQL: the tables come out parents first, with a rowid key
// for a single INTEGER key, NOT NULL composite keys, the foreign keys and
// their actions, quoted names; a name or type from a hostile peer never
// becomes SQL.
func TestCreateTableSQL(t *testing.T) {
	const evil = `x"; DROP TABLE t; --`
	tables := []rowsync.TableSchema{
		{Name: "Child Table", Columns: []rowsync.Column{
			{Name: "a", Type: "TEXT", Class: rowsync.ClassText}, {Name: "n", Type: "INTEGER", Class: rowsync.ClassInteger},
			{Name: "pid", Type: "bigint", Class: rowsync.ClassInteger}, {Name: "code", Type: "text", Class: rowsync.ClassText},
			{Name: evil, Type: "INTEGER); DROP TABLE t; --", Class: rowsync.ClassInteger},
		}, Key: []string{"a", "n"}, ForeignKeys: []rowsync.ForeignKey{
			{Columns: []string{"pid"}, Parent: "Parent", ParentColumns: []string{"Id"}, OnDelete: "cascade", OnUpdate: ""},
			{Columns: []string{"code"}, Parent: "Parent", ParentColumns: []string{"Code"}, OnDelete: rowsync.FKSetNull, OnUpdate: rowsync.FKRestrict},
			{Columns: []string{"n"}, Parent: "elsewhere", ParentColumns: []string{"id"}},
		}},
		{Name: "Parent", Columns: []rowsync.Column{{Name: "Id", Type: "integer", Class: rowsync.ClassInteger}, {Name: "Code", Type: "varchar(3)", Class: rowsync.ClassText}}, Key: []string{"Id"}},
	}
	stmts, skipped, err := CreateTableSQL(tables, "sqlite")
	if err != nil {
		t.Fatal(err)
	}
	if len(stmts) != 2 || !strings.HasPrefix(stmts[0], `CREATE TABLE "Parent"`) {
		t.Fatalf("not parents first: %q", stmts)
	}
	if len(skipped) != 1 || !strings.Contains(skipped[0], "elsewhere") {
		t.Errorf("skipped = %q, want the key to the untracked table", skipped)
	}
	d, err := Open(filepath.Join(t.TempDir(), "c.db"), true)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.CreateTables(t.Context(), tables, "sqlite"); err != nil {
		t.Fatal(err)
	}
	cols, fks, err := introspect(t.Context(), d.db, "Child Table")
	if err != nil {
		t.Fatal(err)
	}
	if len(cols) != 5 || cols[4].Name != evil || cols[4].Type != "INTEGER" || keyOf(cols)[0] != "a" || keyOf(cols)[1] != "n" {
		t.Errorf("columns %+v", cols)
	}
	want := []rowsync.ForeignKey{
		{Columns: []string{"pid"}, Parent: "Parent", ParentColumns: []string{"Id"}, OnDelete: rowsync.FKCascade, OnUpdate: rowsync.FKNoAction},
		{Columns: []string{"code"}, Parent: "Parent", ParentColumns: []string{"Code"}, OnDelete: rowsync.FKSetNull, OnUpdate: rowsync.FKRestrict},
	}
	if !reflect.DeepEqual(fks, want) {
		t.Errorf("foreign keys\n got %+v\nwant %+v", fks, want)
	}
	// Parent's Id is the rowid; its Code got the UNIQUE the second key needs.
	var pk int
	if err := d.db.QueryRow(`SELECT count(*) FROM pragma_index_list('Parent') WHERE "unique" AND origin = 'u'`).Scan(&pk); err != nil || pk != 1 {
		t.Errorf("UNIQUE(Code) on Parent: %d, %v", pk, err)
	}
	if _, err := d.db.Exec(`INSERT INTO "Parent" VALUES ('x', 'abc')`); err == nil {
		t.Error("Parent.Id is not the rowid: it took a text value")
	}
	if _, err := d.db.Exec(`INSERT INTO "Child Table"(a, n, pid) VALUES ('a', 1, 7)`); err == nil {
		t.Error("the foreign key is not enforced")
	}
	if _, err := d.db.Exec(`INSERT INTO "Child Table"(a, n) VALUES (NULL, 1)`); err == nil {
		t.Error("a NULL key column was accepted")
	}

	bad := []struct {
		name   string
		tables []rowsync.TableSchema
		want   string
	}{
		{"reserved name", []rowsync.TableSchema{{Name: "_rowsync_state", Columns: tables[1].Columns, Key: []string{"Id"}}}, "reserved"},
		{"sqlite name", []rowsync.TableSchema{{Name: "sqlite_x", Columns: tables[1].Columns, Key: []string{"Id"}}}, "reserved"},
		{"no key", []rowsync.TableSchema{{Name: "p", Columns: tables[1].Columns}}, "primary key"},
		{"key not a column", []rowsync.TableSchema{{Name: "p", Columns: tables[1].Columns, Key: []string{"nope"}}}, "nope"},
		{"twice", []rowsync.TableSchema{tables[1], {Name: "PARENT", Columns: tables[1].Columns, Key: []string{"Id"}}}, "twice"},
		{"NUL", []rowsync.TableSchema{{Name: "a\x00b", Columns: tables[1].Columns, Key: []string{"Id"}}}, "bad table name"},
		{"unknown class", []rowsync.TableSchema{{Name: "p", Columns: []rowsync.Column{{Name: "Id", Class: "geometry"}}, Key: []string{"Id"}}}, "geometry"},
		{"bad action", []rowsync.TableSchema{tables[1], {Name: "c", Columns: tables[1].Columns, Key: []string{"Id"},
			ForeignKeys: []rowsync.ForeignKey{{Columns: []string{"Id"}, Parent: "Parent", ParentColumns: []string{"Id"}, OnDelete: "DROP TABLE"}}}}, "action"},
		{"fk column", []rowsync.TableSchema{tables[1], {Name: "c", Columns: tables[1].Columns, Key: []string{"Id"},
			ForeignKeys: []rowsync.ForeignKey{{Columns: []string{"x"}, Parent: "Parent", ParentColumns: []string{"Id"}}}}}, `"x"`},
	}
	for _, b := range bad {
		if _, _, err := CreateTableSQL(b.tables, "postgres"); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s: error %v, want one mentioning %q", b.name, err, b.want)
		}
	}
}

// TestForeignKeysInSchema: the adapter's Tables carry the foreign keys,
// composite ones and ones written without parent columns (the parent's
// primary key) included, and Schema exports them; Parents follows them.
func TestForeignKeysInSchema(t *testing.T) {
	d := installed(t, `
CREATE TABLE p(a TEXT, b INTEGER, PRIMARY KEY(a, b));
CREATE TABLE q(id INTEGER PRIMARY KEY);
CREATE TABLE c(id INTEGER PRIMARY KEY, pa TEXT, pb INTEGER, qid INTEGER REFERENCES q ON DELETE SET NULL,
  FOREIGN KEY(pa, pb) REFERENCES p(a, b) ON UPDATE CASCADE);`, "p", "q", "c")
	ts, err := d.Tables(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var c *rowsync.Table
	for _, x := range ts {
		if x.Name == "c" {
			c = x
		}
	}
	want := []rowsync.ForeignKey{
		{Columns: []string{"qid"}, Parent: "q", ParentColumns: []string{"id"}, OnDelete: rowsync.FKSetNull, OnUpdate: rowsync.FKNoAction},
		{Columns: []string{"pa", "pb"}, Parent: "p", ParentColumns: []string{"a", "b"}, OnDelete: rowsync.FKNoAction, OnUpdate: rowsync.FKCascade},
	}
	if got := c.Schema().ForeignKeys; !reflect.DeepEqual(got, want) {
		t.Errorf("foreign keys of c\n got %+v\nwant %+v", got, want)
	}
	if !reflect.DeepEqual(c.Parents, []string{"p", "q"}) {
		t.Errorf("parents of c: %q", c.Parents)
	}
	// Hello carries none of it: old servers decode hello strictly.
	for _, s := range rowsync.WithoutForeignKeys([]rowsync.TableSchema{c.Schema()}) {
		if s.ForeignKeys != nil {
			t.Error("WithoutForeignKeys kept foreign keys")
		}
	}
}
