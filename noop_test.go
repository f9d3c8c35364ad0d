package rowsync_test

import (
	"context"
	"slices"
	"testing"

	"github.com/rowsync/rowsync"
)

// beforeRead runs a hook before the next read transaction of a database.
type beforeRead struct {
	rowsync.Database
	hook func()
}

func (b *beforeRead) Begin(ctx context.Context, write bool) (rowsync.Tx, error) {
	if !write && b.hook != nil {
		h := b.hook
		b.hook = nil
		h()
	}
	return b.Database.Begin(ctx, write)
}

// heldBackCheck syncs a (through a beforeRead hook) with b once, makes the
// application write change on a, syncs again with the application write
// late run between Send's fold and its snapshot, and checks that b ends
// with a's rows.
func heldBackCheck(t *testing.T, a, b *site, change, late string) {
	t.Helper()
	hook := &beforeRead{Database: a.db}
	na := rowsync.NewNode(hook)
	if err := na.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := na.Sync(t.Context(), b.node, rowsync.SyncOptions{}); err != nil {
		t.Fatal(err)
	}
	a.exec(t, change)
	hook.hook = func() { a.exec(t, late) }
	for range 3 {
		if _, err := na.Sync(t.Context(), b.node, rowsync.SyncOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if hook.hook != nil {
		t.Fatal("the sync began no read transaction")
	}
	if got, want := b.rows(t, "t"), a.rows(t, "t"); !slices.Equal(got, want) {
		t.Fatalf("b has %q, a has %q", got, want)
	}
}

// An UPDATE that changes no value still fires the capture trigger. When
// it lands between Send's fold and Send's snapshot, Send saw the row's
// key in the log and left the row for the next session, as written since
// the fold; but the next fold stamps nothing for such an entry, so the
// row's real change, folded just before, was never sent.
func TestNoopUpdateDoesNotHoldBackSend(t *testing.T) {
	const schema = `CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);`
	a, b := newSite(t, "a", schema), newSite(t, "b", schema)
	a.exec(t, `INSERT INTO t VALUES (1, 'x')`)
	heldBackCheck(t, a, b, `UPDATE t SET v = 'y' WHERE id = 1`, `UPDATE t SET v = 'y' WHERE id = 1`)
}

// A maybe-delete that fold discards does the same: INSERT OR IGNORE, or an
// UPSERT on the key, of a row whose UNIQUE value another row holds logs
// that other row as a maybe-delete, and the row stays. Landing between
// Send's fold and its snapshot, it held the row back as written since the
// fold, and the next fold stamped nothing for it: the row's change, folded
// just before, was never sent.
func TestMaybeDeleteDoesNotHoldBackSend(t *testing.T) {
	for _, stmt := range []string{
		`INSERT OR IGNORE INTO t VALUES (3, 'x', 0)`,
		`INSERT INTO t VALUES (2, 'x', 0) ON CONFLICT(id) DO UPDATE SET v = v`,
	} {
		t.Run(stmt, func(t *testing.T) {
			const schema = `CREATE TABLE t(id INTEGER PRIMARY KEY, note TEXT UNIQUE, v INTEGER);`
			a, b := newSite(t, "a", schema), newSite(t, "b", schema)
			a.exec(t, `INSERT INTO t VALUES (1, 'x', 1), (2, 'y', 1)`)
			heldBackCheck(t, a, b, `UPDATE t SET v = 2 WHERE id = 1`, stmt)
		})
	}
}
