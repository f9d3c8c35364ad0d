package mysql_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/rowsync/rowsync"
	"github.com/rowsync/rowsync/mysql"
)

const concurrentDDL = `CREATE TABLE t1(id INT PRIMARY KEY, v BIGINT, w VARCHAR(64)) ENGINE=InnoDB;
	CREATE TABLE t2(id INT PRIMARY KEY, n BIGINT, note TEXT) ENGINE=InnoDB`

// retryable reports whether err is a deadlock (1213) or a lock wait
// timeout (1205): the server rolled the transaction (or statement) back,
// and it can be run again.
func retryable(err error) bool {
	var me *gomysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1213 || me.Number == 1205)
}

// appWriter writes random rows of t1 and t2 on a connection of its own
// until ctx ends, and its own row 1000+w of t1 with an increasing counter.
// It returns the last counter it committed.
func appWriter(ctx context.Context, tb testing.TB, pool *sql.DB, w int, deadlocks *atomic.Int64) int64 {
	conn, err := pool.Conn(context.Background())
	if err != nil {
		tb.Error(err)
		return 0
	}
	defer conn.Close()
	r := rand.New(rand.NewPCG(uint64(w), 42))
	var last int64
	for n := int64(1); ctx.Err() == nil; n++ {
		id := 1 + r.IntN(100)
		var q string
		switch r.IntN(6) {
		case 0:
			q = fmt.Sprintf(`INSERT INTO t1 VALUES (%d, %d, 'w%d') ON DUPLICATE KEY UPDATE v = VALUES(v), w = VALUES(w)`, id, n, w)
		case 1:
			q = fmt.Sprintf(`UPDATE t1 SET v = v + 1 WHERE id = %d`, id)
		case 2:
			q = fmt.Sprintf(`DELETE FROM t1 WHERE id = %d`, id)
		case 3:
			q = fmt.Sprintf(`REPLACE INTO t2 VALUES (%d, %d, 'w%d')`, id, n, w)
		case 4:
			q = fmt.Sprintf(`DELETE FROM t2 WHERE id = %d`, id)
		default:
			// A transaction over both tables.
			q = fmt.Sprintf(`START TRANSACTION; INSERT INTO t2 VALUES (%d, %d, 'tx') ON DUPLICATE KEY UPDATE n = n + 1;
				UPDATE t1 SET w = 'tx%d' WHERE id = %d; COMMIT`, id, n, w, (id%100)+1)
		}
		if _, err := conn.ExecContext(context.Background(), q); err != nil {
			if retryable(err) {
				deadlocks.Add(1)
				conn.ExecContext(context.Background(), "ROLLBACK")
				continue
			}
			tb.Errorf("writer %d: %s: %v", w, q, err)
			return last
		}
		own := fmt.Sprintf(`INSERT INTO t1 VALUES (%d, %d, 'own') ON DUPLICATE KEY UPDATE v = VALUES(v)`, 1000+w, n)
		if _, err := conn.ExecContext(context.Background(), own); err != nil {
			if retryable(err) {
				deadlocks.Add(1)
				continue
			}
			tb.Errorf("writer %d: %v", w, err)
			return last
		}
		last = n
	}
	return last
}

// syncLoop syncs a with b until ctx ends, counting syncs that failed on a
// deadlock or lock wait timeout (retried by the next round).
func syncLoop(ctx context.Context, tb testing.TB, a, b *rowsync.Node, syncs, retries *atomic.Int64) {
	for ctx.Err() == nil {
		_, err := a.Sync(context.WithoutCancel(ctx), b, rowsync.SyncOptions{})
		switch {
		case err == nil:
			syncs.Add(1)
		case retryable(err):
			retries.Add(1)
			tb.Logf("sync retried: %v", err)
		default:
			tb.Errorf("sync: %v", err)
			return
		}
	}
}

