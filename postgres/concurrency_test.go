package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rowsync/rowsync"
	"github.com/rowsync/rowsync/postgres"
	"github.com/rowsync/rowsync/rowsynctest"
)

const twoTables = `CREATE TABLE t1(id bigint PRIMARY KEY, v bigint NOT NULL, note text);
	CREATE TABLE t2(id bigint PRIMARY KEY, grp integer, label text)`

// A write that an application transaction made before a fold read later
// entries, and committed after it, still reaches the peer: the fold
// deletes only the log entries it read.
func TestLateCommitNotLost(t *testing.T) {
	a, b := newSite(t, twoTables), newSite(t, twoTables)
	a.init(t, "t1")
	b.init(t, "t1")
	held, err := a.app.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer held.Rollback(context.Background())
	if _, err := held.Exec(t.Context(), `INSERT INTO t1 VALUES (1, 1, 'held open')`); err != nil {
		t.Fatal(err)
	}
	other := appConn(t, a.schema)
	if _, err := other.Exec(t.Context(), `INSERT INTO t1 VALUES (2, 2, 'committed')`); err != nil {
		t.Fatal(err)
	}
	a.sync(t, b)
	if rows := b.query(t, `SELECT id FROM t1 ORDER BY id`); len(rows) != 1 || rows[0][0] != int64(2) {
		t.Fatalf("b after the first sync: %v, want row 2 only", rows)
	}
	if err := held.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	a.sync(t, b)
	if rows := b.query(t, `SELECT id, note FROM t1 ORDER BY id`); len(rows) != 2 || rows[0][1] != "held open" {
		t.Fatalf("b after the held transaction committed and a second sync: %v, want rows 1 and 2", rows)
	}

	// The race inside one fold: the held transaction commits between the
	// fold's ReadLog and its DeleteLog. Its entry has a lower ID than the
	// one read, and must survive the delete.
	held, err = a.app.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer held.Rollback(context.Background())
	if _, err := held.Exec(t.Context(), `INSERT INTO t1 VALUES (3, 3, 'late')`); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Exec(t.Context(), `INSERT INTO t1 VALUES (4, 4, 'early')`); err != nil {
		t.Fatal(err)
	}
	tb := a.table(t, "t1")
	a.update(t, func(tx rowsync.Tx) {
		es, err := tx.ReadLog(tb, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) != 1 || es[0].Row[0].Int != 4 {
			t.Fatalf("log read while the insert of 3 is uncommitted: %v, want the insert of 4", es)
		}
		if err := held.Commit(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := tx.DeleteLog(tb, es[0].ID, nil); err != nil {
			t.Fatal(err)
		}
	})
	es := a.logOf(t, tb)
	if len(es) != 1 || es[0].Row[0].Int != 3 {
		t.Fatalf("log after deleting what the fold read: %v, want the late insert of 3", es)
	}
	a.sync(t, b)
	if rows := b.query(t, `SELECT note FROM t1 WHERE id = 3`); len(rows) != 1 || rows[0][0] != "late" {
		t.Errorf("b after the late insert committed: row 3 is %v", rows)
	}
}

// lateEntry starts the case of the late-entry tests: an update of key 1
// (entry 1) held uncommitted by held, an insert of key 2 (entry 2)
// committed by other, and a write transaction tx that has read the first
// page of the log, entry 2 alone.
func lateEntry(t *testing.T) (a *site, tb *rowsync.Table, held pgx.Tx, other *pgx.Conn, tx rowsync.Tx, page []rowsync.LogEntry) {
	t.Helper()
	a = newSite(t, twoTables)
	a.exec(t, `INSERT INTO t1 VALUES (1, 0, 'x')`)
	a.init(t, "t1")
	tb = a.table(t, "t1")
	held, err := a.app.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { held.Rollback(context.Background()) })
	if _, err := held.Exec(t.Context(), `UPDATE t1 SET v = 1 WHERE id = 1`); err != nil { // entry 1 of key 1
		t.Fatal(err)
	}
	other = appConn(t, a.schema)
	if _, err := other.Exec(t.Context(), `INSERT INTO t1 VALUES (2, 2, 'y')`); err != nil { // entry 2 of key 2
		t.Fatal(err)
	}
	tx, err = a.db.Begin(t.Context(), true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback() })
	page, err = tx.ReadLog(tb, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 1 || page[0].Row[0].Int != 2 {
		t.Fatalf("first page: %v, want the insert of key 2 only", page)
	}
	return a, tb, held, other, tx, page
}

