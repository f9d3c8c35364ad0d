package postgres_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
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
