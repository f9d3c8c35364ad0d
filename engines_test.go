package rowsync_test

import (
	"strings"
	"testing"

	"github.com/rowsync/rowsync"
	"github.com/rowsync/rowsync/internal/testdb"
	"github.com/rowsync/rowsync/sqlite"
)

// openEngine opens a database address from testdb with its engine's
// adapter, closed when tb ends.
func openEngine(tb testing.TB, addr string) rowsync.Database {
	tb.Helper()
	var db rowsync.Database
	var err error
	switch testdb.EngineOf(addr) {
	case "sqlite":
		db, err = sqlite.Open(strings.TrimPrefix(addr, "sqlite:"), true)
	default:
		tb.Fatalf("no adapter for %s", addr)
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}
