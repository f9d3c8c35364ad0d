// Package sqlite implements rowsync.Database for SQLite files, with change
// capture by triggers. See DESIGN.md beside this file.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"

	"github.com/rowsync/rowsync"
	"github.com/rowsync/rowsync/internal/bookkeeping"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// DB is a SQLite database file used as a rowsync node.
type DB struct {
	path string
	db   *sql.DB
	// wsem holds the writer connection w while a write transaction uses
	// it (see writer.go).
	wsem   chan struct{}
	w      *writer
	closed atomic.Bool
}

var _ rowsync.Database = (*DB)(nil)

// Open opens the SQLite database at path. Unless create is true, the file
// must exist.
func Open(path string, create bool) (*DB, error) {
	if !create {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("open sqlite database %s: %w", path, err)
		}
	}
	dsn := "file:" + escapePath(path) + "?_pragma=busy_timeout(30000)&_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite database %s: %w", path, err)
	}
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(4)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite database %s: %w", path, err)
	}
	return &DB{path: path, db: db, wsem: make(chan struct{}, 1)}, nil
}

func escapePath(p string) string {
	r := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")
	return r.Replace(p)
}

// Address implements rowsync.Database.
func (d *DB) Address() string { return "sqlite:" + d.path }

// Engine implements rowsync.EngineNamer.
func (d *DB) Engine() string { return "sqlite" }

// Path returns the database file's path.
func (d *DB) Path() string { return d.path }

// SQL returns the underlying *sql.DB (for applications and tests).
func (d *DB) SQL() *sql.DB { return d.db }

// Close implements rowsync.Database.
func (d *DB) Close() error {
	d.closeWriter()
	return d.db.Close()
}

