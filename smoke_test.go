package rowsync_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/rowsync/rowsync"
	"github.com/rowsync/rowsync/sqlite"
)

func TestSmoke(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	open := func(name string) (*sqlite.DB, *rowsync.Node) {
		db, err := sqlite.Open(filepath.Join(dir, name), true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.SQL().Exec(`CREATE TABLE p(id INTEGER PRIMARY KEY, name TEXT, dt DATETIME, b BLOB);
			CREATE TABLE c(id INTEGER PRIMARY KEY, pid INTEGER REFERENCES p(id), v REAL)`); err != nil {
			t.Fatal(err)
		}
		n, err := rowsync.Init(ctx, db, rowsync.InitOptions{All: true, Name: name})
		if err != nil {
			t.Fatal(err)
		}
		return db, n
	}
	a, na := open("a.db")
	b, nb := open("b.db")
	a.SQL().Exec(`INSERT INTO p VALUES (1, 'one', '2009-01-01 00:00:00', x'00ff'), (2, 'two', NULL, x'')`)
	a.SQL().Exec(`INSERT INTO c VALUES (10, 1, 0.1)`)
	b.SQL().Exec(`INSERT INTO p VALUES (3, 'three', NULL, NULL)`)
	res, err := na.Sync(ctx, nb, rowsync.SyncOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pushed %+v pulled %+v", res.Pushed, res.Pulled)
	diffs, err := na.Verify(ctx, nb)
	if err != nil || len(diffs) != 0 {
		t.Fatalf("verify: %v %v", diffs, err)
	}
	// concurrent edits
	a.SQL().Exec(`UPDATE p SET name = 'uno' WHERE id = 1`)
	b.SQL().Exec(`UPDATE p SET name = 'eins' WHERE id = 1`)
	b.SQL().Exec(`DELETE FROM p WHERE id = 2`)
	if _, err := na.Sync(ctx, nb, rowsync.SyncOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := na.Sync(ctx, nb, rowsync.SyncOptions{}); err != nil {
		t.Fatal(err)
	}
	diffs, err = na.Verify(ctx, nb)
	if err != nil || len(diffs) != 0 {
		t.Fatalf("verify: %v %v", diffs, err)
	}
	cs, _ := na.Conflicts(ctx)
	for _, c := range cs {
		t.Logf("a conflict: %s winner %s loser %s", c.String(), c.Winner, c.Loser)
	}
	var name string
	a.SQL().QueryRow(`SELECT name FROM p WHERE id=1`).Scan(&name)
	t.Log("name:", name)
}
