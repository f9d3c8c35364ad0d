package sqlite

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/rowsync/rowsync"
)

// Creating tables from a peer's schema, for rowsync clone. The schema comes
// from the peer (over the wire for an HTTP peer), so every name is quoted,
// every declared type is checked against a plain pattern before it is
// reused, and anything else is refused.

var _ rowsync.TableCreator = (*DB)(nil)

// plainType matches the declared types reused as they are: words, and an
// optional parenthesized list of numbers (NUMERIC(10,2), NVARCHAR(160),
// DOUBLE PRECISION, DECIMAL TEXT).
var plainType = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_ ]{0,63}(\(\s*[+-]?[0-9]{1,9}\s*(,\s*[+-]?[0-9]{1,9}\s*)?\))?$`)

// precision reads p of a declared type such as numeric(p,s).
var precision = regexp.MustCompile(`\(\s*([0-9]{1,9})\s*(,\s*([0-9]{1,9})\s*)?\)`)

// DeclaredType returns the SQLite declared type for a column of a peer's
// schema: the peer's own declared type when the peer is SQLite (engine
// "sqlite") and the type is plain and of the column's class; otherwise a
// type chosen by class, which ClassOfSQLiteType maps back to the same
// class and whose affinity stores the class's canonical values unchanged:
//
//	integer  INTEGER          real      REAL
//	decimal  NUMERIC(p,s) for a precision up to 15 digits (stored as
//	         numbers, exact up to 15 digits), else DECIMAL TEXT (exact
//	         decimals of any length, TEXT affinity)
//	text     TEXT             blob      BLOB
//	boolean  BOOLEAN          json      JSON TEXT (TEXT affinity: a JSON
//	                                    number stays as written)
//	datetime DATE, TIME or DATETIME, after the peer's type
func DeclaredType(col rowsync.Column, engine string) (string, error) {
	if engine == "sqlite" && (col.Type == "" || plainType.MatchString(col.Type)) && rowsync.ClassOfSQLiteType(col.Type) == col.Class {
		return col.Type, nil
	}
	decl := strings.ToLower(strings.TrimSpace(col.Type))
	switch col.Class {
	case rowsync.ClassInteger:
		return "INTEGER", nil
	case rowsync.ClassReal:
		return "REAL", nil
	case rowsync.ClassDecimal:
		if m := precision.FindStringSubmatch(decl); m != nil {
			p, _ := strconv.Atoi(m[1])
			s, _ := strconv.Atoi(m[3])
			if p > 0 && p <= 15 && s <= p {
				return fmt.Sprintf("NUMERIC(%d,%d)", p, s), nil
			}
		}
		return "DECIMAL TEXT", nil
	case rowsync.ClassText:
		return "TEXT", nil
	case rowsync.ClassBlob:
		return "BLOB", nil
	case rowsync.ClassBoolean:
		return "BOOLEAN", nil
	case rowsync.ClassJSON:
		return "JSON TEXT", nil
	case rowsync.ClassDateTime:
		switch {
		case decl == "date":
			return "DATE", nil
		case strings.HasPrefix(decl, "time") && !strings.HasPrefix(decl, "timestamp"):
			return "TIME", nil
		}
		return "DATETIME", nil
	}
	return "", fmt.Errorf("column %q: unknown type class %q", col.Name, col.Class)
}

// CreateTableSQL returns the CREATE TABLE statements for a peer's tracked
// tables, parents first: columns with their declared types (DeclaredType),
// the primary key (a single INTEGER key column is the rowid, as INTEGER
// PRIMARY KEY; other key columns are NOT NULL), and the foreign keys among
// these tables with their ON DELETE and ON UPDATE actions. A foreign key
// that references columns other than the parent's primary key gets a
// UNIQUE constraint on them in the parent, which SQLite requires. A
// foreign key to a table not in tables is left out and reported in
// skipped. UNIQUE constraints, CHECKs, NOT NULL, defaults and indexes are
// not in the schema and are not created.
func CreateTableSQL(tables []rowsync.TableSchema, engine string) (stmts, skipped []string, err error) {
	byName := map[string]*rowsync.TableSchema{}
	var sorted []*rowsync.Table
	for i := range tables {
		t := &tables[i]
		if err := checkName("table", t.Name); err != nil {
			return nil, nil, err
		}
		if strings.HasPrefix(t.Name, "_rowsync_") || strings.HasPrefix(strings.ToLower(t.Name), "sqlite_") {
			return nil, nil, fmt.Errorf("table %q: the name is reserved", t.Name)
		}
		lower := strings.ToLower(t.Name)
		if _, dup := byName[lower]; dup {
			return nil, nil, fmt.Errorf("table %q is listed twice (SQLite table names ignore case)", t.Name)
		}
		byName[lower] = t
		if len(t.Columns) == 0 {
			return nil, nil, fmt.Errorf("table %q has no columns", t.Name)
		}
		seen := map[string]bool{}
		for _, c := range t.Columns {
			if err := checkName("column", c.Name); err != nil {
				return nil, nil, fmt.Errorf("table %q: %w", t.Name, err)
			}
			if seen[strings.ToLower(c.Name)] {
				return nil, nil, fmt.Errorf("table %q: column %q is listed twice (SQLite column names ignore case)", t.Name, c.Name)
			}
			seen[strings.ToLower(c.Name)] = true
		}
		if len(t.Key) == 0 {
			return nil, nil, rowsync.NoPrimaryKeyError(t.Name)
		}
		for _, k := range t.Key {
			if !hasColumn(t, k) {
				return nil, nil, fmt.Errorf("table %q: key column %q not found", t.Name, k)
			}
		}
	}
	// Foreign keys: checked, and the UNIQUE constraints they need.
	fks := map[string][]rowsync.ForeignKey{}
	unique := map[string][][]string{}
	for i := range tables {
		t := &tables[i]
		for _, fk := range t.ForeignKeys {
			p, ok := byName[strings.ToLower(fk.Parent)]
			if !ok {
				skipped = append(skipped, fmt.Sprintf("%s(%s) references %s, which the peer does not track", t.Name, strings.Join(fk.Columns, ", "), fk.Parent))
				continue
			}
			if len(fk.Columns) == 0 || len(fk.Columns) != len(fk.ParentColumns) {
				return nil, nil, fmt.Errorf("table %q: a foreign key to %q has %d columns and %d parent columns", t.Name, fk.Parent, len(fk.Columns), len(fk.ParentColumns))
			}
			for _, c := range fk.Columns {
				if !hasColumn(t, c) {
					return nil, nil, fmt.Errorf("table %q: foreign key column %q not found", t.Name, c)
				}
			}
			for _, c := range fk.ParentColumns {
				if !hasColumn(p, c) {
					return nil, nil, fmt.Errorf("table %q: foreign key to %q: column %q not found there", t.Name, p.Name, c)
				}
			}
			for _, a := range []*string{&fk.OnDelete, &fk.OnUpdate} {
				v, ok := rowsync.FKAction(*a)
				if !ok {
					return nil, nil, fmt.Errorf("table %q: foreign key to %q: unknown action %q", t.Name, p.Name, *a)
				}
				*a = v
			}
			fk.Parent = p.Name
			fks[t.Name] = append(fks[t.Name], fk)
			if !sameSet(fk.ParentColumns, p.Key) {
				u := unique[p.Name]
				if !slices.ContainsFunc(u, func(cols []string) bool { return sameSet(cols, fk.ParentColumns) }) {
					unique[p.Name] = append(u, fk.ParentColumns)
				}
			}
		}
		sorted = append(sorted, &rowsync.Table{Name: t.Name, Parents: rowsync.ParentTables(fks[t.Name])})
	}
	for _, st := range rowsync.SortTables(sorted) {
		t := byName[strings.ToLower(st.Name)]
		var parts []string
		rowid := false
		for _, c := range t.Columns {
			decl, err := DeclaredType(c, engine)
			if err != nil {
				return nil, nil, fmt.Errorf("table %q: %w", t.Name, err)
			}
			def := quote(c.Name)
			if decl != "" {
				def += " " + decl
			}
			switch {
			case len(t.Key) == 1 && t.Key[0] == c.Name && strings.EqualFold(decl, "INTEGER"):
				def += " PRIMARY KEY"
				rowid = true
			case slices.Contains(t.Key, c.Name):
				def += " NOT NULL"
			}
			parts = append(parts, def)
		}
		if !rowid {
			parts = append(parts, "PRIMARY KEY ("+quoteList(t.Key)+")")
		}
		for _, u := range unique[t.Name] {
			parts = append(parts, "UNIQUE ("+quoteList(u)+")")
		}
		for _, fk := range fks[t.Name] {
			parts = append(parts, fmt.Sprintf("FOREIGN KEY (%s) REFERENCES %s (%s) ON DELETE %s ON UPDATE %s",
				quoteList(fk.Columns), quote(fk.Parent), quoteList(fk.ParentColumns), fk.OnDelete, fk.OnUpdate))
		}
		stmts = append(stmts, "CREATE TABLE "+quote(t.Name)+" (\n  "+strings.Join(parts, ",\n  ")+"\n)")
	}
	return stmts, skipped, nil
}

// CreateTables implements rowsync.TableCreator: it creates the tables of
// CreateTableSQL in one transaction, into a database without tables.
func (d *DB) CreateTables(ctx context.Context, tables []rowsync.TableSchema, engine string) ([]string, error) {
	stmts, skipped, err := CreateTableSQL(tables, engine)
	if err != nil {
		return nil, err
	}
	conn, err := d.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return nil, err
	}
	for _, s := range stmts {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			conn.ExecContext(context.Background(), "ROLLBACK")
			return nil, fmt.Errorf("%s: %w", strings.SplitN(s, "\n", 2)[0], err)
		}
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		conn.ExecContext(context.Background(), "ROLLBACK")
		return nil, err
	}
	return skipped, nil
}

func checkName(what, name string) error {
	if name == "" || len(name) > 1024 || strings.ContainsRune(name, 0) {
		return fmt.Errorf("bad %s name %q", what, name)
	}
	return nil
}

func hasColumn(t *rowsync.TableSchema, name string) bool {
	return slices.ContainsFunc(t.Columns, func(c rowsync.Column) bool { return c.Name == name })
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = quote(n)
	}
	return strings.Join(q, ", ")
}