// converge syncs the nodes along a ring until a round moves nothing,
// retrying rounds that hit a deadlock.
func converge(tb testing.TB, nodes ...*rowsync.Node) {
	tb.Helper()
	for round := 0; round < 20; round++ {
		var moved int64
		failed := false
		for i, n := range nodes {
			p := nodes[(i+1)%len(nodes)]
			res, err := n.Sync(tb.Context(), p, rowsync.SyncOptions{})
			if err != nil {
				if retryable(err) {
					failed = true
					continue
				}
				tb.Fatalf("round %d: sync: %v", round, err)
			}
			moved += res.Pushed.Rows + res.Pulled.Rows
		}
		if moved == 0 && !failed {
			return
		}
	}
	tb.Fatal("nodes still exchange rows after 20 rounds")
}

func tableDump(tb testing.TB, x *testDB) string {
	tb.Helper()
	return dump(tb, x, `SELECT CONCAT_WS(',', id, v, w) FROM t1 ORDER BY id`) + "\n" +
		dump(tb, x, `SELECT CONCAT_WS(',', id, n, note) FROM t2 ORDER BY id`)
}

// Application connections write while a node syncs: nothing is lost,
// the nodes converge.
func TestConcurrentWritersAndSync(t *testing.T) {
	if testing.Short() {
		t.Skip("runs writers for seconds")
	}
	a, b := openTestDB(t), openTestDB(t)
	a.exec(t, concurrentDDL)
	b.exec(t, concurrentDDL)
	na, nb := initNode(t, a, "t1", "t2"), initNode(t, b, "t1", "t2")
	// The whole test must end: a hang fails it instead of the run.
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	const writers = 6
	var deadlocks, syncs, retries atomic.Int64
	last := make([]int64, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() { last[w] = appWriter(ctx, t, a.app, w, &deadlocks) })
	}
	// One writer on b too, so that syncs apply rows on a while a's
	// applications write them.
	wg.Go(func() { appWriter(ctx, t, b.app, 100, &deadlocks) })
	done := make(chan struct{})
	go func() {
		defer close(done)
		syncLoop(ctx, t, na, nb, &syncs, &retries)
	}()
	wg.Wait()
	<-done
	if t.Failed() {
		return
	}
	converge(t, na, nb)
	t.Logf("%d syncs during the writes, %d retried after a deadlock or lock wait timeout; %d application deadlocks",
		syncs.Load(), retries.Load(), deadlocks.Load())
	if syncs.Load() == 0 {
		t.Error("no sync succeeded while the applications wrote")
	}
	if da, db := tableDump(t, a), tableDump(t, b); da != db {
		t.Errorf("nodes differ after converging:\na: %s\nb: %s", da, db)
	}
	for w, n := range last {
		if got := dump(t, b, `SELECT v FROM t1 WHERE id = ?`, 1000+w); got != fmt.Sprint(n) {
			t.Errorf("writer %d: b has %q, want its last value %d", w, got, n)
		}
	}
	for _, x := range []*testDB{a, b} {
		for _, tbl := range []string{"_rowsync_log_1", "_rowsync_log_2"} {
			if n := dump(t, x, "SELECT COUNT(*) FROM "+tbl); n != "0" {
				t.Errorf("%s: %s captured writes left after converging", tbl, n)
			}
		}
	}
}

