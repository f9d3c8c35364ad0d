// Package postgres implements rowsync.Database for PostgreSQL 15 and later,
// on pgx v5, with change capture by statement-level triggers. See DESIGN.md
// beside this file.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rowsync/rowsync"
	"github.com/rowsync/rowsync/internal/bookkeeping"
)

// DB is a schema of a PostgreSQL database used as a rowsync node: the
// tracked tables and rowsync's bookkeeping live in that schema.
type DB struct {
	addr   string // the address without password, for messages
	schema string
	pool   *pgxpool.Pool

	// info caches, per tracked table name, the column details the SQL
	// needs (cast types, read conversions). It is derived from the
	// catalog and checked against the registered columns on every use,
	// so another process cannot make it stale without Tables failing.
	mu   sync.Mutex
	info map[string]*tableInfo
}

var _ rowsync.Database = (*DB)(nil)

// defaultMaxConns is the pool size unless the address sets pool_max_conns:
// a sync holds a read and a write transaction at once, and serve handles
// several peers.
const defaultMaxConns = 10

// Open connects to the PostgreSQL database at addr, a postgres:// or
// postgresql:// URL in pgx syntax. The optional query parameter
// schema=NAME selects the schema that holds the tracked tables and
// rowsync's bookkeeping; by default it is the connection's current schema
// (normally public). Open fails if the server cannot be reached or the
// schema does not exist.
func Open(ctx context.Context, addr string) (*DB, error) {
	u, err := url.Parse(addr)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, fmt.Errorf("open postgres: address %q is not a postgres:// URL", redact(addr))
	}
	q := u.Query()
	schema := q.Get("schema")
	q.Del("schema")
	u.RawQuery = q.Encode()
	safe := redact(addr)
	cfg, err := pgxpool.ParseConfig(u.String())
	if err != nil {
		return nil, fmt.Errorf("open postgres %s: %w", safe, err)
	}
	if !q.Has("pool_max_conns") {
		cfg.MaxConns = defaultMaxConns
	}
	cc := cfg.ConnConfig
	if cc.ConnectTimeout == 0 {
		cc.ConnectTimeout = 10 * time.Second
	}
	// rowsync's sessions read timestamps with time zone in UTC and dates
	// in ISO form, whatever the server's defaults: the canonical encoding
	// depends on it.
	cc.RuntimeParams["TimeZone"] = "UTC"
	cc.RuntimeParams["DateStyle"] = "ISO, YMD"
	cc.RuntimeParams["IntervalStyle"] = "postgres"
	cc.RuntimeParams["extra_float_digits"] = "1"
	if cc.RuntimeParams["application_name"] == "" {
		cc.RuntimeParams["application_name"] = "rowsync"
	}
	if schema == "" {
		// The schema the user's connections would use by default.
		conn, err := pgx.ConnectConfig(ctx, cc.Copy())
		if err != nil {
			return nil, fmt.Errorf("open postgres %s: %w", safe, err)
		}
		var cur *string
		err = conn.QueryRow(ctx, `SELECT current_schema()`).Scan(&cur)
		conn.Close(ctx)
		if err != nil {
			return nil, fmt.Errorf("open postgres %s: %w", safe, err)
		}
		if cur == nil {
			return nil, fmt.Errorf("open postgres %s: no schema of the search_path exists; add schema=NAME to the address", safe)
		}
		schema = *cur
	}
	cc.RuntimeParams["search_path"] = quote(schema)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres %s: %w", safe, err)
	}
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, schema).Scan(&exists); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres %s: %w", safe, err)
	}
	if !exists {
		pool.Close()
		return nil, fmt.Errorf("open postgres %s: schema %q does not exist", safe, schema)
	}
	return &DB{addr: safe, schema: schema, pool: pool, info: map[string]*tableInfo{}}, nil
}

