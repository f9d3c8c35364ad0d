// Package mysql implements rowsync.Database for MySQL 8 and MariaDB 10.6+
// databases, with change capture by row triggers. See DESIGN.md beside
// this file.
package mysql

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rowsync/rowsync"
	"github.com/rowsync/rowsync/internal/bookkeeping"
)

// sqlMode is the session sql_mode of rowsync's connections. STRICT_ALL_TABLES
// turns silent truncation and clamping into errors (which become
// *rowsync.ConstraintError); NO_AUTO_VALUE_ON_ZERO lets the engine insert a
// row whose AUTO_INCREMENT key is 0 as 0. ANSI_QUOTES is not set: every
// identifier rowsync writes is quoted with backticks.
const sqlMode = "STRICT_ALL_TABLES,STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION,NO_AUTO_VALUE_ON_ZERO"

// DB is a MySQL or MariaDB database used as a rowsync node.
type DB struct {
	addr    string // without password
	db      *sql.DB
	mariadb bool

	// Logger receives Install's warnings (foreign keys with cascading
	// actions between tracked tables); default: discard.
	Logger *slog.Logger

	mu    sync.Mutex
	infos map[*rowsync.Table]*tableInfo
	// charsets holds the character set and collation of every string
	// column of the tracked tables, by table and column, as last
	// introspected.
	charsets map[string]map[string]colMeta
}

var _ rowsync.Database = (*DB)(nil)

// Open opens the database at addr, mysql://user:pass@host:port/db (user,
// password and port optional; other query parameters are passed to the
// driver: tls=true, timeout=5s, or session variables).
func Open(ctx context.Context, addr string) (*DB, error) {
	cfg, shown, err := parseAddress(addr)
	if err != nil {
		return nil, err
	}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("open mysql database %s: %w", shown, err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(8)
	db.SetConnMaxIdleTime(5 * time.Minute)
	d := &DB{addr: shown, db: db, Logger: slog.New(slog.DiscardHandler), infos: map[*rowsync.Table]*tableInfo{},
		charsets: map[string]map[string]colMeta{}}
	var version string
	if err := db.QueryRowContext(ctx, `SELECT VERSION()`).Scan(&version); err != nil {
		db.Close()
		return nil, fmt.Errorf("open mysql database %s: %w", shown, err)
	}
	d.mariadb = strings.Contains(strings.ToLower(version), "mariadb")
	return d, nil
}

// parseAddress turns a mysql:// address into a driver configuration and
// the address to show in messages (without the password).
func parseAddress(addr string) (*mysql.Config, string, error) {
	u, err := url.Parse(addr)
	if err != nil || (u.Scheme != "mysql" && u.Scheme != "mariadb") || u.Host == "" {
		return nil, "", fmt.Errorf("bad mysql address %q: want mysql://user:pass@host:port/database", redact(addr))
	}
	dbName := strings.TrimPrefix(u.Path, "/")
	if dbName == "" || strings.Contains(dbName, "/") {
		return nil, "", fmt.Errorf("bad mysql address %s: no database name after the host", u.Redacted())
	}
	// The driver parses its own parameters (tls, timeout, ...) and turns
	// the others into session variables.
	base := "tcp(" + hostPort(u) + ")/" + dbName
	if u.RawQuery != "" {
		base += "?" + u.RawQuery
	}
	cfg, err := mysql.ParseDSN(base)
	if err != nil {
		return nil, "", fmt.Errorf("bad mysql address %s: %w", u.Redacted(), err)
	}
	cfg.User = u.User.Username()
	cfg.Passwd, _ = u.User.Password()
	cfg.ParseTime = false        // dates are read as text, exactly
	cfg.InterpolateParams = true // one round trip per statement, no server-side prepare
	cfg.MultiStatements = false  // rowsync runs one statement at a time
	cfg.Collation = "utf8mb4_general_ci"
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	// Session setup on every new connection (the driver sends SET for
	// each): strict mode and UTC for TIMESTAMP columns. SET NAMES utf8mb4
	// comes from the collation.
	cfg.Params["sql_mode"] = "'" + sqlMode + "'"
	cfg.Params["time_zone"] = "'+00:00'"
	shown := &url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	if name := u.User.Username(); name != "" {
		shown.User = url.User(name)
	}
	return cfg, shown.String(), nil
}

func hostPort(u *url.URL) string {
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), "3306")
	}
	return u.Host
}

