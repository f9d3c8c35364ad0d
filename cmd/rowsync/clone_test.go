package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rowsync/rowsync"
	rshttp "github.com/rowsync/rowsync/http"
	"github.com/rowsync/rowsync/internal/testdb"
	"github.com/rowsync/rowsync/sqlite"
)

// hubNode creates an initialized node "hub" with schema and some rows.
func hubNode(tb testing.TB, dir string) string {
	tb.Helper()
	hub := newDB(tb, dir, "hub.db", schema, `INSERT INTO artist VALUES (1, 'AC/DC', 'AU'), (2, 'Accept', NULL);
		INSERT INTO album VALUES (1, 1, 'For Those About To Rock', x'00ff'), (2, 1, 'Balls to the Wall', NULL), (1, 2, '', x'');`)
	ok(tb, "init", "--db", hub, "--all", "--name", "hub")
	return hub
}

// serveFile serves the node in path over HTTP, in process, until the test
// ends, through wrap if it is not nil.
func serveFile(tb testing.TB, path string, wrap func(http.Handler) http.Handler) string {
	tb.Helper()
	db, err := sqlite.Open(path, false)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	n := rowsync.NewNode(db)
	if err := n.Open(context.Background()); err != nil {
		tb.Fatal(err)
	}
	h := rshttp.NewServer(n, "").Handler()
	if wrap != nil {
		h = wrap(h)
	}
	s := httptest.NewServer(h)
	tb.Cleanup(s.Close)
	return s.URL
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// TestCloneFromDatabase: clone from another database's address makes a new
// SQLite file with the peer's tables (primary keys, foreign key), all its
// rows and a node id of its own; verify says identical; writes on the
// clone then sync back, and the clone syncs like any node.
func TestCloneFromDatabase(t *testing.T) {
	dir := t.TempDir()
	hub := hubNode(t, dir)
	shop := filepath.Join(dir, "shop.db")
	r := ok(t, "clone", hub, "--db", shop, "--name", "shop")
	for _, s := range []string{"cloned node shop", "from hub", "created 2 tables: artist, album", "received 5 rows", "next: rowsync sync --db " + shop + " " + hub} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("clone output does not say %q:\n%s", s, r.stdout)
		}
	}
	if r := ok(t, "verify", "--db", shop, hub); !strings.Contains(r.stdout, "identical: 2 tables") {
		t.Errorf("verify: %s", r.stdout)
	}
	st, hs := statusOf(t, shop), statusOf(t, hub)
	if st.Node.Name != "shop" || st.Node.ID == hs.Node.ID || len(st.Peers) != 1 || st.Peers[0].Name != "hub" {
		t.Errorf("clone's status: %+v (hub %s)", st, hs.Node.ID)
	}
	if got := query(t, shop, `SELECT "table", "from", "to" FROM pragma_foreign_key_list('album')`); !slices.Equal(got, []string{"artist|artist|id"}) {
		t.Errorf("foreign keys of the clone's album: %q", got)
	}
	if got := query(t, shop, `SELECT * FROM album ORDER BY artist, no`); !slices.Equal(got, query(t, hub, `SELECT * FROM album ORDER BY artist, no`)) {
		t.Errorf("album on the clone: %q", got)
	}
	exec(t, shop, `INSERT INTO artist VALUES (3, 'Aerosmith', 'US')`)
	ok(t, "sync", "--db", shop, hub)
	if got := query(t, hub, `SELECT name FROM artist WHERE id = 3`); !slices.Equal(got, []string{"Aerosmith"}) {
		t.Errorf("hub after the clone's write synced: %q", got)
	}
	ok(t, "verify", "--db", hub, shop)

	// Into the clone again: it is a node now.
	before := dump(t, shop)
	fails(t, 1, []string{shop, "already a rowsync node", "rowsync sync"}, "clone", hub, "--db", shop)
	if dump(t, shop) != before {
		t.Error("the refused clone changed the node")
	}
	fails(t, 2, []string{"--db"}, "clone", hub)
	fails(t, 2, []string{"accepts 1 arg"}, "clone", "--db", shop)
}

