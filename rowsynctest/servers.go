package rowsynctest

import (
	"net"
	"net/url"
	"os"
	"testing"
	"time"
)

// The servers tests run against when they need PostgreSQL or MySQL/MariaDB.
// Point them elsewhere with these environment variables; the tests create
// and drop databases (or schemas) of their own on that server.
const (
	// PostgresEnv names a PostgreSQL server: a postgres:// URL whose user
	// may create schemas and databases.
	PostgresEnv = "ROWSYNC_TEST_POSTGRES"
	// MySQLEnv names a MySQL or MariaDB server: a mysql://user:pass@host:port/db
	// address whose user may create databases.
	MySQLEnv = "ROWSYNC_TEST_MYSQL"

	defaultPostgres = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	defaultMySQL    = "mysql://root@127.0.0.1:3306/test"
)

// PostgresURL returns the PostgreSQL server tests use ($ROWSYNC_TEST_POSTGRES,
// by default the local server on 127.0.0.1:5432). When it cannot be reached
// the test is skipped, or fails when CI=true: CI must never pass by skipping.
func PostgresURL(tb testing.TB) string {
	tb.Helper()
	return server(tb, PostgresEnv, defaultPostgres, "5432")
}

// MySQLURL returns the MySQL/MariaDB server tests use ($ROWSYNC_TEST_MYSQL,
// by default root on 127.0.0.1:3306, database test), skipping or failing
// like PostgresURL when it cannot be reached.
func MySQLURL(tb testing.TB) string {
	tb.Helper()
	return server(tb, MySQLEnv, defaultMySQL, "3306")
}

func server(tb testing.TB, env, def, port string) string {
	tb.Helper()
	addr := os.Getenv(env)
	if addr == "" {
		addr = def
	}
	u, err := url.Parse(addr)
	if err != nil {
		tb.Fatalf("%s=%q: %v", env, addr, err)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), port)
	}
	c, err := net.DialTimeout("tcp", host, 3*time.Second)
	if err != nil {
		msg := "no server at " + host + " (" + err.Error() + "); set " + env + " to a server the tests may use"
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg + " — CI=true, so this fails instead of skipping")
		}
		tb.Skip(msg)
	}
	c.Close()
	return addr
}