// redact returns addr without its password.
func redact(addr string) string {
	u, err := url.Parse(addr)
	if err != nil {
		// Do not echo something that may hold a password.
		if i := strings.LastIndex(addr, "@"); i >= 0 {
			if j := strings.Index(addr, "://"); j >= 0 && j < i {
				return addr[:j+3] + "…" + addr[i:]
			}
		}
		return addr
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.User(u.User.Username())
		}
	}
	q := u.Query()
	if q.Has("password") {
		q.Del("password")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// Address implements rowsync.Database: the address without password.
func (d *DB) Address() string { return d.addr }

// Engine implements rowsync.EngineNamer.
func (d *DB) Engine() string { return "postgres" }

// Schema returns the schema the node lives in.
func (d *DB) Schema() string { return d.schema }

// Pool returns the connection pool (for applications and tests). Its
// connections have search_path set to the node's schema and TimeZone UTC.
func (d *DB) Pool() *pgxpool.Pool { return d.pool }

// Close implements rowsync.Database.
func (d *DB) Close() error {
	d.pool.Close()
	return nil
}

// quote quotes an identifier.
func quote(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

// table is the schema-qualified, quoted name of a user table: qualified so
// that a table named like a catalog table (pg_catalog is searched first)
// is still the user's.
func (d *DB) table(name string) string { return quote(d.schema) + "." + quote(name) }

// lockKey is the SQL expression of the advisory lock key that serializes
// rowsync's writers of this schema, in every process.
const lockKey = `hashtextextended('rowsync ' || $1, 0)`

// SQLSTATE codes the adapter tells apart.
const (
	codeUndefinedTable = "42P01"
	codeRaiseException = "P0001"
)

func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// isConstraint reports whether err is a failure that a value or a local
// constraint caused: integrity violations (class 23), data exceptions
// (class 22: too long, out of range, invalid text, bad dates, NUL bytes),
// and exceptions raised by the application's own triggers (P0001), which
// are constraints written as code.
func isConstraint(err error) bool {
	c := sqlState(err)
	return strings.HasPrefix(c, "23") || strings.HasPrefix(c, "22") || c == codeRaiseException
}

const metaDDL = `
CREATE TABLE IF NOT EXISTS _rowsync_state(key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS _rowsync_tables(id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, name text NOT NULL UNIQUE,
  columns text NOT NULL, key text NOT NULL);
CREATE TABLE IF NOT EXISTS _rowsync_nodes(idx bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, id text NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS _rowsync_peers(id text PRIMARY KEY, name text NOT NULL DEFAULT '', url text NOT NULL DEFAULT '',
  last_sync bigint NOT NULL DEFAULT 0, sync_count bigint NOT NULL DEFAULT 0, rows_in bigint NOT NULL DEFAULT 0,
  rows_out bigint NOT NULL DEFAULT 0, acked_seq bigint NOT NULL DEFAULT 0, last_error text NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS _rowsync_cursors(peer text NOT NULL, tbl text NOT NULL, kind integer NOT NULL, seq bigint NOT NULL,
  PRIMARY KEY(peer, tbl, kind));
CREATE TABLE IF NOT EXISTS _rowsync_conflicts(id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, at bigint NOT NULL,
  tbl text NOT NULL, pk bytea NOT NULL, col text NOT NULL, kind text NOT NULL, winner bytea, winner_hlc bigint NOT NULL,
  winner_node text NOT NULL, loser bytea, loser_hlc bigint NOT NULL, loser_node text NOT NULL, peer text NOT NULL,
  detail text NOT NULL, resolved boolean NOT NULL DEFAULT false,
  UNIQUE(tbl, pk, col, kind, winner_hlc, winner_node, loser_hlc, loser_node));
CREATE TABLE IF NOT EXISTS _rowsync_held(id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, tbl text NOT NULL,
  pk bytea NOT NULL, peer text NOT NULL, change bytea NOT NULL, error text NOT NULL, at bigint NOT NULL, UNIQUE(tbl, pk, peer));
`

// querier is what the catalog queries need: a pool, a connection or a
// transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// UserTables implements rowsync.Database: the ordinary and partitioned
// tables of the schema (not partitions), minus rowsync's own.
func (d *DB) UserTables(ctx context.Context) ([]string, error) {
	rows, err := d.pool.Query(ctx, `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition
		AND c.relname NOT LIKE '\_rowsync\_%' ORDER BY c.relname`, d.schema)
	if err != nil {
		return nil, fmt.Errorf("list tables of %s: %w", d.addr, err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list tables of %s: %w", d.addr, err)
	}
	return names, nil
}

// liveColumn is a column as the catalog describes it now.
type liveColumn struct {
	rowsync.Column
	info colInfo
}

// introspect reads a table's columns, primary key and foreign keys
// (in this schema). It returns no columns if the table does not exist.
func (d *DB) introspect(ctx context.Context, q querier, name string) ([]liveColumn, []string, []rowsync.ForeignKey, error) {
	var oid uint32
	err := q.QueryRow(ctx, `SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`, d.schema, name).Scan(&oid)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, nil, nil
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("inspect table %q: %w", name, err)
	}
	// Generated columns are left out: each node computes them itself.
	// Domains are described by their base type, which decides how values
	// are read and how the log stores them.
	rows, err := q.Query(ctx, `SELECT a.attname, format_type(a.atttypid, a.atttypmod), format_type(a.atttypid, -1),
			bt.typname, format_type(bt.oid, CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END),
			CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END
		FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
		JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
		WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
		ORDER BY a.attnum`, oid)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("inspect columns of %q: %w", name, err)
	}
	var cols []liveColumn
	for rows.Next() {
		var c liveColumn
		var typmod int32
		if err := rows.Scan(&c.Name, &c.Type, &c.info.cast, &c.info.base, &c.info.logType, &typmod); err != nil {
			rows.Close()
			return nil, nil, nil, fmt.Errorf("inspect columns of %q: %w", name, err)
		}
		c.info.name = c.Name
		c.info.decl = c.Type
		c.info.setKind(typmod)
		c.Class = c.info.class
		cols = append(cols, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, nil, fmt.Errorf("inspect columns of %q: %w", name, err)
	}
	rows, err = q.Query(ctx, `SELECT a.attname FROM pg_constraint c
		CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
		JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
		WHERE c.conrelid = $1 AND c.contype = 'p' ORDER BY k.ord`, oid)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("inspect primary key of %q: %w", name, err)
	}
	key, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, nil, nil, fmt.Errorf("inspect primary key of %q: %w", name, err)
	}
	// Foreign keys to tables of the same schema, in name order (the
	// order PostgreSQL checks them in).
	rows, err = q.Query(ctx, `SELECT p.relname::text, c.confdeltype::text, c.confupdtype::text,
			array(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
				JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum ORDER BY k.ord),
			array(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY AS k(attnum, ord)
				JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum ORDER BY k.ord)
		FROM pg_constraint c JOIN pg_class p ON p.oid = c.confrelid
		WHERE c.conrelid = $1 AND c.contype = 'f' AND p.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = $1)
		ORDER BY c.conname`, oid)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("inspect foreign keys of %q: %w", name, err)
	}
	var fks []rowsync.ForeignKey
	for rows.Next() {
		var fk rowsync.ForeignKey
		var del, upd string
		if err := rows.Scan(&fk.Parent, &del, &upd, &fk.Columns, &fk.ParentColumns); err != nil {
			rows.Close()
			return nil, nil, nil, fmt.Errorf("inspect foreign keys of %q: %w", name, err)
		}
		fk.OnDelete, fk.OnUpdate = pgAction(del), pgAction(upd)
		fks = append(fks, fk)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, nil, fmt.Errorf("inspect foreign keys of %q: %w", name, err)
	}
	return cols, key, fks, nil
}