// quote quotes an identifier.
func quote(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

// isMismatch reports whether err is SQLite's datatype mismatch (a
// non-integer value for an INTEGER PRIMARY KEY).
func isMismatch(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_MISMATCH
}

// isConstraint reports whether err is a SQLite constraint failure.
func isConstraint(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_CONSTRAINT
}

const metaDDL = `
CREATE TABLE IF NOT EXISTS _rowsync_state(key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _rowsync_tables(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, columns TEXT NOT NULL, key TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS _rowsync_nodes(idx INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS _rowsync_peers(id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '', url TEXT NOT NULL DEFAULT '',
  last_sync INTEGER NOT NULL DEFAULT 0, sync_count INTEGER NOT NULL DEFAULT 0, rows_in INTEGER NOT NULL DEFAULT 0,
  rows_out INTEGER NOT NULL DEFAULT 0, acked_seq INTEGER NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS _rowsync_cursors(peer TEXT NOT NULL, tbl TEXT NOT NULL, kind INTEGER NOT NULL, seq INTEGER NOT NULL,
  PRIMARY KEY(peer, tbl, kind)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _rowsync_conflicts(id INTEGER PRIMARY KEY, at INTEGER NOT NULL, tbl TEXT NOT NULL, pk BLOB NOT NULL,
  col TEXT NOT NULL, kind TEXT NOT NULL, winner BLOB, winner_hlc INTEGER NOT NULL, winner_node TEXT NOT NULL,
  loser BLOB, loser_hlc INTEGER NOT NULL, loser_node TEXT NOT NULL, peer TEXT NOT NULL, detail TEXT NOT NULL,
  resolved INTEGER NOT NULL DEFAULT 0,
  UNIQUE(tbl, pk, col, kind, winner_hlc, winner_node, loser_hlc, loser_node));
CREATE TABLE IF NOT EXISTS _rowsync_held(id INTEGER PRIMARY KEY, tbl TEXT NOT NULL, pk BLOB NOT NULL, peer TEXT NOT NULL,
  change BLOB NOT NULL, error TEXT NOT NULL, at INTEGER NOT NULL, UNIQUE(tbl, pk, peer));
`

// UserTables implements rowsync.Database.
func (d *DB) UserTables(ctx context.Context) ([]string, error) {
	// pragma_table_list tells ordinary tables from virtual tables (FTS5,
	// R*Tree) and their shadow tables, which are not the application's.
	rows, err := d.db.QueryContext(ctx, `SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table'
		AND name NOT LIKE 'sqlite\_%' ESCAPE '\' AND name NOT LIKE '\_rowsync\_%' ESCAPE '\' ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, rows.Err()
}

type liveColumn struct {
	rowsync.Column
	pk int
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// introspect reads a table's columns, key and foreign keys.
func introspect(ctx context.Context, q querier, name string) ([]liveColumn, []rowsync.ForeignKey, error) {
	rows, err := q.QueryContext(ctx, `SELECT name, type, pk FROM pragma_table_info(?) ORDER BY cid`, name)
	if err != nil {
		return nil, nil, fmt.Errorf("inspect table %q: %w", name, err)
	}
	var cols []liveColumn
	for rows.Next() {
		var c liveColumn
		if err := rows.Scan(&c.Name, &c.Type, &c.pk); err != nil {
			rows.Close()
			return nil, nil, err
		}
		c.Class = rowsync.ClassOfSQLiteType(c.Type)
		cols = append(cols, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	fks, err := foreignKeys(ctx, q, name)
	return cols, fks, err
}

// foreignKeys reads the foreign keys of a table, in the order they are
// declared. A key declared without parent columns (REFERENCES parent)
// references the parent's primary key, which is filled in.
func foreignKeys(ctx context.Context, q querier, name string) ([]rowsync.ForeignKey, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, "table", "from", "to", on_delete, on_update FROM pragma_foreign_key_list(?) ORDER BY id DESC, seq`, name)
	if err != nil {
		return nil, fmt.Errorf("inspect foreign keys of %q: %w", name, err)
	}
	var fks []rowsync.ForeignKey
	implicit := map[int]bool{} // keys without parent columns
	last := int64(-1)
	for rows.Next() {
		var id int64
		var parent, from, onDelete, onUpdate string
		var to sql.NullString
		if err := rows.Scan(&id, &parent, &from, &to, &onDelete, &onUpdate); err != nil {
			rows.Close()
			return nil, err
		}
		if id != last || len(fks) == 0 {
			last = id
			del, _ := rowsync.FKAction(onDelete)
			upd, _ := rowsync.FKAction(onUpdate)
			fks = append(fks, rowsync.ForeignKey{Parent: parent, OnDelete: del, OnUpdate: upd})
		}
		fk := &fks[len(fks)-1]
		fk.Columns = append(fk.Columns, from)
		if to.Valid && to.String != "" {
			fk.ParentColumns = append(fk.ParentColumns, to.String)
		} else {
			implicit[len(fks)-1] = true
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range implicit {
		pcols, err := introspectKey(ctx, q, fks[i].Parent)
		if err != nil {
			return nil, err
		}
		fks[i].ParentColumns = pcols
	}
	return fks, nil
}

// introspectKey returns the primary-key columns of a table, in key order.
func introspectKey(ctx context.Context, q querier, name string) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT name, type, pk FROM pragma_table_info(?) ORDER BY cid`, name)
	if err != nil {
		return nil, fmt.Errorf("inspect table %q: %w", name, err)
	}
	defer rows.Close()
	var cols []liveColumn
	for rows.Next() {
		var c liveColumn
		if err := rows.Scan(&c.Name, &c.Type, &c.pk); err != nil {
			return nil, err
		}
		cols = append(cols, c)
	}
	return keyOf(cols), rows.Err()
}

func keyOf(cols []liveColumn) []string {
	var key []string
	for pk := 1; ; pk++ {
		found := false
		for _, c := range cols {
			if c.pk == pk {
				key = append(key, c.Name)
				found = true
			}
		}
		if !found {
			return key
		}
	}
}

type registered struct {
	id   int64
	name string
	cols []rowsync.Column
	key  []string
}

func readRegistry(ctx context.Context, q querier) ([]registered, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, name, columns, key FROM _rowsync_tables ORDER BY id`)
	if err != nil {
		if strings.Contains(err.Error(), "no such table") {
			return nil, rowsync.ErrNotInitialized
		}
		return nil, err
	}
	defer rows.Close()
	var out []registered
	for rows.Next() {
		var r registered
		var cj, kj string
		if err := rows.Scan(&r.id, &r.name, &cj, &kj); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(cj), &r.cols); err != nil {
			return nil, fmt.Errorf("read tracked table %q: %w", r.name, err)
		}
		if err := json.Unmarshal([]byte(kj), &r.key); err != nil {
			return nil, fmt.Errorf("read tracked table %q: %w", r.name, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Tables implements rowsync.Database.
func (d *DB) Tables(ctx context.Context) ([]*rowsync.Table, error) {
	reg, err := readRegistry(ctx, d.db)
	if err != nil {
		return nil, err
	}
	if len(reg) == 0 {
		return nil, rowsync.ErrNotInitialized
	}
	var out []*rowsync.Table
	for _, r := range reg {
		live, fks, err := introspect(ctx, d.db, r.name)
		if err != nil {
			return nil, err
		}
		if len(live) == 0 {
			return nil, fmt.Errorf("tracked table %q no longer exists", r.name)
		}
		if err := sameColumns(r, live); err != nil {
			return nil, err
		}
		t, err := rowsync.NewTable(r.id, r.name, r.cols, r.key, rowsync.ParentTables(fks))
		if err != nil {
			return nil, err
		}
		t.ForeignKeys = fks
		out = append(out, t)
	}
	return out, nil
}

// sameColumns checks that a tracked table still has the columns and key
// it was registered with.
func sameColumns(r registered, live []liveColumn) error {
	cols := make([]rowsync.Column, len(live))
	for i, c := range live {
		cols[i] = c.Column
	}
	return bookkeeping.CheckColumns(r.name, r.cols, r.key, cols, keyOf(live))
}
