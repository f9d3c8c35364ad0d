package rowsync_test

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rowsync/rowsync"
)

const concurrentSchema = `CREATE TABLE t1(id INTEGER PRIMARY KEY, v INTEGER, w TEXT);
CREATE TABLE t2(id INTEGER PRIMARY KEY, n INTEGER, note TEXT UNIQUE);`

// appWriter writes random rows of t1 and t2 through a connection of its own
// until ctx ends: inserts, updates (some that change nothing), deletes,
// INSERT OR REPLACE (which can remove another row through the UNIQUE
// note), and transactions over both tables. Its own row 1000+w of t1 gets
// an increasing counter; it returns the last counter it committed.
func appWriter(ctx context.Context, tb testing.TB, path string, w int) int64 {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(20000)&_pragma=foreign_keys(1)")
	if err != nil {
		tb.Error(err)
		return 0
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	r := rand.New(rand.NewPCG(uint64(w), 42))
	var last int64
	for n := int64(1); ctx.Err() == nil; n++ {
		id := 1 + r.IntN(100)
		var q string
		switch r.IntN(7) {
		case 0:
			q = fmt.Sprintf(`INSERT INTO t1 VALUES (%d, %d, 'w%d') ON CONFLICT(id) DO UPDATE SET v = excluded.v, w = excluded.w`, id, n, w)
		case 1:
			q = fmt.Sprintf(`UPDATE t1 SET v = v + 1 WHERE id = %d`, id)
		case 2:
			q = fmt.Sprintf(`DELETE FROM t1 WHERE id = %d`, id)
		case 3:
			q = fmt.Sprintf(`INSERT OR REPLACE INTO t2 VALUES (%d, %d, 'note %d')`, id, n, r.IntN(100))
		case 4:
			q = fmt.Sprintf(`DELETE FROM t2 WHERE id = %d`, id)
		case 5:
			q = fmt.Sprintf(`UPDATE t1 SET w = w WHERE id = %d`, id) // changes nothing
		default:
			q = fmt.Sprintf(`BEGIN IMMEDIATE; INSERT INTO t2 VALUES (%d, %d, NULL) ON CONFLICT(id) DO UPDATE SET n = n + 1;
				UPDATE t1 SET w = 'tx%d' WHERE id = %d; COMMIT`, id, n, w, (id%100)+1)
		}
		if _, err := db.Exec(q); err != nil {
			tb.Errorf("writer %d: %s: %v", w, q, err)
			return last
		}
		if _, err := db.Exec(`INSERT INTO t1 VALUES (?, ?, 'own') ON CONFLICT(id) DO UPDATE SET v = excluded.v`, 1000+w, n); err != nil {
			tb.Errorf("writer %d: %v", w, err)
			return last
		}
		last = n
		// A pause now and then, as applications make: SQLite's busy
		// handler sleeps, and writers that never pause starve the syncs.
		if r.IntN(4) == 0 {
			time.Sleep(time.Duration(r.IntN(2000)) * time.Microsecond)
		}
	}
	return last
}

// Application connections write to both nodes while they sync (the engine
// folds and applies between their writes): nothing is lost, and the nodes
// converge to the same rows.
func TestConcurrentWritersAndSync(t *testing.T) {
	d := 3 * time.Second
	if testing.Short() {
		d = time.Second
	}
	a, b := newSite(t, "a", concurrentSchema), newSite(t, "b", concurrentSchema)
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	const writers = 4
	last := make([]int64, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() { last[w] = appWriter(ctx, t, a.path, w) })
	}
	wg.Go(func() { appWriter(ctx, t, b.path, 100) })
	var syncs atomic.Int64
	wg.Go(func() {
		for ctx.Err() == nil {
			if _, err := a.node.Sync(context.WithoutCancel(ctx), b.node, rowsync.SyncOptions{}); err != nil {
				t.Errorf("sync: %v", err)
				return
			}
			syncs.Add(1)
		}
	})
	wg.Wait()
	if t.Failed() {
		return
	}
	if syncs.Load() == 0 {
		t.Fatal("no sync ran while the applications wrote")
	}
	for round := 0; ; round++ {
		res, err := a.node.Sync(t.Context(), b.node, rowsync.SyncOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Pushed.Rows+res.Pulled.Rows == 0 {
			break
		}
		if round == 10 {
			t.Fatal("nodes still exchange rows after 10 rounds")
		}
	}
	t.Logf("%d syncs during the writes; writers' last counters %v", syncs.Load(), last)
	if ra, rb := a.rows(t, "t1"), b.rows(t, "t1"); !slices.Equal(ra, rb) {
		t.Errorf("t1 differs after converging:\na: %q\nb: %q", ra, rb)
	}
	// t2's UNIQUE note: rows written on both nodes with the same note
	// cannot both apply. Such a change is held and listed (SPEC,
	// Constraints); every row that differs must be one of them.
	held := map[string]bool{}
	for _, s := range []*site{a, b} {
		for _, h := range s.held(t) {
			if h.Table == "t2" {
				held[rowsync.FormatKey(h.Key)] = true
			}
		}
	}
	byKey := func(rows []string) map[string]string {
		m := map[string]string{}
		for _, r := range rows {
			key, _, _ := strings.Cut(r, " ")
			m[key] = r
		}
		return m
	}
	ra, rb := byKey(a.rows(t, "t2")), byKey(b.rows(t, "t2"))
	for k := range ra {
		if _, ok := rb[k]; !ok {
			rb[k] = "(none)"
		}
	}
	for k, r := range rb {
		if ra[k] == r {
			continue
		}
		id, _ := strconv.ParseInt(strings.Split(k, ":")[1], 10, 64)
		if !held[rowsync.FormatKey([]rowsync.Value{rowsync.IntValue(id)})] {
			t.Errorf("t2 row %d differs and is held nowhere: a %s, b %s", id, cmp.Or(ra[k], "(none)"), r)
		}
	}
	t.Logf("t2: %d changes held by the UNIQUE note", len(held))
	for w, n := range last {
		var v int64
		if err := b.app.QueryRow(`SELECT v FROM t1 WHERE id = ?`, 1000+w).Scan(&v); err != nil || v != n {
			t.Errorf("writer %d: b has %d (%v), want its last value %d", w, v, err, n)
		}
	}
	for _, s := range []*site{a, b} {
		for _, log := range []string{"_rowsync_log_1", "_rowsync_log_2"} {
			var n int
			if err := s.app.QueryRow(`SELECT count(*) FROM ` + log).Scan(&n); err != nil || n != 0 {
				t.Errorf("%s: %s has %d captured writes left after converging (%v)", s.name, log, n, err)
			}
		}
	}
}