// pgAction spells a pg_constraint action code.
func pgAction(code string) string {
	switch code {
	case "r":
		return rowsync.FKRestrict
	case "c":
		return rowsync.FKCascade
	case "n":
		return rowsync.FKSetNull
	case "d":
		return rowsync.FKSetDefault
	}
	return rowsync.FKNoAction
}

type registered struct {
	id   int64
	name string
	cols []rowsync.Column
	key  []string
}

func readRegistry(ctx context.Context, q querier) ([]registered, error) {
	rows, err := q.Query(ctx, `SELECT id, name, columns, key FROM _rowsync_tables ORDER BY id`)
	if err != nil {
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
	if err := rows.Err(); err != nil {
		if sqlState(err) == codeUndefinedTable {
			return nil, rowsync.ErrNotInitialized
		}
		return nil, err
	}
	return out, nil
}

// initialized reports whether the bookkeeping tables exist.
func initialized(ctx context.Context, q querier) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, `SELECT to_regclass('_rowsync_tables') IS NOT NULL AND to_regclass('_rowsync_state') IS NOT NULL`).Scan(&ok)
	return ok, err
}

// Tables implements rowsync.Database.
func (d *DB) Tables(ctx context.Context) ([]*rowsync.Table, error) {
	ok, err := initialized(ctx, d.pool)
	if err != nil {
		return nil, fmt.Errorf("read tracked tables of %s: %w", d.addr, err)
	}
	if !ok {
		return nil, rowsync.ErrNotInitialized
	}
	reg, err := readRegistry(ctx, d.pool)
	if err != nil {
		return nil, err
	}
	if len(reg) == 0 {
		return nil, rowsync.ErrNotInitialized
	}
	var out []*rowsync.Table
	for _, r := range reg {
		live, key, fks, err := d.introspect(ctx, d.pool, r.name)
		if err != nil {
			return nil, err
		}
		if len(live) == 0 {
			return nil, fmt.Errorf("tracked table %q no longer exists", r.name)
		}
		if err := sameColumns(r, live, key); err != nil {
			return nil, err
		}
		t, err := rowsync.NewTable(r.id, r.name, r.cols, r.key, rowsync.ParentTables(fks))
		if err != nil {
			return nil, err
		}
		t.ForeignKeys = fks
		if _, err := d.rememberFrom(ctx, d.pool, t, live); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// sameColumns checks that a tracked table still has the columns and key
// it was registered with.
func sameColumns(r registered, live []liveColumn, key []string) error {
	cols := make([]rowsync.Column, len(live))
	for i, c := range live {
		cols[i] = c.Column
	}
	return bookkeeping.CheckColumns(r.name, r.cols, r.key, cols, key)
}

// remember caches the column details of a tracked table, in its
// registered column order.
func (d *DB) remember(t *rowsync.Table, live []liveColumn, arrays bool) *tableInfo {
	byName := map[string]colInfo{}
	for _, c := range live {
		byName[c.Name] = c.info
	}
	ti := &tableInfo{id: t.ID, name: t.Name, qname: d.table(t.Name), arrays: arrays}
	for _, c := range t.Columns {
		ti.cols = append(ti.cols, byName[c.Name])
	}
	d.mu.Lock()
	d.info[t.Name] = ti
	d.mu.Unlock()
	return ti
}

// rememberFrom remembers t's column details, with whether its log has key
// arrays: a log installed by an earlier version has none until init runs
// again, and its triggers log one row per write.
func (d *DB) rememberFrom(ctx context.Context, q querier, t *rowsync.Table, live []liveColumn) (*tableInfo, error) {
	var arrays bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = 'a0' AND NOT attisdropped)`,
		quote(d.schema)+"."+logName(t.ID)).Scan(&arrays)
	if err != nil {
		return nil, fmt.Errorf("inspect log of %q: %w", t.Name, err)
	}
	return d.remember(t, live, arrays), nil
}

// tableInfo returns the column details of t, reading the catalog if they
// are not cached or no longer match t's columns.
func (d *DB) tableInfo(ctx context.Context, q querier, t *rowsync.Table) (*tableInfo, error) {
	d.mu.Lock()
	ti := d.info[t.Name]
	d.mu.Unlock()
	if ti != nil && ti.id == t.ID && ti.matches(t) {
		return ti, nil
	}
	live, _, _, err := d.introspect(ctx, q, t.Name)
	if err != nil {
		return nil, err
	}
	if len(live) == 0 {
		return nil, fmt.Errorf("%w: tracked table %q no longer exists", rowsync.ErrUnknownTable, t.Name)
	}
	ti, err = d.rememberFrom(ctx, q, t, live)
	if err != nil {
		return nil, err
	}
	for i, c := range ti.cols {
		if c.name == "" {
			return nil, fmt.Errorf("tracked table %q: column %q no longer exists", t.Name, t.Columns[i].Name)
		}
	}
	return ti, nil
}

// SetIDRange moves every sequence that feeds a column of a tracked table
// (serial and identity columns) to at least start, so that nodes given
// separate ranges never generate the same keys. A sequence already past
// start is left alone; none is ever moved backwards. It returns one line
// per sequence moved.
func (d *DB) SetIDRange(ctx context.Context, start int64) ([]string, error) {
	tx, err := d.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return nil, fmt.Errorf("set id range: %w", err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(`+lockKey+`)`, d.schema); err != nil {
		return nil, fmt.Errorf("set id range: %w", err)
	}
	reg, err := readRegistry(ctx, tx)
	if err != nil {
		return nil, err
	}
	if len(reg) == 0 {
		return nil, rowsync.ErrNotInitialized
	}
	var moved []string
	for _, r := range reg {
		for _, c := range r.cols {
			var seq *string
			if err := tx.QueryRow(ctx, `SELECT pg_get_serial_sequence($1, $2)`, d.table(r.name), c.Name).Scan(&seq); err != nil {
				return nil, fmt.Errorf("set id range: sequence of %q column %q: %w", r.name, c.Name, err)
			}
			if seq == nil {
				continue
			}
			// last_value is the last value handed out if is_called, else the
			// next one: the next value is last_value + (is_called ? 1 : 0).
			var last int64
			var called bool
			if err := tx.QueryRow(ctx, `SELECT last_value, is_called FROM `+*seq).Scan(&last, &called); err != nil {
				return nil, fmt.Errorf("set id range: read %s: %w", *seq, err)
			}
			next := last
			if called {
				next++
			}
			if next >= start {
				continue
			}
			if _, err := tx.Exec(ctx, `SELECT setval($1::regclass, $2, false)`, *seq, start); err != nil {
				return nil, fmt.Errorf("set id range: move %s: %w", *seq, err)
			}
			moved = append(moved, fmt.Sprintf("%s.%s: sequence %s next value %d (was %d)", r.name, c.Name, *seq, start, next))
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("set id range: commit: %w", err)
	}
	return moved, nil
}
