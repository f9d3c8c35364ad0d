// Package engines opens a rowsync database by its address, whatever its
// engine: a file path or sqlite:PATH for SQLite, postgres://… for
// PostgreSQL, mysql://user:pass@host:port/db for MySQL and MariaDB. It is
// what the rowsync command uses for --db; programs that embed rowsync and
// know their engine can call the engine's package directly.
package engines

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/rowsync/rowsync"
	"github.com/rowsync/rowsync/mysql"
	"github.com/rowsync/rowsync/postgres"
	"github.com/rowsync/rowsync/sqlite"
)

// Engine names the engine of an address: "sqlite", "postgres" or "mysql".
// It returns an error for an http(s) URL (a server, not a database) or an
// address of an unknown scheme.
func Engine(addr string) (string, error) {
	switch {
	case strings.HasPrefix(addr, "postgres://"), strings.HasPrefix(addr, "postgresql://"):
		return "postgres", nil
	case strings.HasPrefix(addr, "mysql://"):
		return "mysql", nil
	case strings.HasPrefix(addr, "http://"), strings.HasPrefix(addr, "https://"):
		return "", fmt.Errorf("%s is a server URL, not a database address", addr)
	case strings.HasPrefix(addr, "sqlite:"), !strings.Contains(addr, "://"):
		return "sqlite", nil
	}
	scheme, _, _ := strings.Cut(addr, "://")
	return "", fmt.Errorf("database address %s: unknown scheme %q (use a file path, sqlite:PATH, postgres://… or mysql://…)", Redact(addr), scheme)
}

// Open opens the database at addr. A SQLite file is created if create is
// set and it does not exist; server databases must exist.
func Open(ctx context.Context, addr string, create bool) (rowsync.Database, error) {
	engine, err := Engine(addr)
	if err != nil {
		return nil, err
	}
	switch engine {
	case "postgres":
		return postgres.Open(ctx, addr)
	case "mysql":
		return mysql.Open(ctx, addr)
	}
	path := strings.TrimPrefix(addr, "sqlite:")
	if path == "" {
		return nil, errors.New("empty SQLite path")
	}
	return sqlite.Open(path, create)
}

// IDRanger is a database that can move the ids its tables assign into a
// node's own block (rowsync init --id-range).
type IDRanger interface {
	// SetIDRange moves every tracked table's id generator to at least
	// start (never backwards) and says what it moved.
	SetIDRange(ctx context.Context, start int64) ([]string, error)
}

// Redact returns an address without its password, for messages.
func Redact(addr string) string {
	u, err := url.Parse(addr)
	if err != nil || u.User == nil {
		return addr
	}
	if _, ok := u.User.Password(); !ok {
		return addr
	}
	return u.Redacted()
}
