package mysql_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/rowsync/rowsync"
	"github.com/rowsync/rowsync/mysql"
)

// lateEntry sets up the log of table t (id INT PRIMARY KEY, v TEXT) of x
// for a late entry of key 1: an application transaction updates row 1
// and stays open (the update's log entry is not visible), and another
// connection inserts row 2. write logs the next entry of key 1 once the
// caller has read past the update: either the held transaction deletes
// row 1 and then commits (two entries of one transaction), or it commits
// and another connection deletes row 1.
func lateEntry(tb testing.TB, x *testDB, sameTx bool) (write func()) {
	tb.Helper()
	held, err := x.app.Conn(tb.Context())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		held.ExecContext(context.Background(), "ROLLBACK")
		held.Close()
	})
	if _, err := held.ExecContext(tb.Context(), `START TRANSACTION; UPDATE t SET v = 'held' WHERE id = 1`); err != nil {
		tb.Fatal(err)
	}
	x.exec(tb, `INSERT INTO t VALUES (2, 'other')`)
	return func() {
		tb.Helper()
		q := `COMMIT`
		if sameTx {
			q = `DELETE FROM t WHERE id = 1; COMMIT`
		}
		if _, err := held.ExecContext(tb.Context(), q); err != nil {
			tb.Fatal(err)
		}
		if !sameTx {
			x.exec(tb, `DELETE FROM t WHERE id = 1`)
		}
	}
}

// When a later page of the log shows an entry whose key has an earlier
// entry that an earlier page could not see (committed late, in an id gap
// below it), that key's entries are left for the next fold, which reads
// them in order: one fold never stamps a key's writes out of order.
func TestLogPagesWithLateEntry(t *testing.T) {
	for _, sameTx := range []bool{false, true} {
		name := "other transaction"
		if sameTx {
			name = "same transaction"
		}
		t.Run(name, func(t *testing.T) {
			x := openTestDB(t)
			x.exec(t, `CREATE TABLE t(id INT PRIMARY KEY, v TEXT) ENGINE=InnoDB; INSERT INTO t VALUES (1, 'x')`)
			n := initNode(t, x, "t")
			tb := n.Tables()[0]
			write := lateEntry(t, x, sameTx)
			tx, err := x.db.Begin(t.Context(), true)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			page, err := tx.ReadLog(tb, 0, 1)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) != 1 || page[0].Row[0].Int != 2 {
				t.Fatalf("first page: %v, want the insert of key 2 only", page)
			}
			write()
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
			tx, err = x.db.Begin(t.Context(), true)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			es, err := tx.ReadLog(tb, 0, 10)
			if err != nil {
				t.Fatal(err)
			}
			var ops []rowsync.LogOp
			for _, e := range es {
				ops = append(ops, e.Op)
			}
			if len(ops) != 2 || ops[0] != rowsync.OpUpdate || ops[1] != rowsync.OpDelete {
				t.Errorf("log left for the next fold: ops %v, want the update then the delete of key 1", ops)
			}
		})
	}
}

// hookedPair makes two nodes with a table t holding row (1, 'x'), synced
// once; node a's database runs through a pageHook.
func hookedPair(t *testing.T) (a, b *testDB, hook *pageHook, na, nb *rowsync.Node) {
	t.Helper()
	a, b = openTestDB(t), openTestDB(t)
	for _, x := range []*testDB{a, b} {
		x.exec(t, `CREATE TABLE t(id INT PRIMARY KEY, v TEXT) ENGINE=InnoDB`)
	}
	a.exec(t, `INSERT INTO t VALUES (1, 'x')`)
	initNode(t, a, "t")
	nb = initNode(t, b, "t")
	hook = &pageHook{DB: a.db}
	na = rowsync.NewNode(hook)
	if err := na.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	syncNodes(t, na, nb)
	return a, b, hook, na, nb
}

// pageHook is a rowsync.Database over a MySQL database that runs
// application writes at chosen points: beforePage (once) in a write
// transaction before ReadLog reads a page after the first (between two
// pages of one fold), beforeRead (once) before a read transaction begins
// (in a sync: after Send's fold, before its snapshot).
type pageHook struct {
	*mysql.DB
	beforePage, beforeRead func()
}

