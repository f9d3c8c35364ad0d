package mysql_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// BenchmarkCapture measures what capture costs an application: multi-row
// INSERTs of 1000 rows into a plain table and into a tracked one, on the
// same server, in the same run. Each iteration inserts one batch into
// each; the metrics are rows per second of each and their ratio.
func BenchmarkCapture(b *testing.B) {
	x := openTestDB(b)
	x.exec(b, `CREATE TABLE plain(id BIGINT PRIMARY KEY, name VARCHAR(100), qty BIGINT, price DECIMAL(10,2), at DATETIME(6));
		CREATE TABLE tracked(id BIGINT PRIMARY KEY, name VARCHAR(100), qty BIGINT, price DECIMAL(10,2), at DATETIME(6))`)
	initNode(b, x, "tracked")
	const batch = 1000
	insert := func(table string, from int) string {
		var sb strings.Builder
		fmt.Fprintf(&sb, "INSERT INTO %s VALUES ", table)
		for i := range batch {
			if i > 0 {
				sb.WriteString(", ")
			}
			fmt.Fprintf(&sb, "(%d, 'item %d', %d, %d.25, '2024-01-01 10:00:00.5')", from+i, from+i, i, i)
		}
		return sb.String()
	}
	var plain, tracked time.Duration
	b.ResetTimer()
	for n := 0; b.Loop(); n++ {
		for _, t := range []struct {
			table string
			d     *time.Duration
		}{{"plain", &plain}, {"tracked", &tracked}} {
			q := insert(t.table, n*batch)
			start := time.Now()
			if _, err := x.app.Exec(q); err != nil {
				b.Fatal(err)
			}
			*t.d += time.Since(start)
		}
	}
	rows := float64(b.N * batch)
	b.ReportMetric(rows/plain.Seconds(), "plain-rows/s")
	b.ReportMetric(rows/tracked.Seconds(), "tracked-rows/s")
	b.ReportMetric(tracked.Seconds()/plain.Seconds(), "tracked/plain")
}
