package rowsync_test

import (
	"fmt"
	"testing"

	"github.com/rowsync/rowsync"
)

// BenchmarkInitialSync measures applying the rows of a hub to an empty
// node, in process (no HTTP): the engine's and the adapter's share of the
// initial sync rate that `rowsync bench` reports. Run with
// go test -run '^$' -bench InitialSync -benchtime 3x -cpuprofile cpu.out .
func BenchmarkInitialSync(b *testing.B) {
	const rows = 100_000
	const schema = `CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, price REAL, note TEXT); CREATE INDEX item_name ON item(name);`
	hub := newSite(b, "hub", schema)
	tx, err := hub.app.Begin()
	if err != nil {
		b.Fatal(err)
	}
	for i := range rows {
		if _, err := tx.Exec(`INSERT INTO item VALUES (?, ?, ?, ?, ?)`, i+1, fmt.Sprintf("item %d", i), i%100, float64(i)/4, "a note of some length"); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	if _, err := hub.node.Sync(b.Context(), newSite(b, "warm", schema).node, rowsync.SyncOptions{}); err != nil {
		b.Fatal(err) // folds the hub's log once, outside the timing
	}
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		node := newSite(b, "node", schema)
		b.StartTimer()
		res, err := node.node.Sync(b.Context(), hub.node, rowsync.SyncOptions{PullOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		if res.Pulled.Changed != rows {
			b.Fatalf("applied %d rows, want %d", res.Pulled.Changed, rows)
		}
	}
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkIncrementalSync measures a sync of 2000 changed rows between two
// nodes of 20k and of 200k rows, in process: the cost must follow the
// changes, not the size of the database.
func BenchmarkIncrementalSync(b *testing.B) {
	const schema = `CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, price REAL, note TEXT); CREATE INDEX item_name ON item(name);`
	for _, rows := range []int{20_000, 200_000} {
		b.Run(fmt.Sprint(rows), func(b *testing.B) {
			hub, node := newSite(b, "hub", schema), newSite(b, "node", schema)
			tx, err := hub.app.Begin()
			if err != nil {
				b.Fatal(err)
			}
			for i := range rows {
				if _, err := tx.Exec(`INSERT INTO item VALUES (?, ?, ?, ?, ?)`, i+1, fmt.Sprintf("item %d", i), i%100, float64(i)/4, "a note of some length"); err != nil {
					b.Fatal(err)
				}
			}
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
			if _, err := node.node.Sync(b.Context(), hub.node, rowsync.SyncOptions{}); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				tx, err := hub.app.Begin()
				if err != nil {
					b.Fatal(err)
				}
				for j := range 2000 {
					id := (j*7919+i*31)%rows + 1
					if _, err := tx.Exec(`UPDATE item SET note = ? WHERE id = ?`, fmt.Sprintf("changed %d %d", i, j), id); err != nil {
						b.Fatal(err)
					}
				}
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				res, err := node.node.Sync(b.Context(), hub.node, rowsync.SyncOptions{})
				if err != nil {
					b.Fatal(err)
				}
				if res.Pulled.Changed != 2000 {
					b.Fatalf("applied %d rows, want 2000", res.Pulled.Changed)
				}
			}
		})
	}
}