func redact(addr string) string {
	u, err := url.Parse(addr)
	if err != nil {
		return "(unparsable address)"
	}
	return u.Redacted()
}

// Address implements rowsync.Database. It never shows the password.
func (d *DB) Address() string { return d.addr }

// Engine implements rowsync.EngineNamer.
func (d *DB) Engine() string { return "mysql" }

// SQL returns the underlying *sql.DB (for applications and tests). Its
// connections have rowsync's session settings (strict sql_mode, UTC).
func (d *DB) SQL() *sql.DB { return d.db }

// Close implements rowsync.Database.
func (d *DB) Close() error { return d.db.Close() }

// quote quotes an identifier with backticks.
func quote(name string) string { return "`" + strings.ReplaceAll(name, "`", "``") + "`" }

// Server error numbers rowsync tells apart.
const (
	errNoSuchTable   = 1146
	errLockDeadlock  = 1213
	errLockWaitTimer = 1205
)

// constraintErrors are the server errors that refuse one row because of
// the data or a constraint. InnoDB undoes only the failing statement for
// them, so the transaction stays usable. Deadlocks (1213, which roll back
// the whole transaction) and lock wait timeouts (1205) are not among them.
var constraintErrors = map[uint16]string{
	1022: "duplicate key", 1062: "duplicate entry", 1169: "duplicate unique value", 1586: "duplicate entry",
	1216: "foreign key", 1217: "foreign key", 1451: "foreign key", 1452: "foreign key",
	3819: "check constraint", 4025: "check constraint",
	1048: "not null", 1364: "no default value", 1406: "data too long", 1264: "out of range", 1690: "out of range",
	1366: "incorrect value", 1292: "incorrect value", 1265: "data truncated", 1367: "illegal value",
	1411: "incorrect value", 3140: "invalid JSON", 1138: "invalid use of NULL",
}

func errNumber(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

func isConstraint(err error) bool {
	_, ok := constraintErrors[errNumber(err)]
	return ok
}

// metaDDL creates the global bookkeeping tables. The 'writer' row of
// _rowsync_state is the lock every write transaction takes first.
var metaDDL = []string{
	`CREATE TABLE IF NOT EXISTS _rowsync_state(k VARCHAR(64) NOT NULL PRIMARY KEY, v LONGTEXT NOT NULL)`,
	`INSERT IGNORE INTO _rowsync_state(k, v) VALUES ('writer', '')`,
	`CREATE TABLE IF NOT EXISTS _rowsync_tables(id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, name VARCHAR(64) NOT NULL UNIQUE,
		cols LONGTEXT NOT NULL, pkey LONGTEXT NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS _rowsync_nodes(idx BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, id VARCHAR(255) NOT NULL UNIQUE)`,
	`CREATE TABLE IF NOT EXISTS _rowsync_peers(id VARCHAR(255) NOT NULL PRIMARY KEY, name LONGTEXT NOT NULL, url LONGTEXT NOT NULL,
		last_sync BIGINT NOT NULL, sync_count BIGINT NOT NULL, rows_in BIGINT NOT NULL, rows_out BIGINT NOT NULL,
		acked_seq BIGINT NOT NULL, last_error LONGTEXT NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS _rowsync_cursors(peer VARCHAR(255) NOT NULL, tbl VARCHAR(64) NOT NULL, kind INT NOT NULL,
		seq BIGINT NOT NULL, PRIMARY KEY(peer, tbl, kind))`,
	// dedup is SHA-256 of (tbl, pk, col, kind, winner_hlc, winner_node,
	// loser_hlc, loser_node): a unique index over the columns themselves
	// would exceed InnoDB's key length with long keys.
	`CREATE TABLE IF NOT EXISTS _rowsync_conflicts(id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, at BIGINT NOT NULL,
		tbl VARCHAR(64) NOT NULL, pk LONGBLOB NOT NULL, col VARCHAR(64) NOT NULL, kind VARCHAR(32) NOT NULL, winner LONGBLOB,
		winner_hlc BIGINT NOT NULL, winner_node VARCHAR(255) NOT NULL, loser LONGBLOB, loser_hlc BIGINT NOT NULL,
		loser_node VARCHAR(255) NOT NULL, peer VARCHAR(255) NOT NULL, detail LONGTEXT NOT NULL, resolved TINYINT NOT NULL DEFAULT 0,
		dedup BINARY(32) NOT NULL, UNIQUE KEY(dedup), KEY(tbl, pk(255)))`,
	// dedup is SHA-256 of (tbl, pk, peer).
	`CREATE TABLE IF NOT EXISTS _rowsync_held(id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, tbl VARCHAR(64) NOT NULL,
		pk LONGBLOB NOT NULL, peer VARCHAR(255) NOT NULL, ` + "`change`" + ` LONGBLOB NOT NULL, error LONGTEXT NOT NULL, at BIGINT NOT NULL,
		dedup BINARY(32) NOT NULL, UNIQUE KEY(dedup))`,
}

// tableOptions ends every CREATE TABLE of rowsync: InnoDB (transactions,
// row locks) and exact, case-sensitive text.
const tableOptions = ` ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// UserTables implements rowsync.Database: the base tables of the
// database, without rowsync's own (views are not listed).
func (d *DB) UserTables(ctx context.Context) ([]string, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT TABLE_NAME FROM information_schema.TABLES
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME`)
	if err != nil {
		return nil, fmt.Errorf("list tables of %s: %w", d.addr, err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		if !isInternal(n) {
			names = append(names, n)
		}
	}
	return names, rows.Err()
}