// When a later page of the log shows an entry that committed late, in a
// gap below entries already read, the later entries of its key are left
// for the next fold, so that one fold never applies a key's writes out of
// order.
func TestLogPagesWithLateEntry(t *testing.T) {
	a, tb, held, other, tx, page := lateEntry(t)
	if err := held.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Exec(t.Context(), `DELETE FROM t1 WHERE id = 1`); err != nil { // entry 3 of key 1
		t.Fatal(err)
	}
	rest, err := tx.ReadLog(tb, page[0].ID, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(rest) != 0 {
		t.Errorf("second page: %v, want nothing (key 1 has an entry below the first page)", rest)
	}
	if err := tx.DeleteLog(tb, page[0].ID, nil); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	var ops []rowsync.LogOp
	a.update(t, func(tx rowsync.Tx) {
		es, err := tx.ReadLog(tb, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			ops = append(ops, e.Op)
		}
	})
	if len(ops) != 2 || ops[0] != rowsync.OpUpdate || ops[1] != rowsync.OpDelete {
		t.Errorf("log left for the next fold: ops %v, want the update then the delete of key 1", ops)
	}
}

// The same, with the late entry and the entry after it committing just
// before the second page is read: the look for late entries must come
// after the page (a look before it, a statement of its own at READ
// COMMITTED, missed the late entry while the page showed the next one).
func TestLogPageLateEntryRightBeforePage(t *testing.T) {
	_, tb, held, other, tx, page := lateEntry(t)
	defer postgres.SetBeforeLogPage(func() {
		if err := held.Commit(t.Context()); err != nil {
			t.Error(err)
		}
		if _, err := other.Exec(t.Context(), `DELETE FROM t1 WHERE id = 1`); err != nil { // entry 3 of key 1
			t.Error(err)
		}
	})()
	rest, err := tx.ReadLog(tb, page[0].ID, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(rest) != 0 {
		t.Errorf("second page: %v, want nothing (key 1 has an entry below the first page)", rest)
	}
}

// writeFor is how long the writers of a concurrency test run: shorter
// with -short.
func writeFor(d time.Duration) time.Duration {
	if testing.Short() {
		return d / 2
	}
	return d
}

// isRetryable reports a deadlock or serialization failure.
func isRetryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// writer makes random writes to its own key range of t1 and t2 on its own
// connection, some in multi-statement transactions held open briefly, and
// remembers the last state of every key.
type writer struct {
	conn   *pgx.Conn
	base   int64
	rng    *rand.Rand
	t1, t2 map[int64]string // key → last note/label, absent if deleted
	writes int
}

func newWriter(tb testing.TB, schema string, base int64, seed uint64) *writer {
	return &writer{conn: appConn(tb, schema), base: base, rng: rand.New(rand.NewPCG(seed, uint64(base))), t1: map[int64]string{}, t2: map[int64]string{}}
}

func (w *writer) step(ctx context.Context) error {
	tx, err := w.conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background())
	type change struct {
		m   map[int64]string
		k   int64
		val string
		del bool
	}
	var changes []change
	n := 1 + w.rng.IntN(3)
	for range n {
		m, table, col := w.t1, "t1", "note"
		if w.rng.IntN(2) == 0 {
			m, table, col = w.t2, "t2", "label"
		}
		k := w.base + int64(w.rng.IntN(40))
		val := fmt.Sprintf("w%d-%d", w.base, w.writes)
		w.writes++
		_, exists := m[k]
		for _, c := range changes {
			if c.k == k && sameMap(c.m, m) {
				exists = !c.del
			}
		}
		var err error
		del := false
		switch {
		case !exists:
			if table == "t1" {
				_, err = tx.Exec(ctx, `INSERT INTO t1(id, v, note) VALUES ($1, $2, $3)`, k, w.writes, val)
			} else {
				_, err = tx.Exec(ctx, `INSERT INTO t2(id, grp, label) VALUES ($1, $2, $3)`, k, w.writes%7, val)
			}
		case w.rng.IntN(4) == 0:
			_, err = tx.Exec(ctx, `DELETE FROM `+table+` WHERE id = $1`, k)
			del = true
		default:
			_, err = tx.Exec(ctx, `UPDATE `+table+` SET `+col+` = $1 WHERE id = $2`, val, k)
		}
		if err != nil {
			return err
		}
		changes = append(changes, change{m, k, val, del})
		if w.rng.IntN(5) == 0 {
			time.Sleep(time.Duration(w.rng.IntN(3)) * time.Millisecond) // hold the transaction open a moment
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	// Pace the writers a little, so that the syncs on 2 cores get turns.
	time.Sleep(time.Duration(w.rng.IntN(8000)) * time.Microsecond)
	for _, c := range changes {
		if c.del {
			delete(c.m, c.k)
		} else {
			c.m[c.k] = c.val
		}
	}
	return nil
}

func sameMap(a, b map[int64]string) bool { return fmt.Sprintf("%p", a) == fmt.Sprintf("%p", b) }

// checkRows fails t unless the site holds exactly the rows the writers
// last wrote.
func checkRows(t *testing.T, s *site, ws []*writer) {
	t.Helper()
	for _, tt := range []struct{ table, col string }{{"t1", "note"}, {"t2", "label"}} {
		want := map[int64]string{}
		for _, w := range ws {
			m := w.t1
			if tt.table == "t2" {
				m = w.t2
			}
			for k, v := range m {
				want[k] = v
			}
		}
		got := map[int64]string{}
		for _, r := range s.query(t, `SELECT id, `+tt.col+` FROM `+tt.table) {
			got[r[0].(int64)] = r[1].(string)
		}
		if len(got) != len(want) {
			t.Errorf("%s: %s has %d rows, the writers left %d", s.schema, tt.table, len(got), len(want))
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: %s row %d: %q, the writer last wrote %q", s.schema, tt.table, k, got[k], v)
			}
		}
	}
}

// syncRetrying syncs a with b, retrying a sync that a deadlock or a
// serialization failure aborted (counted in retries).
func syncRetrying(ctx context.Context, a, b *rowsync.Node, retries *atomic.Int64) error {
	for {
		_, err := a.Sync(ctx, b, rowsync.SyncOptions{})
		if err == nil || !isRetryable(err) {
			return err
		}
		retries.Add(1)
	}
}

// Application connections write to node a (and one to node b) while
// another goroutine syncs a with b in a loop; at the end both nodes hold
// every row as the writers last wrote it.
func TestConcurrentWritersAndSync(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	a, b := newSite(t, twoTables), newSite(t, twoTables)
	a.init(t, "t1", "t2")
	b.init(t, "t1", "t2")
	var ws []*writer
	for i := range 6 {
		ws = append(ws, newWriter(t, a.schema, int64(1000*(i+1)), 1))
	}
	bw := newWriter(t, b.schema, 100000, 2)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for _, w := range append(ws, bw) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := w.step(ctx); err != nil {
					errs <- fmt.Errorf("writer %d: %w", w.base, err)
					return
				}
			}
		}()
	}
	var retries atomic.Int64
	syncs := 0
	syncDone := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				syncDone <- nil
				return
			default:
			}
			if err := syncRetrying(ctx, a.node, b.node, &retries); err != nil {
				syncDone <- err
				return
			}
			syncs++
		}
	}()
	time.Sleep(writeFor(4 * time.Second))
	close(stop)
	wg.Wait()
	if err := <-syncDone; err != nil {
		t.Fatalf("sync during the writes: %v", err)
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	rounds := rowsynctest.SyncUntilQuiet(t, []*rowsync.Node{a.node, b.node}, 10)
	writes := bw.writes
	for _, w := range ws {
		writes += w.writes
	}
	t.Logf("%d writes, %d syncs during the writes, %d rounds to quiet, %d syncs retried after a deadlock or serialization failure",
		writes, syncs, rounds, retries.Load())
	if syncs == 0 {
		t.Error("no sync completed while the writers ran")
	}
	all := append(ws, bw)
	checkRows(t, a, all)
	checkRows(t, b, all)
	if ctx.Err() != nil {
		t.Fatal("timed out")
	}
}