// TestCloneOverHTTP: the same from a served hub: the URL is recorded as the
// peer's address, and a write on the clone reaches the hub through the
// server.
func TestCloneOverHTTP(t *testing.T) {
	dir := t.TempDir()
	hub := hubNode(t, dir)
	url := serveFile(t, hub, nil)
	shop := filepath.Join(dir, "shop.db")
	r := ok(t, "clone", url, "--db", "sqlite:"+shop)
	if !strings.Contains(r.stdout, "received 5 rows") || !strings.Contains(r.stdout, "next: rowsync sync --db sqlite:"+shop+" "+url) {
		t.Errorf("clone output:\n%s", r.stdout)
	}
	ok(t, "verify", "--db", shop, url)
	st := statusOf(t, shop)
	if !strings.HasPrefix(st.Node.Name, "node-") || len(st.Peers) != 1 || st.Peers[0].URL != url {
		t.Errorf("clone's status: %+v", st)
	}
	exec(t, shop, `UPDATE artist SET country = 'DE' WHERE id = 2`)
	ok(t, "sync", "--db", shop, url)
	if got := query(t, hub, `SELECT country FROM artist WHERE id = 2`); !slices.Equal(got, []string{"DE"}) {
		t.Errorf("hub after the clone's write synced: %q", got)
	}
}

// TestCloneChinook: the Chinook sample (mixed-case names, eleven foreign
// keys, composite keys) cloned from a database address: same tables, same
// foreign keys, same declared types, identical rows.
func TestCloneChinook(t *testing.T) {
	src := filepath.Join("..", "..", "..", "shared", "data", "chinook", "Chinook_Sqlite.sqlite")
	b, err := os.ReadFile(src)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the Chinook sample is missing: %v", err)
		}
		t.Skipf("the Chinook sample is missing: %v", err)
	}
	dir := t.TempDir()
	hub := filepath.Join(dir, "chinook.db")
	if err := os.WriteFile(hub, b, 0o644); err != nil {
		t.Fatal(err)
	}
	ok(t, "init", "--db", hub, "--all", "--name", "hub")
	shop := filepath.Join(dir, "shop.db")
	r := ok(t, "clone", hub, "--db", shop)
	if !strings.Contains(r.stdout, "created 11 tables") || !strings.Contains(r.stdout, "received 15607 rows") {
		t.Errorf("clone output:\n%s", r.stdout)
	}
	ok(t, "verify", "--db", shop, hub)
	fk := `SELECT m.name, f."from", f."table", f."to", f.on_delete FROM sqlite_schema m, pragma_foreign_key_list(m.name) f
		WHERE m.type = 'table' AND m.name NOT LIKE '\_rowsync%' ESCAPE '\' ORDER BY 1, 2`
	want := query(t, hub, fk)
	if got := query(t, shop, fk); len(want) != 11 || !slices.Equal(got, want) {
		t.Errorf("foreign keys\n got %q\nwant %q", got, want)
	}
	cols := `SELECT m.name, c.name, c.type, c.pk FROM sqlite_schema m, pragma_table_info(m.name) c
		WHERE m.type = 'table' AND m.name NOT LIKE '\_rowsync%' ESCAPE '\' ORDER BY 1, c.cid`
	if got, want := query(t, shop, cols), query(t, hub, cols); !slices.Equal(got, want) {
		t.Errorf("columns\n got %q\nwant %q", got, want)
	}
	if got := query(t, shop, `PRAGMA foreign_key_check`); len(got) != 0 {
		t.Errorf("foreign key violations in the clone: %q", got)
	}
}

// TestCloneIntoExisting: into a database that has the tables already
// (SQLite and MariaDB), clone creates nothing, tracks the peer's tables and
// pulls; a table of the peer's that is missing there is an error naming
// it, and nothing is changed.
func TestCloneIntoExisting(t *testing.T) {
	dir := t.TempDir()
	hub := hubNode(t, dir)
	t.Run("sqlite", func(t *testing.T) {
		shop := newDB(t, dir, "existing.db", schema, `CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)`)
		r := ok(t, "clone", hub, "--db", shop)
		if !strings.Contains(r.stdout, "tracking 2 tables that were there: artist, album") || strings.Contains(r.stdout, "created") {
			t.Errorf("clone output:\n%s", r.stdout)
		}
		ok(t, "verify", "--db", shop, hub)
		if st := statusOf(t, shop); len(st.Tables) != 2 {
			t.Errorf("tracks %v, want the hub's two tables only", st.Tables)
		}
	})
	t.Run("mariadb", func(t *testing.T) {
		addr := testdb.New(t, "mysql")
		app := testdb.App(t, addr)
		if _, err := app.Exec(`CREATE TABLE artist(id INTEGER PRIMARY KEY, name VARCHAR(100) NOT NULL, country VARCHAR(10));
			CREATE TABLE album(artist INTEGER NOT NULL REFERENCES artist(id), no INTEGER NOT NULL, title TEXT, cover LONGBLOB, PRIMARY KEY(artist, no))`); err != nil {
			t.Fatal(err)
		}
		r := ok(t, "clone", hub, "--db", addr, "--name", "maria")
		if !strings.Contains(r.stdout, "received 5 rows") {
			t.Errorf("clone output:\n%s", r.stdout)
		}
		ok(t, "verify", "--db", addr, hub)
	})
	t.Run("missing table", func(t *testing.T) {
		shop := newDB(t, dir, "partial.db", `CREATE TABLE artist(id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT)`)
		before := dump(t, shop)
		fails(t, 1, []string{`table "album"`, "does not exist"}, "clone", hub, "--db", shop)
		if dump(t, shop) != before {
			t.Error("the failed clone changed the database")
		}
	})
	t.Run("schema mismatch", func(t *testing.T) {
		shop := newDB(t, dir, "mismatch.db", strings.Replace(schema, "title TEXT", "title REAL", 1))
		fails(t, 1, []string{"schema mismatch", `"title"`, "rowsync sync"}, "clone", hub, "--db", shop)
		if got := query(t, shop, `SELECT count(*) FROM artist`); !slices.Equal(got, []string{"0"}) {
			t.Errorf("rows pulled despite the mismatch: %q", got)
		}
	})
}

