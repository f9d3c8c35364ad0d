package sqlite_test

import (
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rowsync/rowsync"
	"github.com/rowsync/rowsync/rowsynctest"
	"github.com/rowsync/rowsync/sqlite"
)

// harness opens SQLite files in the test's temporary directory; the
// application side is a database/sql pool of one connection of its own.
var harness = rowsynctest.Harness{
	Dialect: "sqlite",
	Open: func(tb testing.TB) (rowsync.Database, func(string, ...any) error) {
		tb.Helper()
		path := filepath.Join(tb.TempDir(), "node.db")
		db, err := sqlite.Open(path, true)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { db.Close() })
		app := openApp(tb, path)
		return db, func(q string, args ...any) error {
			_, err := app.Exec(q, args...)
			return err
		}
	},
	Query: func(db rowsync.Database, q string, args ...any) ([][]any, error) {
		sdb, ok := db.(*sqlite.DB)
		if !ok {
			return nil, fmt.Errorf("not a SQLite database: %T", db)
		}
		return rowsynctest.QueryAll(sdb.SQL(), q, args...)
	},
}

// openApp opens the database file as an application would.
func openApp(tb testing.TB, path string) *sql.DB {
	tb.Helper()
	app, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)")
	if err != nil {
		tb.Fatal(err)
	}
	app.SetMaxOpenConns(1)
	tb.Cleanup(func() { app.Close() })
	return app
}

func TestConformance(t *testing.T) {
	rowsynctest.RunConformance(t, harness)
}

func TestOpenMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.db")
	if _, err := sqlite.Open(path, false); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Open of a missing file without create: got %v, want an error naming it", err)
	}
}

func TestTablesAfterSchemaChange(t *testing.T) {
	tests := []struct {
		name    string
		change  string
		refused bool   // SQLite refuses the change: the capture triggers use the column
		want    string // in the error of Tables
	}{
		{"column added", `ALTER TABLE items ADD COLUMN extra TEXT`, false, `"extra"`},
		{"column dropped", `ALTER TABLE items DROP COLUMN qty`, true, ""},
		{"column renamed", `ALTER TABLE items RENAME COLUMN qty TO quantity`, false, `"qty"`},
		{"table dropped", `DROP TABLE items`, false, `"items"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "node.db")
			db, err := sqlite.Open(path, true)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			app := openApp(t, path)
			if _, err := app.Exec(`CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, qty INTEGER)`); err != nil {
				t.Fatal(err)
			}
			if _, err := rowsync.Init(t.Context(), db, rowsync.InitOptions{Tables: []string{"items"}}); err != nil {
				t.Fatal(err)
			}
			_, err = app.Exec(tt.change)
			if tt.refused {
				if err == nil {
					t.Errorf("%s: succeeded, want it refused", tt.change)
				}
				if _, err := db.Tables(t.Context()); err != nil {
					t.Errorf("Tables after a refused change: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			_, err = db.Tables(t.Context())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Tables after %s: got %v, want an error naming %s", tt.change, err, tt.want)
			}
			if errors.Is(err, rowsync.ErrNotInitialized) {
				t.Errorf("Tables after %s: %v, want a schema error, not ErrNotInitialized", tt.change, err)
			}
		})
	}
}
