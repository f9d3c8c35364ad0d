package rowsync_test

import (
	"testing"
	"time"

	"github.com/rowsync/rowsync"
	"github.com/rowsync/rowsync/engines"
)

// openEngine opens a database address from testdb with its engine's
// adapter, closed when tb ends.
func openEngine(tb testing.TB, addr string) rowsync.Database {
	tb.Helper()
	db, err := engines.Open(tb.Context(), addr, true)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// The property test over server engines: all nodes PostgreSQL, all
// MySQL/MariaDB, and a mixed network where a SQLite node, a PostgreSQL hub
// and a MariaDB node (and a second SQLite node) write at random and sync in
// every direction and over several hops, ending identical value by value
// in the canonical encoding.

func propertySeeds() ([]uint64, int) {
	if testing.Short() {
		return []uint64{1, uint64(time.Now().UnixNano())}, 200
	}
	return []uint64{1, 2, uint64(time.Now().UnixNano())}, 600
}

func TestPropertyPostgres(t *testing.T) {
	seeds, steps := propertySeeds()
	runProperties(t, seeds, steps, "postgres", "postgres", "postgres")
}

func TestPropertyMySQL(t *testing.T) {
	seeds, steps := propertySeeds()
	runProperties(t, seeds, steps, "mysql", "mysql", "mysql")
}

func TestPropertyMixed(t *testing.T) {
	seeds, steps := propertySeeds()
	runProperties(t, seeds, steps, "sqlite", "postgres", "mysql", "sqlite")
}
