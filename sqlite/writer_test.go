package sqlite

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// Write transactions share one connection and its statements: a statement
// is prepared once for any number of transactions, the cache stays
// bounded, and writers of one process queue for the connection instead of
// failing.
func TestWriterStatements(t *testing.T) {
	d := installed(t, `CREATE TABLE item(id INTEGER PRIMARY KEY, v TEXT)`, "item")
	ctx := t.Context()
	var first *writer
	for i := range 3 {
		tx, err := d.Begin(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.(*Tx).exec(`INSERT INTO item(id, v) VALUES (?, ?)`, i, "x"); err != nil {
			t.Fatal(err)
		}
		w := tx.(*Tx).w
		if first == nil {
			first = w
		} else if w != first {
			t.Fatalf("transaction %d got another writer connection", i)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(first.stmts); n != 1 {
		t.Fatalf("%d statements cached after three transactions of one statement, want 1", n)
	}

	tx, err := d.Begin(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	for i := range maxWriterStmts + 10 {
		if _, err := tx.(*Tx).exec(fmt.Sprintf(`UPDATE item SET v = 'y' WHERE id = %d`, i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(tx.(*Tx).w.stmts); n != maxWriterStmts {
		t.Fatalf("%d statements cached, want the bound %d", n, maxWriterStmts)
	}
	// A second writer waits for the first to end.
	got := make(chan error, 1)
	go func() {
		tx2, err := d.Begin(ctx, true)
		if err == nil {
			_, err = tx2.(*Tx).exec(`INSERT INTO item(id, v) VALUES (100, 'second')`)
			if cerr := tx2.Commit(); err == nil {
				err = cerr
			}
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("second writer ran while the first held the connection: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	var v string
	if err := d.db.QueryRow(`SELECT v FROM item WHERE id = 100`).Scan(&v); err != nil || v != "second" {
		t.Fatalf("second writer's row: %q, %v", v, err)
	}

	// A writer that gives up waiting gets its context's error.
	tx, err = d.Begin(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := d.Begin(short, true); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Begin while the writer is held: %v, want the context's deadline", err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	// Read transactions do not wait for the writer.
	tx, err = d.Begin(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		r, err := d.Begin(ctx, false)
		if err != nil {
			t.Error(err)
			return
		}
		r.Rollback()
	})
	wg.Wait()
	tx.Rollback()
}

// Closing the DB while a write transaction runs lets it end, then closes
// the writer connection; a later Begin fails.
func TestWriterCloseDuringTransaction(t *testing.T) {
	d := installed(t, `CREATE TABLE item(id INTEGER PRIMARY KEY, v TEXT)`, "item")
	tx, err := d.Begin(t.Context(), true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.(*Tx).exec(`INSERT INTO item(id, v) VALUES (1, 'x')`); err != nil {
		t.Fatal(err)
	}
	d.Close()
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if d.w != nil {
		t.Fatal("the writer connection outlived Close")
	}
	if _, err := d.Begin(t.Context(), true); err == nil {
		t.Fatal("Begin after Close succeeded")
	}
}
