package rowsync

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// TypeClass is the engine-neutral class of a column type. Peers compare
// classes, not declared types, so one logical schema can live on different
// engines.
type TypeClass string

// The type classes.
const (
	ClassInteger  TypeClass = "integer"
	ClassReal     TypeClass = "real"
	ClassDecimal  TypeClass = "decimal"
	ClassText     TypeClass = "text"
	ClassBlob     TypeClass = "blob"
	ClassBoolean  TypeClass = "boolean"
	ClassDateTime TypeClass = "datetime"
	ClassJSON     TypeClass = "json"
)

// Column is one column of a tracked table.
type Column struct {
	Name  string    `json:"name"`
	Type  string    `json:"type"` // as declared
	Class TypeClass `json:"class"`
}

// Table is a tracked table as the engine sees it.
type Table struct {
	ID      int64    // local id (names the table's bookkeeping objects)
	Name    string   // as in the database
	Columns []Column // in registered order
	Key     []int    // indexes into Columns of the primary key, in key order
	Parents []string // tables this one references by foreign key
	// ForeignKeys are the table's foreign keys to tables of the same
	// database (schema), as the adapter introspected them. They are
	// exported in Schema for clone; schemas are never compared by them.
	ForeignKeys []ForeignKey
	// Cols are the indexes of the non-key columns, in column order; Row.Cells
	// follow this order.
	Cols []int
}

// finish computes derived fields.
func (t *Table) finish() {
	t.Cols = t.Cols[:0]
	for i := range t.Columns {
		if !t.isKey(i) {
			t.Cols = append(t.Cols, i)
		}
	}
}

func (t *Table) isKey(i int) bool {
	for _, k := range t.Key {
		if k == i {
			return true
		}
	}
	return false
}

// NewTable builds a Table from its columns and key column names.
func NewTable(id int64, name string, cols []Column, key []string, parents []string) (*Table, error) {
	t := &Table{ID: id, Name: name, Columns: cols, Parents: parents}
	if len(key) == 0 {
		return nil, NoPrimaryKeyError(name)
	}
	for _, k := range key {
		i := t.ColumnIndex(k)
		if i < 0 {
			return nil, fmt.Errorf("table %q: key column %q not found", name, k)
		}
		t.Key = append(t.Key, i)
	}
	t.finish()
	return t, nil
}

// ColumnIndex returns the index of the named column, or -1.
func (t *Table) ColumnIndex(name string) int {
	for i, c := range t.Columns {
		if c.Name == name {
			return i
		}
	}
	return -1
}

// KeyNames returns the names of the key columns.
func (t *Table) KeyNames() []string {
	ns := make([]string, len(t.Key))
	for i, k := range t.Key {
		ns[i] = t.Columns[k].Name
	}
	return ns
}

// SplitRow splits a full row (all columns in column order) into its key and
// its non-key values.
func (t *Table) SplitRow(full []Value) (key, vals []Value) {
	key = make([]Value, len(t.Key))
	for i, k := range t.Key {
		key[i] = full[k]
	}
	vals = make([]Value, len(t.Cols))
	for i, c := range t.Cols {
		vals[i] = full[c]
	}
	return key, vals
}

// JoinRow is the inverse of SplitRow.
func (t *Table) JoinRow(key, vals []Value) []Value {
	full := make([]Value, len(t.Columns))
	for i, k := range t.Key {
		full[k] = key[i]
	}
	for i, c := range t.Cols {
		full[c] = vals[i]
	}
	return full
}

// ForeignKey is a foreign key of a table: its columns reference the
// columns of a parent table.
type ForeignKey struct {
	Columns       []string `json:"columns"`        // in the child table, in key order
	Parent        string   `json:"parent"`         // the parent table
	ParentColumns []string `json:"parent_columns"` // in the parent table, matching Columns
	OnDelete      string   `json:"on_delete"`      // one of the FKAction values
	OnUpdate      string   `json:"on_update"`      // one of the FKAction values
}

// The referential actions of a ForeignKey, as SQL spells them.
const (
	FKNoAction   = "NO ACTION"
	FKRestrict   = "RESTRICT"
	FKCascade    = "CASCADE"
	FKSetNull    = "SET NULL"
	FKSetDefault = "SET DEFAULT"
)

// FKAction normalizes a referential action as an engine's catalog spells
// it ("cascade", "SET NULL", "" for none) to one of the FK constants, and
// reports false for anything else.
func FKAction(s string) (string, bool) {
	switch a := strings.Join(strings.Fields(strings.ToUpper(s)), " "); a {
	case "", FKNoAction:
		return FKNoAction, true
	case FKRestrict, FKCascade, FKSetNull, FKSetDefault:
		return a, true
	}
	return "", false
}

// ParentTables returns the distinct parent tables of fks, sorted: what
// Table.Parents holds.
func ParentTables(fks []ForeignKey) []string {
	var ps []string
	for _, fk := range fks {
		if !slices.Contains(ps, fk.Parent) {
			ps = append(ps, fk.Parent)
		}
	}
	sort.Strings(ps)
	return ps
}

// TableSchema is the part of a table peers compare before a sync, plus
// its foreign keys (for clone; CompareSchemas ignores them).
type TableSchema struct {
	Name    string   `json:"name"`
	Columns []Column `json:"columns"`
	Key     []string `json:"key"`
	// ForeignKeys is sent only in a schema response (GET /v1/schema),
	// never in hello, whose strict decoding on older servers would refuse
	// the field (see WithoutForeignKeys).
	ForeignKeys []ForeignKey `json:"foreign_keys,omitempty"`
}

// Schema returns the schema of t, foreign keys included.
func (t *Table) Schema() TableSchema {
	return TableSchema{Name: t.Name, Columns: t.Columns, Key: t.KeyNames(), ForeignKeys: t.ForeignKeys}
}

