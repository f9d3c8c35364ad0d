// Package testdb gives tests fresh, empty databases on every engine rowsync
// supports, as database addresses (what --db takes), plus an application
// connection to each. Server databases are created on the servers named
// by rowsynctest.PostgresURL and rowsynctest.MySQLURL and dropped when the
// test ends.
package testdb

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"modernc.org/sqlite"

	"github.com/rowsync/rowsync/rowsynctest"
)

// Engines lists the engines by the names the functions below take.
var Engines = []string{"sqlite", "postgres", "mysql"}

// New returns the address of a fresh, empty database of engine ("sqlite",
// "postgres" or "mysql"), removed when tb ends.
func New(tb testing.TB, engine string) string {
	tb.Helper()
	switch engine {
	case "sqlite":
		return "sqlite:" + filepath.Join(tb.TempDir(), "node.db")
	case "postgres":
		return Postgres(tb)
	case "mysql":
		return MySQL(tb)
	}
	tb.Fatalf("testdb: no engine %q", engine)
	return ""
}

// EngineOf returns the engine of a database address.
func EngineOf(addr string) string {
	switch {
	case strings.HasPrefix(addr, "postgres://"), strings.HasPrefix(addr, "postgresql://"):
		return "postgres"
	case strings.HasPrefix(addr, "mysql://"):
		return "mysql"
	}
	return "sqlite"
}

func uniqueName(prefix string) string {
	var b [6]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// Postgres creates a schema of its own on the test server and returns the
// server's address with ?schema= naming it. The schema is dropped with
// everything in it when tb ends.
func Postgres(tb testing.TB) string {
	tb.Helper()
	base := rowsynctest.PostgresURL(tb)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		tb.Fatal(err)
	}
	defer admin.Close()
	schema := uniqueName("rowsync_t_")
	if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
		tb.Fatalf("create schema on %s: %v", redact(base), err)
	}
	tb.Cleanup(func() {
		admin, err := sql.Open("pgx", base)
		if err != nil {
			tb.Error(err)
			return
		}
		defer admin.Close()
		if _, err := admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return withParam(tb, base, "schema", schema)
}

// MySQL creates a database of its own on the test server and returns its
// address. The database is dropped when tb ends.
func MySQL(tb testing.TB) string {
	tb.Helper()
	base := rowsynctest.MySQLURL(tb)
	cfg := mysqlConfig(tb, base)
	cfg.DBName = ""
	admin, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		tb.Fatal(err)
	}
	defer admin.Close()
	name := uniqueName("rowsync_t_")
	if _, err := admin.Exec("CREATE DATABASE `" + name + "` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		tb.Fatalf("create database on %s: %v", redact(base), err)
	}
	tb.Cleanup(func() {
		admin, err := sql.Open("mysql", cfg.FormatDSN())
		if err != nil {
			tb.Error(err)
			return
		}
		defer admin.Close()
		if _, err := admin.Exec("DROP DATABASE `" + name + "`"); err != nil {
			tb.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

func withParam(tb testing.TB, addr, k, v string) string {
	u, err := url.Parse(addr)
	if err != nil {
		tb.Fatal(err)
	}
	q := u.Query()
	q.Set(k, v)
	u.RawQuery = q.Encode()
	return u.String()
}

func redact(addr string) string {
	u, err := url.Parse(addr)
	if err != nil {
		return "(bad address)"
	}
	return u.Redacted()
}

// mysqlConfig turns a mysql://user:pass@host:port/db address into a driver
// configuration.
func mysqlConfig(tb testing.TB, addr string) *mysql.Config {
	tb.Helper()
	u, err := url.Parse(addr)
	if err != nil {
		tb.Fatal(err)
	}
	cfg := mysql.NewConfig()
	cfg.User = u.User.Username()
	cfg.Passwd, _ = u.User.Password()
	cfg.Net = "tcp"
	cfg.Addr = u.Host
	if u.Port() == "" {
		cfg.Addr = u.Hostname() + ":3306"
	}
	cfg.DBName = strings.TrimPrefix(u.Path, "/")
	return cfg
}

// App opens a connection pool to a database address as an application
// would: foreign keys enforced, several statements per Exec allowed when
// there are no arguments. SQL for it uses ? placeholders on every engine
// when passed through Rebind.
func App(tb testing.TB, addr string) *sql.DB {
	tb.Helper()
	var db *sql.DB
	var err error
	switch EngineOf(addr) {
	case "postgres":
		u, perr := url.Parse(addr)
		if perr != nil {
			tb.Fatal(perr)
		}
		q := u.Query()
		if s := q.Get("schema"); s != "" {
			q.Del("schema")
			q.Set("search_path", s)
		}
		u.RawQuery = q.Encode()
		db, err = sql.Open("pgx", u.String())
	case "mysql":
		cfg := mysqlConfig(tb, addr)
		cfg.MultiStatements = true
		cfg.Params = map[string]string{"sql_mode": "'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'", "time_zone": "'+00:00'"}
		db, err = sql.Open("mysql", cfg.FormatDSN())
	default:
		path := strings.TrimPrefix(addr, "sqlite:")
		db, err = sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)")
		if err == nil {
			db.SetMaxOpenConns(1)
		}
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// Rebind rewrites ? placeholders to $1, $2… for PostgreSQL. It does not
// look inside quoted strings, so SQL passed to it must not hold a ? there.
func Rebind(engine, q string) string {
	if engine != "postgres" || !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Quote quotes an identifier for engine.
func Quote(engine, name string) string {
	if engine == "mysql" {
		return "`" + strings.ReplaceAll(name, "`", "``") + "`"
	}
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// IsConstraint reports whether err is an engine's refusal of a statement
// by a constraint (unique, foreign key, not null, check).
func IsConstraint(err error) bool {
	if err == nil {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "23")
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1048, 1062, 1216, 1217, 1451, 1452, 1557, 3819, 4025:
			return true
		}
		return false
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()&0xff == 19 // SQLITE_CONSTRAINT and its extended codes
	}
	return false
}
