package e2e_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A new shop is cloned from the office over HTTP with the binary, then
// the link is gone and the two exchange changes on a "USB stick" only:
// export --for, import, both ways, with a conflict. They end identical
// (verify on the two files), the loser is in a conflict log, a second
// import changes nothing, and a cut bundle applies nothing half-way and
// says so.
func TestCloneThenUSBStick(t *testing.T) {
	dir := t.TempDir()
	office, shop := filepath.Join(dir, "office.db"), filepath.Join(dir, "shop.db")
	stick := filepath.Join(dir, "stick")
	if err := os.Mkdir(stick, 0o755); err != nil {
		t.Fatal(err)
	}
	execSQL(t, office,
		`CREATE TABLE artist(id INTEGER PRIMARY KEY, name TEXT NOT NULL)`,
		`CREATE TABLE album(id INTEGER PRIMARY KEY, artist INTEGER NOT NULL REFERENCES artist(id) ON DELETE CASCADE, title TEXT, price NUMERIC(10,2))`,
		`CREATE TABLE tag(album INTEGER REFERENCES album(id), tag TEXT, note BLOB, PRIMARY KEY(album, tag))`,
		`INSERT INTO artist VALUES (1, 'AC/DC'), (2, 'Accept')`,
		`INSERT INTO album VALUES (10, 1, 'Let There Be Rock', 9.99), (11, 2, 'Balls to the Wall', 8.99)`,
		`INSERT INTO tag VALUES (10, 'rock', x'00ff'), (11, 'metal', NULL)`)
	ok(t, "init", "--db", office, "--all", "--name", "office")
	srv := serve(t, office)

	r := ok(t, "clone", srv.url, "--db", shop, "--name", "shop")
	if !strings.Contains(r.stdout, "cloned node shop") || !strings.Contains(r.stdout, "received 6 rows") {
		t.Errorf("clone printed:\n%s", r.stdout)
	}
	ok(t, "verify", "--db", shop, srv.url)
	db := open(t, shop, true)
	if got := queryString(t, db, `SELECT "table" || '.' || "to" || ' ' || on_delete FROM pragma_foreign_key_list('album')`); got != "artist.id CASCADE" {
		t.Errorf("the clone's album foreign key: %q", got)
	}
	db.Close()
	if r := rs(t, "clone", srv.url, "--db", shop); r.code == 0 || !strings.Contains(r.stderr, "already a rowsync node") {
		t.Errorf("a second clone into the same file: %s", r)
	}
	srv.stop()

	// Offline from here: both write, one column in conflict.
	execSQL(t, shop, `UPDATE album SET price = 7.50 WHERE id = 10`, `INSERT INTO album VALUES (12, 2, 'Restless and Wild', 9.49)`,
		`INSERT INTO tag VALUES (12, 'metal', x'')`)
	nextMillisecond()
	execSQL(t, office, `UPDATE album SET price = 8.00 WHERE id = 10`, `UPDATE artist SET name = 'AC-DC' WHERE id = 1`)

	toOffice, toShop := filepath.Join(stick, "shop.bundle"), filepath.Join(stick, "office.bundle")
	r = ok(t, "export", "--db", shop, "-o", toOffice, "--for", "office")
	if !strings.Contains(r.stdout, "exported 3 rows") {
		t.Errorf("export printed: %s", r.stdout)
	}
	r = ok(t, "import", "--db", office, toOffice)
	if !strings.Contains(r.stdout, "received 3 rows") {
		t.Errorf("import printed: %s", r.stdout)
	}
	ok(t, "export", "--db", office, "-o", toShop, "--for", "shop")
	r = ok(t, "import", "--db", shop, toShop)
	if !strings.Contains(r.stdout, "conflict") {
		t.Errorf("the shop's import reports no conflict: %s", r.stdout)
	}
	ok(t, "verify", "--db", shop, office)
	db = open(t, office, true)
	if got := queryString(t, db, `SELECT price FROM album WHERE id = 10`); got != "8" {
		t.Errorf("album 10's price = %q, want the later 8.00", got)
	}
	db.Close()
	if r := ok(t, "conflicts", "--db", shop); !strings.Contains(r.stdout, "7.5") {
		t.Errorf("the losing 7.50 is not in the shop's conflict log:\n%s", r.stdout)
	}
	r = ok(t, "import", "--db", shop, toShop)
	if !strings.Contains(r.stdout, "nothing changed") {
		t.Errorf("a second import: %s", r.stdout)
	}

	// A bundle cut in the middle: refused with the count of rows applied,
	// and the node still verifies against what it had.
	execSQL(t, office, `INSERT INTO artist VALUES (3, 'Aerosmith')`)
	full := filepath.Join(stick, "more.bundle")
	ok(t, "export", "--db", office, "-o", full, "--for", "shop")
	b, err := os.ReadFile(full)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(stick, "cut.bundle")
	if err := os.WriteFile(cut, b[:len(b)-8], 0o600); err != nil {
		t.Fatal(err)
	}
	r = rs(t, "import", "--db", shop, cut)
	if r.code != 1 || !strings.Contains(r.stderr, "truncated or corrupt") {
		t.Errorf("a cut bundle: %s", r)
	}
	ok(t, "import", "--db", shop, full)
	ok(t, "verify", "--db", shop, office)
}

// export -o - and import - make a pipe: the bundle never touches a file.
func TestBundleThroughAPipe(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db")
	for _, p := range []string{a, b} {
		execSQL(t, p, `CREATE TABLE note(id INTEGER PRIMARY KEY, body TEXT)`)
	}
	execSQL(t, a, `INSERT INTO note VALUES (1, 'one'), (2, 'two')`)
	ok(t, "init", "--db", a, "--all", "--name", "a")
	ok(t, "init", "--db", b, "--all", "--name", "b")
	bundle := ok(t, "export", "--db", a, "-o", "-").stdout
	cmd := exec.Command(bin, "import", "--db", b, "-")
	cmd.Env = env()
	cmd.Stdin = strings.NewReader(bundle)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "received 2 rows") {
		t.Fatalf("import -: %v\n%s", err, out)
	}
	ok(t, "verify", "--db", b, a)
}
