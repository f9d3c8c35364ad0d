package e2e_test

import (
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"
)

// chinook returns the path of the Chinook sample database, shipped beside
// the module in ../shared/data/chinook. Without it the tests are skipped,
// except in CI, where they fail.
func chinook(tb testing.TB) string {
	tb.Helper()
	p := filepath.Join(moduleRoot, "..", "shared", "data", "chinook", "Chinook_Sqlite.sqlite")
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("the Chinook sample database is missing: %v", err)
		}
		tb.Skipf("the Chinook sample database is missing: %v", err)
	}
	return p
}

var chinookTables = []string{"Artist", "Album", "Employee", "Customer", "Genre", "Invoice", "MediaType", "Track", "InvoiceLine", "Playlist", "PlaylistTrack"}

func totalRows(tb testing.TB, path string) int64 {
	tb.Helper()
	db := open(tb, path, true)
	var n int64
	for _, t := range chinookTables {
		n += queryInt(tb, db, `SELECT count(*) FROM "`+t+`"`)
	}
	return n
}

type nodeStatus struct {
	Node struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"node"`
	Tables []struct {
		Name string `json:"name"`
	} `json:"tables"`
	Peers []struct {
		ID        string `json:"id"`
		Name      string `json:"name"`
		SyncCount int64  `json:"sync_count"`
	} `json:"peers"`
}

func status(tb testing.TB, db string) nodeStatus {
	tb.Helper()
	var st nodeStatus
	r := ok(tb, "status", "--db", db, "--json")
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		tb.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	return st
}

type conflict struct {
	Table  string `json:"table"`
	Key    []any  `json:"key"`
	Column string `json:"column"`
	Kind   string `json:"kind"`
	Winner struct {
		Value any    `json:"value"`
		Node  string `json:"node"`
	} `json:"winner"`
	Loser struct {
		Value any    `json:"value"`
		Node  string `json:"node"`
	} `json:"loser"`
}

func conflicts(tb testing.TB, db string) []conflict {
	tb.Helper()
	var cs []conflict
	r := ok(tb, "conflicts", "--db", db, "--json")
	if err := json.Unmarshal([]byte(r.stdout), &cs); err != nil {
		tb.Fatalf("conflicts --json: %v\n%s", err, r.stdout)
	}
	return cs
}

var syncLine = regexp.MustCompile(`sent (\d+) rows?, received (\d+) rows?`)

// syncCounts runs a sync and returns the rows it sent and received.
func syncCounts(tb testing.TB, args ...string) (sent, received int64) {
	tb.Helper()
	r := ok(tb, append([]string{"sync"}, args...)...)
	m := syncLine.FindStringSubmatch(r.stdout)
	if m == nil {
		tb.Fatalf("sync output: %s", r.stdout)
	}
	sent, _ = strconv.ParseInt(m[1], 10, 64)
	received, _ = strconv.ParseInt(m[2], 10, 64)
	return sent, received
}

func TestChinookOverHTTP(t *testing.T) {
	src := chinook(t)
	dir := t.TempDir()
	hub, node := filepath.Join(dir, "hub.db"), filepath.Join(dir, "node.db")
	copyFile(t, src, hub)
	ok(t, "init", "--db", hub, "--all", "--name", "hub")
	createFromSchema(t, hub, node)
	ok(t, "init", "--db", node, "--all", "--name", "node")
	if st := status(t, hub); len(st.Tables) != len(chinookTables) {
		t.Fatalf("hub tracks %d tables, want %d", len(st.Tables), len(chinookTables))
	}
	srv := serve(t, hub)

	total := totalRows(t, hub)
	if sent, received := syncCounts(t, "--db", node, srv.url); sent != 0 || received != total {
		t.Fatalf("first sync sent %d and received %d rows, want 0 and %d", sent, received, total)
	}
	ok(t, "verify", "--db", node, srv.url)
	if got := totalRows(t, node); got != total {
		t.Fatalf("node has %d rows, hub %d", got, total)
	}

	// Edits on both sides while apart.
	hubDB, nodeDB := open(t, hub, false), open(t, node, false)
	mustExec := func(db *sql.DB, q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	mustExec(nodeDB, `UPDATE Track SET Name = Name || ' (node edit)' WHERE AlbumId = 1`)
	mustExec(hubDB, `UPDATE Track SET Name = Name || ' (hub edit)' WHERE AlbumId = 2`)
	// Different columns of one row: both edits survive.
	mustExec(nodeDB, `UPDATE Track SET Name = 'Fast As a Shark (live)' WHERE TrackId = 3`)
	mustExec(hubDB, `UPDATE Track SET Composer = 'Accept' WHERE TrackId = 3`)
	// A new invoice with its lines on the node.
	mustExec(nodeDB, `INSERT INTO Invoice(InvoiceId, CustomerId, InvoiceDate, BillingAddress, BillingCity, BillingCountry, Total)
		VALUES (1000, 1, '2025-06-01 00:00:00', 'Av. Brigadeiro Faria Lima, 2170', 'São José dos Campos', 'Brazil', 1.98)`)
	mustExec(nodeDB, `INSERT INTO InvoiceLine(InvoiceLineId, InvoiceId, TrackId, UnitPrice, Quantity) VALUES (10000, 1000, 5, 0.99, 1), (10001, 1000, 6, 0.99, 1)`)
	// A delete on the hub.
	deleted := queryInt(t, hubDB, `SELECT min(TrackId) FROM PlaylistTrack WHERE PlaylistId = 1`)
	mustExec(hubDB, `DELETE FROM PlaylistTrack WHERE PlaylistId = 1 AND TrackId = ?`, deleted)
	// The same column of one row: the later write (the hub's) wins.
	mustExec(nodeDB, `UPDATE Artist SET Name = 'AC/DC (node)' WHERE ArtistId = 1`)
	nextMillisecond()
	mustExec(hubDB, `UPDATE Artist SET Name = 'AC/DC (hub)' WHERE ArtistId = 1`)

	if err := verifyFails(t, node, srv.url); err != "" {
		t.Fatal(err)
	}
	if sent, received := syncCounts(t, "--db", node, srv.url); sent == 0 || received == 0 {
		t.Errorf("sync of the edits sent %d and received %d rows", sent, received)
	}
	// Everything moved in one session: the next has nothing to do, and
	// nothing comes back as an echo.
	if sent, received := syncCounts(t, "--db", node, srv.url); sent != 0 || received != 0 {
		t.Errorf("second sync sent %d and received %d rows, want none", sent, received)
	}
	ok(t, "verify", "--db", node, srv.url)
	ok(t, "verify", "--db", hub, node)

	for _, c := range []struct{ name, path string }{{"hub", hub}, {"node", node}} {
		db := open(t, c.path, true)
		check := func(q, want string, args ...any) {
			t.Helper()
			if got := queryString(t, db, q, args...); got != want {
				t.Errorf("%s: %s: got %q, want %q", c.name, q, got, want)
			}
		}
		check(`SELECT Name FROM Artist WHERE ArtistId = 1`, "AC/DC (hub)")
		check(`SELECT Name || ' / ' || Composer FROM Track WHERE TrackId = 3`, "Fast As a Shark (live) / Accept")
		check(`SELECT count(*) FROM Track WHERE AlbumId = 1 AND Name LIKE '% (node edit)'`, strconv.FormatInt(queryInt(t, db, `SELECT count(*) FROM Track WHERE AlbumId = 1`), 10))
		check(`SELECT count(*) FROM Track WHERE AlbumId = 2 AND Name LIKE '% (hub edit)'`, "1")
		check(`SELECT count(*) || ' ' || sum(UnitPrice * Quantity) FROM InvoiceLine WHERE InvoiceId = 1000`, "2 1.98")
		check(`SELECT count(*) FROM PlaylistTrack WHERE PlaylistId = 1 AND TrackId = ?`, "0", deleted)
		checkIntegrity(t, c.path)
	}
	if got, want := totalRows(t, node), total+3-1; got != want {
		t.Errorf("node has %d rows, want %d", got, want)
	}

	// The conflict is in the node's log, with the winning and losing values.
	hubID, nodeID := status(t, hub).Node.ID, status(t, node).Node.ID
	cs := conflicts(t, node)
	i := slices.IndexFunc(cs, func(c conflict) bool { return c.Table == "Artist" && c.Column == "Name" })
	if i < 0 {
		t.Fatalf("no conflict on Artist.Name in the node's log: %+v", cs)
	}
	c := cs[i]
	if c.Kind != "update" || len(c.Key) != 1 || c.Key[0] != float64(1) || c.Winner.Value != "AC/DC (hub)" || c.Winner.Node != hubID ||
		c.Loser.Value != "AC/DC (node)" || c.Loser.Node != nodeID {
		t.Errorf("conflict %+v", c)
	}
	if len(cs) != 1 {
		t.Errorf("node has %d conflicts, want 1: %+v", len(cs), cs)
	}
	// The hub saw the node's value lose on arrival: it knows of it too.
	if cs := conflicts(t, hub); len(cs) != 1 || cs[0].Table != "Artist" || cs[0].Loser.Value != "AC/DC (node)" {
		t.Errorf("hub conflicts %+v", cs)
	}
	// Each knows the other as a peer.
	if st := status(t, node); len(st.Peers) != 1 || st.Peers[0].ID != hubID || st.Peers[0].Name != "hub" || st.Peers[0].SyncCount != 3 {
		t.Errorf("node peers %+v", st.Peers)
	}
}

// verifyFails runs verify and returns a complaint unless it exits 1.
func verifyFails(tb testing.TB, db, peer string) string {
	tb.Helper()
	if r := rs(tb, "verify", "--db", db, peer); r.code != 1 {
		return "verify of differing nodes: " + r.String()
	}
	return ""
}

// TestChinookChain syncs three nodes in a chain, A-B and B-C, through their
// files: A's changes reach C through B, and C's reach A.
func TestChinookChain(t *testing.T) {
	src := chinook(t)
	dir := t.TempDir()
	a, b, c := filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db"), filepath.Join(dir, "c.db")
	copyFile(t, src, a)
	ok(t, "init", "--db", a, "--all", "--name", "A")
	createFromSchema(t, a, b)
	createFromSchema(t, a, c)
	ok(t, "init", "--db", b, "--all", "--name", "B")
	ok(t, "init", "--db", c, "--all", "--name", "C")
	total := totalRows(t, a)

	ok(t, "sync", "--db", b, a)
	if _, received := syncCounts(t, "--db", c, b); received != total {
		t.Fatalf("C received %d rows from B, want %d", received, total)
	}
	ok(t, "verify", "--db", c, a)

	// C's writes reach A through B.
	execSQL(t, c, `INSERT INTO Artist VALUES (9000, 'Written on C')`,
		`INSERT INTO Album VALUES (9000, 'C Sides', 9000)`,
		`UPDATE Album SET Title = 'For Those About To Rock (C)' WHERE AlbumId = 1`)
	ok(t, "sync", "--db", c, b)
	ok(t, "sync", "--db", b, a)
	ok(t, "verify", "--db", a, c)
	if got := queryString(t, open(t, a, true), `SELECT Title FROM Album WHERE AlbumId = 9000`); got != "C Sides" {
		t.Errorf("A: album 9000 %q", got)
	}

	// A's delete and update reach C through B; B's own write reaches both.
	execSQL(t, a, `DELETE FROM InvoiceLine WHERE InvoiceId = 1`, `DELETE FROM Invoice WHERE InvoiceId = 1`,
		`UPDATE Customer SET Email = 'luis@example.com' WHERE CustomerId = 1`)
	execSQL(t, b, `INSERT INTO Genre VALUES (100, 'Written on B')`)
	ok(t, "sync", "--db", b, a)
	ok(t, "sync", "--db", c, b)
	for _, pair := range [][2]string{{a, b}, {b, c}, {a, c}} {
		ok(t, "verify", "--db", pair[0], pair[1])
	}
	cdb := open(t, c, true)
	if n := queryInt(t, cdb, `SELECT count(*) FROM Invoice WHERE InvoiceId = 1`); n != 0 {
		t.Errorf("C still has invoice 1")
	}
	if got := queryString(t, cdb, `SELECT Email FROM Customer WHERE CustomerId = 1`); got != "luis@example.com" {
		t.Errorf("C: customer 1 email %q", got)
	}
	if got := queryString(t, open(t, a, true), `SELECT Name FROM Genre WHERE GenreId = 100`); got != "Written on B" {
		t.Errorf("A: genre 100 %q", got)
	}
	for _, p := range []string{a, b, c} {
		checkIntegrity(t, p)
	}
	// Quiet: another round moves nothing.
	for _, pair := range [][2]string{{b, a}, {c, b}} {
		if sent, received := syncCounts(t, "--db", pair[0], pair[1]); sent != 0 || received != 0 {
			t.Errorf("sync %s %s moved %d and %d rows after convergence", filepath.Base(pair[0]), filepath.Base(pair[1]), sent, received)
		}
	}
}