// TestCloneErrors: what fails leaves no half clone behind: a new SQLite
// file is removed again, whether the failure comes before or after its
// tables were created.
func TestCloneErrors(t *testing.T) {
	dir := t.TempDir()
	hub := hubNode(t, dir)
	target := filepath.Join(dir, "new.db")
	noFile := func() {
		t.Helper()
		for _, p := range []string{target, target + "-wal", target + "-shm"} {
			if exists(p) {
				t.Errorf("the failed clone left %s behind", p)
			}
		}
	}

	plain := newDB(t, dir, "plain.db", schema)
	fails(t, 1, []string{plain, "not initialized"}, "clone", plain, "--db", target)
	noFile()

	fails(t, 1, []string{"127.0.0.1:1", "removed the new file " + target}, "clone", "http://127.0.0.1:1", "--db", target)
	noFile()

	old := serveFile(t, hub, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v1/schema" {
				r.URL.Path = "/v1/unknown" // as a server from before the endpoint answers
			}
			h.ServeHTTP(w, r)
		})
	})
	fails(t, 1, []string{"too old to clone from", "upgrade"}, "clone", old, "--db", target)
	noFile()

	// The schema is served, the session then fails: the tables were
	// created, and are removed with the file.
	broken := serveFile(t, hub, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v1/pull" {
				http.Error(w, "link down", http.StatusBadGateway)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	fails(t, 1, []string{"link down", "removed the new file " + target}, "clone", broken, "--db", target)
	noFile()

	// An existing empty file is emptied again.
	if err := os.WriteFile(target, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	fails(t, 1, []string{"link down", "empty again"}, "clone", broken, "--db", target)
	if fi, err := os.Stat(target); err != nil || fi.Size() != 0 {
		t.Errorf("the empty file after a failed clone: %v %v", fi, err)
	}
	os.Remove(target)

	// A SQLite file without tables (but not empty): the tables clone made
	// are dropped.
	bare := newDB(t, dir, "bare.db", `PRAGMA user_version = 7`)
	fails(t, 1, []string{"link down", "dropped the tables"}, "clone", broken, "--db", bare)
	if got := query(t, bare, `SELECT name FROM sqlite_schema`); len(got) != 0 {
		t.Errorf("left in the file: %q", got)
	}

	fails(t, 1, []string{"server URL"}, "clone", hub, "--db", "http://127.0.0.1:1")
}

// TestCloneSaysWhatItLeftOut: a peer that tracks a child table but not its
// parent: the clone creates the child without that foreign key (its parent
// is not there) and says so, and the rows arrive.
func TestCloneSaysWhatItLeftOut(t *testing.T) {
	dir := t.TempDir()
	hub := newDB(t, dir, "hub.db", schema, `INSERT INTO artist VALUES (1, 'AC/DC', 'AU'); INSERT INTO album VALUES (1, 1, 'High Voltage', NULL);`)
	ok(t, "init", "--db", hub, "--tables", "album", "--name", "hub")
	clone := filepath.Join(dir, "clone.db")
	out := ok(t, "clone", hub, "--db", clone).stdout
	if !strings.Contains(out, "created 1 table: album") || !strings.Contains(out, "not created: the foreign key album(artist) references artist, which the peer does not track") {
		t.Errorf("clone printed:\n%s", out)
	}
	ok(t, "verify", "--db", clone, hub)
}