// Two handles on one schema (two rowsync serve processes on one
// database) sync with a third node at the same time: their write
// transactions exclude each other, and the nodes converge.
func TestTwoHandlesOneSchema(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	x, c := newSite(t, twoTables), newSite(t, twoTables)
	x.init(t, "t1", "t2")
	c.init(t, "t1", "t2")
	x2 := openDB(t, x.addr)
	n2 := rowsync.NewNode(x2)
	if err := n2.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if n2.ID() != x.node.ID() {
		t.Fatalf("second handle sees node %s, first %s", n2.ID(), x.node.ID())
	}
	ws := []*writer{newWriter(t, x.schema, 1000, 3), newWriter(t, x.schema, 2000, 3), newWriter(t, c.schema, 3000, 4)}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var retries atomic.Int64
	errs := make(chan error, 8)
	loop := func(f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := f(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for _, w := range ws {
		loop(func() error { return w.step(ctx) })
	}
	loop(func() error { return syncRetrying(ctx, x.node, c.node, &retries) })
	loop(func() error { return syncRetrying(ctx, n2, c.node, &retries) })
	loop(func() error { return syncRetrying(ctx, c.node, n2, &retries) })
	time.Sleep(writeFor(3 * time.Second))
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	rowsynctest.SyncUntilQuiet(t, []*rowsync.Node{n2, c.node}, 10)
	t.Logf("%d syncs retried after a deadlock or serialization failure", retries.Load())
	checkRows(t, x, ws)
	checkRows(t, c, ws)
}

func TestSetIDRange(t *testing.T) {
	s := newSite(t, `CREATE TABLE a(id serial PRIMARY KEY, v text);
		CREATE TABLE b(id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, n bigserial, v text);
		CREATE TABLE untracked(id serial PRIMARY KEY)`)
	s.exec(t, `INSERT INTO a(v) VALUES ('x'), ('y'); INSERT INTO b(v) VALUES ('x')`)
	s.init(t, "a", "b")
	moved, err := s.db.SetIDRange(t.Context(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(moved) != 3 {
		t.Errorf("sequences moved: %q, want a.id, b.id and b.n", moved)
	}
	s.exec(t, `INSERT INTO a(v) VALUES ('z'); INSERT INTO b(v) VALUES ('z'); INSERT INTO untracked DEFAULT VALUES`)
	if got := s.query(t, `SELECT max(id) FROM a`)[0][0]; got != int32(1000) {
		t.Errorf("next id of a after SetIDRange(1000): %v, want 1000", got)
	}
	if got := s.query(t, `SELECT max(id), max(n) FROM b`)[0]; got[0] != int64(1000) || got[1] != int64(1000) {
		t.Errorf("next ids of b after SetIDRange(1000): %v, want 1000 and 1000", got)
	}
	if got := s.query(t, `SELECT max(id) FROM untracked`)[0][0]; got != int32(1) {
		t.Errorf("untracked table's sequence moved: next id %v", got)
	}
	// Never backwards, and not again when already in range.
	for _, start := range []int64{500, 1000} {
		moved, err := s.db.SetIDRange(t.Context(), start)
		if err != nil {
			t.Fatal(err)
		}
		if len(moved) != 0 {
			t.Errorf("SetIDRange(%d) after ids reached 1000 moved %q", start, moved)
		}
	}
	s.exec(t, `INSERT INTO a(v) VALUES ('w')`)
	if got := s.query(t, `SELECT max(id) FROM a`)[0][0]; got != int32(1001) {
		t.Errorf("next id of a: %v, want 1001", got)
	}
}

func TestOpenErrors(t *testing.T) {
	base := rowsynctest.PostgresURL(t)
	_, err := postgres.Open(t.Context(), "postgres://someone:s3cret@127.0.0.1:1/db?connect_timeout=2")
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("Open of an unreachable server: got %v, want an error naming the address without the password", err)
	}
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	_, err = postgres.Open(t.Context(), base+sep+"schema=rs_no_such_schema")
	if err == nil || !strings.Contains(err.Error(), "rs_no_such_schema") {
		t.Errorf("Open of a missing schema: got %v, want an error naming it", err)
	}
	if _, err := postgres.Open(t.Context(), "mysql://root@localhost/x"); err == nil {
		t.Error("Open of a mysql:// address succeeded")
	}
	addr, schema := newSchema(t)
	db := openDB(t, strings.Replace(addr, "postgres://postgres@", "postgres://postgres:pw@", 1))
	if strings.Contains(db.Address(), "pw") || !strings.Contains(db.Address(), schema) {
		t.Errorf("Address: %q, want it without the password and with the schema", db.Address())
	}
	if _, err := db.Tables(t.Context()); !errors.Is(err, rowsync.ErrNotInitialized) {
		t.Errorf("Tables of an empty schema: %v, want ErrNotInitialized", err)
	}
}
