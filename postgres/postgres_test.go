package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/rowsync/rowsync"
	"github.com/rowsync/rowsync/postgres"
	"github.com/rowsync/rowsync/rowsynctest"
)

// newSchema creates a schema with a unique name on the test server and
// drops it, with everything in it, when tb ends. It returns the node
// address (schema=NAME) and the schema name.
func newSchema(tb testing.TB) (addr, schema string) {
	tb.Helper()
	base := rowsynctest.PostgresURL(tb)
	var b [6]byte
	rand.Read(b[:])
	schema = "rs_test_" + hex.EncodeToString(b[:])
	conn, err := pgx.Connect(tb.Context(), base)
	if err != nil {
		tb.Fatalf("connect to %s: %v", base, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(tb.Context(), `CREATE SCHEMA `+pgx.Identifier{schema}.Sanitize()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), base)
		if err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), `DROP SCHEMA `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatal(err)
	}
	q := u.Query()
	q.Set("schema", schema)
	u.RawQuery = q.Encode()
	return u.String(), schema
}

// openDB opens a node on a schema, closed when tb ends.
func openDB(tb testing.TB, addr string) *postgres.DB {
	tb.Helper()
	db, err := postgres.Open(tb.Context(), addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// appConn opens a connection as an application would, with the schema on
// its search_path, closed when tb ends.
func appConn(tb testing.TB, schema string) *pgx.Conn {
	tb.Helper()
	cfg, err := pgx.ParseConfig(rowsynctest.PostgresURL(tb))
	if err != nil {
		tb.Fatal(err)
	}
	cfg.RuntimeParams["search_path"] = pgx.Identifier{schema}.Sanitize()
	conn, err := pgx.ConnectConfig(tb.Context(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// placeholders rewrites the suite's ? placeholders to $1, $2, ... outside
// quoted strings and names.
func placeholders(q string) string {
	var b strings.Builder
	n := 0
	var quote byte
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// execFunc runs SQL on an application connection: without arguments by
// the simple protocol, which accepts several statements.
func execFunc(tb testing.TB, conn *pgx.Conn) func(string, ...any) error {
	return func(q string, args ...any) error {
		var err error
		if len(args) == 0 {
			_, err = conn.Exec(tb.Context(), q)
		} else {
			_, err = conn.Exec(tb.Context(), placeholders(q), args...)
		}
		return err
	}
}

var harness = rowsynctest.Harness{
	Dialect: "postgres",
	Open: func(tb testing.TB) (rowsync.Database, func(string, ...any) error) {
		tb.Helper()
		addr, schema := newSchema(tb)
		db := openDB(tb, addr)
		return db, execFunc(tb, appConn(tb, schema))
	},
	Query: func(db rowsync.Database, q string, args ...any) ([][]any, error) {
		pdb, ok := db.(*postgres.DB)
		if !ok {
			return nil, fmt.Errorf("not a PostgreSQL database: %T", db)
		}
		if len(args) > 0 {
			q = placeholders(q)
		}
		rows, err := pdb.Pool().Query(context.Background(), q, args...)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var out [][]any
		for rows.Next() {
			vs, err := rows.Values()
			if err != nil {
				return nil, err
			}
			out = append(out, vs)
		}
		return out, rows.Err()
	},
}

func TestConformance(t *testing.T) {
	rowsynctest.RunConformance(t, harness)
}
