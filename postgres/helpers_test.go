package postgres_test

import (
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/rowsync/rowsync"
	"github.com/rowsync/rowsync/postgres"
)

// site is a node on a schema of its own, with an application connection.
type site struct {
	addr, schema string
	db           *postgres.DB
	app          *pgx.Conn
	node         *rowsync.Node
}

// newSite creates a schema, runs ddl in it as the application and opens
// the node's database on it.
func newSite(tb testing.TB, ddl string) *site {
	tb.Helper()
	addr, schema := newSchema(tb)
	s := &site{addr: addr, schema: schema, db: openDB(tb, addr), app: appConn(tb, schema)}
	if ddl != "" {
		s.exec(tb, ddl)
	}
	return s
}

func quoteIdent(s string) string { return pgx.Identifier{s}.Sanitize() }

func (s *site) exec(tb testing.TB, q string, args ...any) {
	tb.Helper()
	if _, err := s.app.Exec(tb.Context(), q, args...); err != nil {
		tb.Fatalf("%s: exec %s: %v", s.schema, q, err)
	}
}

func (s *site) query(tb testing.TB, q string, args ...any) [][]any {
	tb.Helper()
	rows, err := s.app.Query(tb.Context(), q, args...)
	if err != nil {
		tb.Fatalf("%s: query %s: %v", s.schema, q, err)
	}
	defer rows.Close()
	var out [][]any
	for rows.Next() {
		vs, err := rows.Values()
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, vs)
	}
	if err := rows.Err(); err != nil {
		tb.Fatalf("%s: query %s: %v", s.schema, q, err)
	}
	return out
}

func (s *site) init(tb testing.TB, tables ...string) *rowsync.Node {
	tb.Helper()
	n, err := rowsync.Init(tb.Context(), s.db, rowsync.InitOptions{Tables: tables, Name: s.schema})
	if err != nil {
		tb.Fatalf("%s: init: %v", s.schema, err)
	}
	s.node = n
	return n
}

func (s *site) table(tb testing.TB, name string) *rowsync.Table {
	tb.Helper()
	ts, err := s.db.Tables(tb.Context())
	if err != nil {
		tb.Fatal(err)
	}
	for _, t := range ts {
		if t.Name == name {
			return t
		}
	}
	tb.Fatalf("%s: table %q is not tracked", s.schema, name)
	return nil
}

func (s *site) sync(tb testing.TB, p *site) *rowsync.SyncResult {
	tb.Helper()
	res, err := s.node.Sync(tb.Context(), p.node, rowsync.SyncOptions{})
	if err != nil {
		tb.Fatalf("sync %s with %s: %v", s.schema, p.schema, err)
	}
	return res
}

// values returns a table's rows as the engine reads them, by key.
func (s *site) values(tb testing.TB, t *rowsync.Table) map[string][]rowsync.Value {
	tb.Helper()
	out := map[string][]rowsync.Value{}
	tx, err := s.db.Begin(tb.Context(), false)
	if err != nil {
		tb.Fatal(err)
	}
	defer tx.Rollback()
	err = tx.ScanRows(t, func(row []rowsync.Value) error {
		key, _ := t.SplitRow(row)
		out[rowsync.FormatKey(key)] = slices.Clone(row)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// logOf returns the captured writes of a table not yet folded.
func (s *site) logOf(tb testing.TB, t *rowsync.Table) []rowsync.LogEntry {
	tb.Helper()
	tx, err := s.db.Begin(tb.Context(), false)
	if err != nil {
		tb.Fatal(err)
	}
	defer tx.Rollback()
	es, err := tx.ReadLog(t, 0, 1<<20)
	if err != nil {
		tb.Fatal(err)
	}
	return es
}

// update runs fn in a write transaction and commits it.
func (s *site) update(tb testing.TB, fn func(tx rowsync.Tx)) {
	tb.Helper()
	tx, err := s.db.Begin(tb.Context(), true)
	if err != nil {
		tb.Fatal(err)
	}
	defer tx.Rollback()
	fn(tx)
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
}
