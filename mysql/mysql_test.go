package mysql_test

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/rowsync/rowsync"
	"github.com/rowsync/rowsync/mysql"
	"github.com/rowsync/rowsync/rowsynctest"
)

// testDB is a fresh database on the test server: its address, the open
// rowsync handle and an application connection pool of its own.
type testDB struct {
	addr string
	db   *mysql.DB
	app  *sql.DB
}

// serverConfig returns the driver configuration of the test server's
// address, without a database.
func serverConfig(tb testing.TB) (*gomysql.Config, *url.URL) {
	tb.Helper()
	base := rowsynctest.MySQLURL(tb)
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatal(err)
	}
	cfg := gomysql.NewConfig()
	cfg.User = u.User.Username()
	cfg.Passwd, _ = u.User.Password()
	cfg.Net = "tcp"
	cfg.Addr = u.Host
	if u.Port() == "" {
		cfg.Addr = u.Hostname() + ":3306"
	}
	return cfg, u
}

// newDatabase creates a database with a unique name in the server's
// default character set (utf8mb4, case-insensitive collation), dropped
// when tb ends, and returns its address.
func newDatabase(tb testing.TB) string {
	tb.Helper()
	cfg, u := serverConfig(tb)
	admin, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		tb.Fatal(err)
	}
	defer admin.Close()
	var b [6]byte
	rand.Read(b[:])
	name := "rowsync_my_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec("CREATE DATABASE `" + name + "` CHARACTER SET utf8mb4"); err != nil {
		tb.Fatalf("create database: %v", err)
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
	u.Path = "/" + name
	return u.String()
}

// appPool opens a connection pool to the database as an application
// would: the server's default sql_mode, several statements per Exec.
func appPool(tb testing.TB, addr string) *sql.DB {
	tb.Helper()
	cfg, _ := serverConfig(tb)
	u, _ := url.Parse(addr)
	cfg.DBName = strings.TrimPrefix(u.Path, "/")
	cfg.MultiStatements = true
	cfg.InterpolateParams = true
	app, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { app.Close() })
	return app
}