// Two handles on one database (two serve processes) sync with a third node
// at the same time: the writer lock keeps them apart, nothing is lost.
func TestTwoHandlesSyncConcurrently(t *testing.T) {
	if testing.Short() {
		t.Skip("runs syncs for seconds")
	}
	a, c := openTestDB(t), openTestDB(t)
	a.exec(t, concurrentDDL)
	c.exec(t, concurrentDDL)
	na1, nc := initNode(t, a, "t1", "t2"), initNode(t, c, "t1", "t2")
	h2, err := mysql.Open(t.Context(), a.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	na2 := rowsync.NewNode(h2)
	if err := na2.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	var deadlocks, syncs, retries atomic.Int64
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() { appWriter(ctx, t, a.app, w, &deadlocks) })
	}
	wg.Go(func() { appWriter(ctx, t, c.app, 50, &deadlocks) })
	wg.Go(func() { syncLoop(ctx, t, na1, nc, &syncs, &retries) })
	wg.Go(func() { syncLoop(ctx, t, na2, nc, &syncs, &retries) })
	wg.Wait()
	if t.Failed() {
		return
	}
	converge(t, na1, nc)
	converge(t, na2, nc)
	t.Logf("%d syncs, %d retried", syncs.Load(), retries.Load())
	if da, dc := tableDump(t, a), tableDump(t, c); da != dc {
		t.Errorf("nodes differ after converging:\na: %s\nc: %s", da, dc)
	}
}

// An application transaction that holds a captured write while a sync
// folds later ones: its log entry has a lower id but commits after the
// fold read past it. The fold must not delete it, and the next sync
// sends it.
func TestLogEntryCommittedLate(t *testing.T) {
	a, b := openTestDB(t), openTestDB(t)
	for _, x := range []*testDB{a, b} {
		x.exec(t, `CREATE TABLE t(id INT PRIMARY KEY, v TEXT) ENGINE=InnoDB`)
	}
	na, nb := initNode(t, a, "t"), initNode(t, b, "t")
	slow, err := a.app.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if _, err := slow.ExecContext(t.Context(), `START TRANSACTION; INSERT INTO t VALUES (1, 'slow')`); err != nil {
		t.Fatal(err)
	}
	a.exec(t, `INSERT INTO t VALUES (2, 'fast')`)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if _, err := na.Sync(ctx, nb, rowsync.SyncOptions{}); err != nil {
		t.Fatalf("sync while an application transaction is open: %v", err)
	}
	if got := dump(t, b, `SELECT id FROM t ORDER BY id`); got != "2" {
		t.Fatalf("b after the first sync: %q, want 2", got)
	}
	if _, err := slow.ExecContext(t.Context(), `COMMIT`); err != nil {
		t.Fatal(err)
	}
	syncNodes(t, na, nb)
	if got := dump(t, b, `SELECT CONCAT(id, v) FROM t ORDER BY id`); got != "1slow,2fast" {
		t.Errorf("b after the application committed: %q, want 1slow,2fast", got)
	}
	if got := dump(t, a, `SELECT COUNT(*) FROM _rowsync_log_1`); got != "0" {
		t.Errorf("captured writes left on a: %s", got)
	}
}

// The session variable that marks applied writes does not leak to the
// next user of the connection, even when the transaction fails.
func TestApplyVariableReset(t *testing.T) {
	x := openTestDB(t)
	x.exec(t, `CREATE TABLE t(id INT PRIMARY KEY)`)
	initNode(t, x, "t")
	x.db.SQL().SetMaxOpenConns(1) // every transaction gets the same connection
	tx, err := x.db.Begin(t.Context(), true)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.BeginApply(); err != nil {
		t.Fatal(err)
	}
	// A savepoint with a backtick in its name, then a failing statement.
	if err := tx.Savepoint("x`y"); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.LogCount(&rowsync.Table{ID: 999, Name: "missing"}); err == nil {
		t.Fatal("LogCount of a table without a log succeeded")
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	var v sql.NullString
	if err := x.db.SQL().QueryRow(`SELECT @rowsync_applying`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v.Valid {
		t.Errorf("@rowsync_applying is %q after the transaction ended", v.String)
	}
	// A write through that connection is captured as a local write.
	if _, err := x.db.SQL().Exec(`INSERT INTO t VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, x, `SELECT echo FROM _rowsync_log_1`); got != "0" {
		t.Errorf("echo mark of an application write: %q", got)
	}
	if !strings.Contains(x.db.Address(), "mysql://") {
		t.Errorf("address %q", x.db.Address())
	}
}