func (h *pageHook) Begin(ctx context.Context, write bool) (rowsync.Tx, error) {
	if f := h.beforeRead; f != nil && !write {
		h.beforeRead = nil
		f()
	}
	tx, err := h.DB.Begin(ctx, write)
	if err != nil || !write {
		return tx, err
	}
	return &pageHookTx{Tx: tx, h: h}, nil
}

type pageHookTx struct {
	rowsync.Tx
	h *pageHook
}

func (x *pageHookTx) ReadLog(t *rowsync.Table, after int64, limit int) ([]rowsync.LogEntry, error) {
	if f := x.h.beforePage; f != nil && after > 0 {
		x.h.beforePage = nil
		f()
	}
	return x.Tx.ReadLog(t, after, limit)
}

// The interleaving behind TestConcurrentWritersAndSync's lost deletes,
// driven through a real fold: an application's update of row 1 commits
// while a fold is between two pages of the log, after the fold read past
// its entry, and a delete of row 1 commits next. Folding the delete first
// and the update at the next fold revived the row in a's bookkeeping (an
// update of a dead row is taken for an insert) while a's table had no
// row 1: a never sent the delete, and b kept row 1 for good.
func TestFoldPagesLateEntry(t *testing.T) {
	for _, sameTx := range []bool{false, true} {
		name := "other transaction"
		if sameTx {
			name = "same transaction"
		}
		t.Run(name, func(t *testing.T) {
			a, b, hook, na, nb := hookedPair(t)
			if got := dump(t, b, `SELECT CONCAT(id, v) FROM t ORDER BY id`); got != "1x" {
				t.Fatalf("b after the first sync: %q, want 1x", got)
			}
			hook.beforePage = lateEntry(t, a, sameTx)
			if err := na.Fold(t.Context()); err != nil {
				t.Fatal(err)
			}
			if hook.beforePage != nil {
				t.Fatal("the fold read one page of the log only")
			}
			converge(t, na, nb)
			convergedTo(t, "2other (row 1 deleted on a)", a, b)
			var deleted sql.NullInt64
			if err := a.app.QueryRow(`SELECT del FROM _rowsync_shadow_1 WHERE k0 = 1`).Scan(&deleted); err != nil || deleted.Int64 != 1 {
				t.Errorf("a's bookkeeping of row 1: del = %v (%v), want 1", deleted, err)
			}
		})
	}
}

// An UPDATE that matches a row and changes nothing fires MySQL's row
// trigger, which logs an update with an empty mask. Committed after
// Send's fold, it made Send leave the row out as changed since the fold
// (for the next session, with a newer seq), but the next fold stamps
// nothing for it: the row's last change was never sent.
func TestNoopUpdateDoesNotHoldBackSend(t *testing.T) {
	a, b, hook, na, nb := hookedPair(t)
	a.exec(t, `UPDATE t SET v = 'y' WHERE id = 1`)
	hook.beforeRead = func() { a.exec(t, `UPDATE t SET v = 'y' WHERE id = 1`) }
	syncNodes(t, na, nb)
	if hook.beforeRead != nil {
		t.Fatal("the sync began no read transaction")
	}
	converge(t, na, nb)
	convergedTo(t, "1y", a, b)
}

// convergedTo checks that each node's table t holds the rows want (as
// id || v, in key order; what follows a space in want explains it) and
// that no captured write is left in its log.
func convergedTo(tb testing.TB, want string, xs ...*testDB) {
	tb.Helper()
	rows, _, _ := strings.Cut(want, " ")
	for _, x := range xs {
		if got := dump(tb, x, `SELECT CONCAT(id, v) FROM t ORDER BY id`); got != rows {
			tb.Errorf("%s: rows %q, want %s", x.db.Address(), got, want)
		}
		if got := dump(tb, x, `SELECT COUNT(*) FROM _rowsync_log_1`); got != "0" {
			tb.Errorf("%s: %s captured writes left", x.db.Address(), got)
		}
	}
}