func openTestDB(tb testing.TB) *testDB {
	tb.Helper()
	addr := newDatabase(tb)
	db, err := mysql.Open(tb.Context(), addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return &testDB{addr: addr, db: db, app: appPool(tb, addr)}
}

// exec runs SQL on the application pool.
func (x *testDB) exec(tb testing.TB, q string, args ...any) {
	tb.Helper()
	if _, err := x.app.Exec(q, args...); err != nil {
		tb.Fatalf("exec %s: %v", q, err)
	}
}

var harness = rowsynctest.Harness{
	Dialect: "mysql",
	Open: func(tb testing.TB) (rowsync.Database, func(string, ...any) error) {
		tb.Helper()
		x := openTestDB(tb)
		return x.db, func(q string, args ...any) error {
			_, err := x.app.Exec(q, args...)
			return err
		}
	},
	Query: func(db rowsync.Database, q string, args ...any) ([][]any, error) {
		mdb, ok := db.(*mysql.DB)
		if !ok {
			return nil, fmt.Errorf("not a MySQL database: %T", db)
		}
		return rowsynctest.QueryAll(mdb.SQL(), q, args...)
	},
}

func TestConformance(t *testing.T) {
	rowsynctest.RunConformance(t, harness)
}

func TestOpenUnreachable(t *testing.T) {
	_, err := mysql.Open(t.Context(), "mysql://someone:s3cret@127.0.0.1:1/nodb?timeout=2s")
	if err == nil {
		t.Fatal("Open of an address where no server listens succeeded")
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error shows the password: %v", err)
	}
	if !strings.Contains(err.Error(), "mysql://someone@127.0.0.1:1/nodb") {
		t.Errorf("error does not name the address: %v", err)
	}
}

func TestOpenBadAddress(t *testing.T) {
	for _, addr := range []string{"postgres://h/db", "mysql://h", "mysql://u:pw@h:3306/"} {
		_, err := mysql.Open(t.Context(), addr)
		if err == nil {
			t.Errorf("Open(%q) succeeded", addr)
		} else if strings.Contains(err.Error(), "pw") {
			t.Errorf("Open(%q): error shows the password: %v", addr, err)
		}
	}
}

func TestAddress(t *testing.T) {
	x := openTestDB(t)
	if got := x.db.Address(); strings.Contains(got, "@") && strings.Contains(got, ":@") {
		t.Errorf("Address %q", got)
	}
	u, _ := url.Parse(x.addr)
	if got := x.db.Address(); !strings.HasSuffix(got, u.Path) || !strings.HasPrefix(got, "mysql://") {
		t.Errorf("Address: got %q for %q", got, x.addr)
	}
}

// A table whose key collation folds case keeps rows 'a' and 'A' apart in
// rowsync's bookkeeping, and a case-only change of a key travels.
func TestCaseOnlyChanges(t *testing.T) {
	a, b := openTestDB(t), openTestDB(t)
	for _, x := range []*testDB{a, b} {
		x.exec(t, `CREATE TABLE kv(k VARCHAR(50) PRIMARY KEY, v VARCHAR(50)) ENGINE=InnoDB`)
	}
	na, nb := initNode(t, a, "kv"), initNode(t, b, "kv")
	a.exec(t, `INSERT INTO kv VALUES ('x', 'hello')`)
	syncNodes(t, na, nb)
	a.exec(t, `UPDATE kv SET v = 'HELLO' WHERE k = 'x'`) // case-only change of a value
	syncNodes(t, na, nb)
	a.exec(t, `UPDATE kv SET k = 'X' WHERE k = 'x'`) // case-only change of the key
	syncNodes(t, na, nb)
	if got := dump(t, b, `SELECT CONCAT(k, '=', v) FROM kv`); got != "X=HELLO" {
		t.Errorf("b after case-only changes: %q, want X=HELLO", got)
	}
	a.exec(t, `UPDATE kv SET k = 'X ' WHERE k = 'X'`) // trailing space only
	syncNodes(t, na, nb)
	if got := dump(t, b, `SELECT CONCAT('[', k, ']') FROM kv`); got != "[X ]" {
		t.Errorf("b after a trailing-space change of the key: %q", got)
	}
}

func initNode(tb testing.TB, x *testDB, tables ...string) *rowsync.Node {
	tb.Helper()
	n, err := rowsync.Init(tb.Context(), x.db, rowsync.InitOptions{Tables: tables})
	if err != nil {
		tb.Fatalf("init: %v", err)
	}
	return n
}

func syncNodes(tb testing.TB, a, b *rowsync.Node) *rowsync.SyncResult {
	tb.Helper()
	res, err := a.Sync(tb.Context(), b, rowsync.SyncOptions{})
	if err != nil {
		tb.Fatalf("sync: %v", err)
	}
	return res
}

// dump runs a one-column query and joins the rows with commas.
func dump(tb testing.TB, x *testDB, q string, args ...any) string {
	tb.Helper()
	rows, err := x.app.Query(q, args...)
	if err != nil {
		tb.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s sql.NullString
		if err := rows.Scan(&s); err != nil {
			tb.Fatal(err)
		}
		if s.Valid {
			out = append(out, s.String)
		} else {
			out = append(out, "NULL")
		}
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return strings.Join(out, ",")
}

func isConstraint(err error) bool {
	var ce *rowsync.ConstraintError
	return errors.As(err, &ce)
}

func TestCascadeWarnings(t *testing.T) {
	x := openTestDB(t)
	x.exec(t, `CREATE TABLE p(id INT PRIMARY KEY) ENGINE=InnoDB;
		CREATE TABLE c(id INT PRIMARY KEY, pid INT, FOREIGN KEY (pid) REFERENCES p(id) ON DELETE CASCADE) ENGINE=InnoDB;
		CREATE TABLE plain(id INT PRIMARY KEY, pid INT, FOREIGN KEY (pid) REFERENCES p(id)) ENGINE=InnoDB;
		CREATE TABLE u(id INT PRIMARY KEY) ENGINE=InnoDB;
		CREATE TABLE uc(id INT PRIMARY KEY, uid INT, FOREIGN KEY (uid) REFERENCES u(id) ON DELETE CASCADE) ENGINE=InnoDB;
		CREATE TABLE tree(id INT PRIMARY KEY, up INT, FOREIGN KEY (up) REFERENCES tree(id) ON DELETE CASCADE) ENGINE=InnoDB`)
	n := initNode(t, x, "p", "c", "plain", "uc", "tree")
	ws, err := x.db.CascadeWarnings(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// c's cascade is captured from p's triggers; uc's parent is not
	// tracked, and tree's cascade is a cycle.
	if len(ws) != 2 || !strings.Contains(ws[0], `"tree"`) || !strings.Contains(ws[0], "cycle") ||
		!strings.Contains(ws[1], `"uc"`) || !strings.Contains(ws[1], "parent is not tracked") {
		t.Errorf("warnings: %q, want one about tree's cycle and one about uc's untracked parent", ws)
	}
	// Parents come first.
	var order []string
	for _, tb := range n.Tables() {
		order = append(order, tb.Name)
	}
	if strings.Join(order[:3], ",") != "p,c,plain" {
		t.Errorf("tables in order %v, want p first", order)
	}
}
