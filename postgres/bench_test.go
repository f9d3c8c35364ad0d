package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rowsync/rowsync"
)

// BenchmarkCapture measures what capture costs a bulk load: COPY of
// 100,000 rows into a plain table and into an identical tracked table,
// reported as rows/s of each and the tracked/plain time ratio.
func BenchmarkCapture(b *testing.B) {
	const n = 100_000
	ddl := `CREATE TABLE plain(id bigint PRIMARY KEY, name text, qty bigint, price double precision, at timestamptz);
		CREATE TABLE tracked(id bigint PRIMARY KEY, name text, qty bigint, price double precision, at timestamptz)`
	s := newSite(b, ddl)
	if err := s.db.Install(b.Context(), []string{"tracked"}); err != nil {
		b.Fatal(err)
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cols := []string{"id", "name", "qty", "price", "at"}
	var plain, tracked time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rows := make([][]any, n)
		for j := range rows {
			id := int64(i*n + j)
			rows[j] = []any{id, fmt.Sprintf("item %d", id), id % 100, float64(id) / 7, at}
		}
		for _, table := range []string{"plain", "tracked"} {
			start := time.Now()
			if _, err := s.app.CopyFrom(b.Context(), pgx.Identifier{table}, cols, pgx.CopyFromRows(rows)); err != nil {
				b.Fatal(err)
			}
			if table == "plain" {
				plain += time.Since(start)
			} else {
				tracked += time.Since(start)
			}
		}
	}
	b.StopTimer()
	total := float64(b.N * n)
	b.ReportMetric(total/plain.Seconds(), "plain-rows/s")
	b.ReportMetric(total/tracked.Seconds(), "tracked-rows/s")
	b.ReportMetric(tracked.Seconds()/plain.Seconds(), "tracked/plain")
	b.ReportMetric(0, "ns/op")
}

// rowwiseDB hides the optional interfaces of its transactions (BulkTx),
// so that the engine applies and folds one row at a time.
type rowwiseDB struct{ rowsync.Database }

func (d rowwiseDB) Begin(ctx context.Context, write bool) (rowsync.Tx, error) {
	tx, err := d.Database.Begin(ctx, write)
	if err != nil {
		return nil, err
	}
	return struct{ rowsync.Tx }{tx}, nil
}

// BenchmarkInitialSync measures the initial sync of 20,000 rows of a
// 5-column table from a PostgreSQL node to an empty one, in process: the
// receiver's rows/s, with the adapter's bulk methods (bulk) and with them
// hidden from the engine (rowwise). Only the sync is timed.
func BenchmarkInitialSync(b *testing.B) {
	const n = 20_000
	ddl := `CREATE TABLE item(id bigint PRIMARY KEY, name text, qty bigint, price double precision, at timestamptz)`
	for _, mode := range []string{"rowwise", "bulk"} {
		b.Run(mode, func(b *testing.B) {
			var took time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				src, dst := newSite(b, ddl), newSite(b, ddl)
				src.exec(b, `INSERT INTO item SELECT g, 'item ' || g, g % 100, g / 7.0, timestamptz '2026-01-01' + g * interval '1 second'
					FROM generate_series(1, $1) AS g`, n)
				var db rowsync.Database = dst.db
				if mode == "rowwise" {
					db = rowwiseDB{dst.db}
				}
				src.init(b, "item")
				dn, err := rowsync.Init(b.Context(), db, rowsync.InitOptions{Tables: []string{"item"}, Name: dst.schema})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				start := time.Now()
				res, err := dn.Sync(b.Context(), src.node, rowsync.SyncOptions{})
				if err != nil {
					b.Fatal(err)
				}
				took += time.Since(start)
				b.StopTimer()
				if got := dst.query(b, `SELECT count(*) FROM item`)[0][0].(int64); got != n {
					b.Fatalf("%d rows after sync, want %d (%+v)", got, n, res)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(b.N*n)/took.Seconds(), "rows/s")
		})
	}
}