// WithoutForeignKeys returns a copy of ts without foreign keys: the
// schemas a hello carries, which are the same bytes as before foreign
// keys were introspected.
func WithoutForeignKeys(ts []TableSchema) []TableSchema {
	out := make([]TableSchema, len(ts))
	for i, t := range ts {
		t.ForeignKeys = nil
		out[i] = t
	}
	return out
}

// SchemaError reports a difference between two nodes' tracked tables.
type SchemaError struct {
	Table  string
	Column string
	Detail string
}

func (e *SchemaError) Error() string {
	if e.Column != "" {
		return fmt.Sprintf("schema mismatch: table %q column %q: %s", e.Table, e.Column, e.Detail)
	}
	return fmt.Sprintf("schema mismatch: table %q: %s", e.Table, e.Detail)
}

// CompareSchemas checks that two nodes track the same tables with the same
// columns, keys and type classes (not declared types or column order). The
// first difference is returned as a *SchemaError; local and remote name the
// sides in its message.
func CompareSchemas(local, remote []TableSchema, remoteName string) error {
	rm := map[string]TableSchema{}
	for _, t := range remote {
		rm[t.Name] = t
	}
	lm := map[string]bool{}
	for _, lt := range local {
		lm[lt.Name] = true
		rt, ok := rm[lt.Name]
		if !ok {
			return &SchemaError{Table: lt.Name, Detail: "tracked here but not on " + remoteName}
		}
		rc := map[string]Column{}
		for _, c := range rt.Columns {
			rc[c.Name] = c
		}
		for _, c := range lt.Columns {
			o, ok := rc[c.Name]
			if !ok {
				return &SchemaError{Table: lt.Name, Column: c.Name, Detail: "column missing on " + remoteName}
			}
			if o.Class != c.Class {
				return &SchemaError{Table: lt.Name, Column: c.Name, Detail: fmt.Sprintf("type class %s here, %s on %s", c.Class, o.Class, remoteName)}
			}
			delete(rc, c.Name)
		}
		for name := range rc {
			return &SchemaError{Table: lt.Name, Column: name, Detail: "column exists on " + remoteName + " but not here"}
		}
		if strings.Join(lt.Key, ",") != strings.Join(rt.Key, ",") {
			return &SchemaError{Table: lt.Name, Column: strings.Join(lt.Key, ","), Detail: fmt.Sprintf("primary key (%s) here, (%s) on %s", strings.Join(lt.Key, ", "), strings.Join(rt.Key, ", "), remoteName)}
		}
	}
	var extra []string
	for _, t := range remote {
		if !lm[t.Name] {
			extra = append(extra, t.Name)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return &SchemaError{Table: extra[0], Detail: "tracked on " + remoteName + " but not here"}
	}
	return nil
}

// SortTables orders tables parents first (by foreign keys; self references
// and cycles are broken by name) and returns the new slice.
func SortTables(ts []*Table) []*Table {
	byName := map[string]*Table{}
	names := make([]string, 0, len(ts))
	for _, t := range ts {
		byName[t.Name] = t
		names = append(names, t.Name)
	}
	sort.Strings(names)
	state := map[string]int{} // 0 new, 1 visiting, 2 done
	var out []*Table
	var visit func(string)
	visit = func(n string) {
		if state[n] != 0 {
			return
		}
		state[n] = 1
		t := byName[n]
		ps := append([]string(nil), t.Parents...)
		sort.Strings(ps)
		for _, p := range ps {
			if _, ok := byName[p]; ok && p != n {
				visit(p)
			}
		}
		state[n] = 2
		out = append(out, t)
	}
	for _, n := range names {
		visit(n)
	}
	return out
}

// cyclicTables returns the tables that reach themselves by foreign keys
// (a self reference included): only their rows can reference each other
// in a cycle.
func cyclicTables(ts []*Table) map[string]bool {
	byName := map[string]*Table{}
	for _, t := range ts {
		byName[t.Name] = t
	}
	out := map[string]bool{}
	for _, t := range ts {
		seen := map[string]bool{}
		stack := append([]string(nil), t.Parents...)
		for len(stack) > 0 && !out[t.Name] {
			p := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if p == t.Name {
				out[t.Name] = true
			}
			if pt, ok := byName[p]; ok && !seen[p] {
				seen[p] = true
				stack = append(stack, pt.Parents...)
			}
		}
	}
	return out
}

// ClassOfSQLiteType maps a declared SQLite column type to its class, by the
// names applications use (BOOLEAN, DATETIME, JSON, NUMERIC(10,2)) and
// otherwise by SQLite's affinity rules.
func ClassOfSQLiteType(decl string) TypeClass {
	u := strings.ToUpper(decl)
	switch {
	case strings.Contains(u, "BOOL"):
		return ClassBoolean
	case strings.Contains(u, "INT"):
		return ClassInteger
	case strings.Contains(u, "DATE") || strings.Contains(u, "TIME"):
		return ClassDateTime
	case strings.Contains(u, "JSON"):
		return ClassJSON
	case strings.Contains(u, "DECIMAL") || strings.Contains(u, "NUMERIC"):
		// Also "DECIMAL TEXT": SQLite gives it TEXT affinity, so exact
		// decimals of any length are stored as written.
		return ClassDecimal
	case strings.Contains(u, "CHAR") || strings.Contains(u, "CLOB") || strings.Contains(u, "TEXT") || strings.Contains(u, "UUID"):
		return ClassText
	case u == "" || strings.Contains(u, "BLOB"):
		return ClassBlob
	case strings.Contains(u, "REAL") || strings.Contains(u, "FLOA") || strings.Contains(u, "DOUB"):
		return ClassReal
	}
	return ClassDecimal
}