// isInternal reports whether a table is rowsync's own.
func isInternal(name string) bool { return strings.HasPrefix(strings.ToLower(name), "_rowsync_") }

// liveColumn is a column as the server describes it now.
type liveColumn struct {
	rowsync.Column
	dataType string
	charset  string // string columns
	collate  string // string columns
	octets   int64  // string columns: maximum length in bytes
}

var jsonCheck = regexp.MustCompile("(?i)^\\s*json_valid\\s*\\(\\s*`((?:[^`]|``)+)`\\s*\\)\\s*$")

// introspect reads a table's columns (without generated columns, which
// nobody writes), its primary key and its foreign keys.
func (d *DB) introspect(ctx context.Context, q querier, name string) (cols []liveColumn, key []string, fks []rowsync.ForeignKey, err error) {
	// TABLE_NAME = ? lets the server open only that table; the binary
	// comparison makes the match exact where the catalog compares
	// case-insensitively.
	const match = `TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND CAST(TABLE_NAME AS BINARY) = CAST(? AS BINARY)`
	jsonCols := map[string]bool{}
	if d.mariadb {
		// MariaDB's JSON is LONGTEXT with a CHECK (json_valid(col)).
		rows, err := q.QueryContext(ctx, `SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS
			WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = ? AND CAST(TABLE_NAME AS BINARY) = CAST(? AS BINARY)`, name, name)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("inspect checks of %q: %w", name, err)
		}
		for rows.Next() {
			var clause string
			if err := rows.Scan(&clause); err != nil {
				rows.Close()
				return nil, nil, nil, err
			}
			if m := jsonCheck.FindStringSubmatch(clause); m != nil {
				jsonCols[strings.ReplaceAll(m[1], "``", "`")] = true
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, nil, nil, err
		}
	}
	rows, err := q.QueryContext(ctx, `SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, COALESCE(CHARACTER_SET_NAME, ''),
		COALESCE(COLLATION_NAME, ''), COALESCE(CHARACTER_OCTET_LENGTH, 0), EXTRA
		FROM information_schema.COLUMNS WHERE `+match+` ORDER BY ORDINAL_POSITION`, name, name)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("inspect table %q: %w", name, err)
	}
	for rows.Next() {
		var c liveColumn
		var extra string
		if err := rows.Scan(&c.Name, &c.dataType, &c.Type, &c.charset, &c.collate, &c.octets, &extra); err != nil {
			rows.Close()
			return nil, nil, nil, err
		}
		extra = strings.ToUpper(extra)
		if strings.Contains(extra, "VIRTUAL GENERATED") || strings.Contains(extra, "STORED GENERATED") ||
			strings.Contains(extra, "PERSISTENT GENERATED") {
			continue
		}
		c.dataType = strings.ToLower(c.dataType)
		c.Type = strings.ToLower(c.Type)
		c.Class = classOf(c.dataType, c.Type, jsonCols[c.Name])
		cols = append(cols, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, nil, err
	}
	rows, err = q.QueryContext(ctx, `SELECT COLUMN_NAME, SUB_PART FROM information_schema.STATISTICS
		WHERE `+match+` AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX`, name, name)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("inspect primary key of %q: %w", name, err)
	}
	for rows.Next() {
		var k string
		var sub sql.NullInt64
		if err := rows.Scan(&k, &sub); err != nil {
			rows.Close()
			return nil, nil, nil, err
		}
		if sub.Valid {
			rows.Close()
			return nil, nil, nil, fmt.Errorf("table %q: its primary key uses a prefix of column %q; rowsync needs whole key values to identify rows", name, k)
		}
		key = append(key, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, nil, err
	}
	all, err := foreignKeysOf(ctx, q, name)
	if err != nil {
		return nil, nil, nil, err
	}
	for _, f := range all {
		del, _ := rowsync.FKAction(f.onDelete)
		upd, _ := rowsync.FKAction(f.onUpdate)
		fks = append(fks, rowsync.ForeignKey{Columns: f.childCols, Parent: f.parent, ParentColumns: f.parentCols, OnDelete: del, OnUpdate: upd})
	}
	d.noteCharsets(name, cols)
	return cols, key, fks, nil
}

type colMeta struct{ charset, collate string }

func (d *DB) noteCharsets(table string, cols []liveColumn) {
	m := map[string]colMeta{}
	for _, c := range cols {
		if c.charset != "" {
			m[c.Name] = colMeta{c.charset, c.collate}
		}
	}
	d.mu.Lock()
	d.charsets[table] = m
	d.mu.Unlock()
}

type registered struct {
	id   int64
	name string
	cols []rowsync.Column
	key  []string
}

func readRegistry(ctx context.Context, q querier) ([]registered, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, name, cols, pkey FROM _rowsync_tables ORDER BY id`)
	if err != nil {
		if errNumber(err) == errNoSuchTable {
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
		live, key, fks, err := d.introspect(ctx, d.db, r.name)
		if err != nil {
			return nil, err
		}
		if len(live) == 0 {
			return nil, fmt.Errorf("tracked table %q no longer exists in %s", r.name, d.addr)
		}
		if err := sameColumns(r, live, key); err != nil {
			return nil, err
		}
		// The declared types as they are now: a type may change within
		// its class (VARCHAR(10) to VARCHAR(20)), and values are checked
		// against the column as it is.
		types := map[string]string{}
		for _, c := range live {
			types[c.Name] = c.Type
		}
		cols := make([]rowsync.Column, len(r.cols))
		for i, c := range r.cols {
			cols[i] = rowsync.Column{Name: c.Name, Type: types[c.Name], Class: c.Class}
		}
		t, err := rowsync.NewTable(r.id, r.name, cols, r.key, rowsync.ParentTables(fks))
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
func sameColumns(r registered, live []liveColumn, key []string) error {
	cols := make([]rowsync.Column, len(live))
	for i, c := range live {
		cols[i] = c.Column
	}
	return bookkeeping.CheckColumns(r.name, r.cols, r.key, cols, key)
}

// CascadeWarnings lists the foreign-key actions (ON DELETE/ON UPDATE
// CASCADE, SET NULL, SET DEFAULT) that change rows of tracked tables in a
// way rowsync does not capture: MySQL and MariaDB fire no triggers for
// them, and rowsync captures them from the parent's own triggers only
// when the parent is tracked and the cascade is not a cycle. See DESIGN.md.
func (d *DB) CascadeWarnings(ctx context.Context) ([]string, error) {
	return cascadeWarnings(ctx, d.db)
}
