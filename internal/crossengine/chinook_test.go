package crossengine

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rowsync/rowsync"
	rshttp "github.com/rowsync/rowsync/http"
	"github.com/rowsync/rowsync/internal/testdb"
)

// chinookScript returns a Chinook script from ../shared/data/chinook (read
// at test time, never copied into the repository) as statements, without
// its DROP/CREATE DATABASE, USE and \c lines (the test runs it in a
// database or schema of its own). Without the file the test is skipped,
// except in CI, where it fails.
func chinookScript(tb testing.TB, name string, withData bool) []string {
	tb.Helper()
	p := filepath.Join("..", "..", "..", "shared", "data", "chinook", name)
	b, err := os.ReadFile(p)
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("the Chinook sample is missing: %v", err)
		}
		tb.Skipf("the Chinook sample is missing: %v", err)
	}
	var out []string
	for _, st := range regexp.MustCompile(`;\s*\n`).Split(string(b), -1) {
		var lines []string
		for _, l := range strings.Split(st, "\n") {
			t := strings.TrimSpace(l)
			if strings.HasPrefix(t, "--") || strings.HasPrefix(t, `\c`) {
				continue
			}
			lines = append(lines, l)
		}
		st = strings.TrimSpace(strings.Join(lines, "\n"))
		st = strings.TrimSpace(regexp.MustCompile(`(?s)/\*.*?\*/`).ReplaceAllString(st, ""))
		up := strings.ToUpper(st)
		switch {
		case st == "",
			strings.HasPrefix(up, "DROP DATABASE"), strings.HasPrefix(up, "CREATE DATABASE"), strings.HasPrefix(up, "USE "):
			continue
		case strings.HasPrefix(up, "INSERT") && !withData:
			continue
		}
		out = append(out, st)
	}
	return out
}

func (x *node) run(tb testing.TB, stmts []string) {
	tb.Helper()
	tx, err := x.app.Begin()
	if err != nil {
		tb.Fatal(err)
	}
	defer tx.Rollback()
	for _, st := range stmts {
		if _, err := tx.Exec(st); err != nil {
			tb.Fatalf("%s: %.200s: %v", x.engine, st, err)
		}
	}
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
}

// chinookNode creates a node of engine holding stmts, tracking every table.
func chinookNode(tb testing.TB, engine, name string, stmts []string) *node {
	tb.Helper()
	x := newNode(tb, engine, "")
	x.run(tb, stmts)
	n, err := rowsync.Init(tb.Context(), x.db, rowsync.InitOptions{All: true, Name: name})
	if err != nil {
		tb.Fatalf("%s: init: %v", engine, err)
	}
	x.n = n
	return x
}

// serve serves a node over HTTP on loopback until the test ends.
func serve(tb testing.TB, x *node) *rshttp.Client {
	tb.Helper()
	srv := rshttp.NewServer(x.n, "127.0.0.1:0")
	if err := srv.Open(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { srv.Close() })
	return rshttp.NewClient(srv.URL())
}

func digests(tb testing.TB, x *node) map[string]rowsync.TableDigest {
	tb.Helper()
	ds, err := x.n.Digest(tb.Context())
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]rowsync.TableDigest{}
	for _, d := range ds {
		out[d.Table] = d
	}
	return out
}

// identical fails tb unless the nodes hold the same rows in every table
// (the digest of rowsync verify, over canonical values) and returns the
// number of rows.
func identical(tb testing.TB, nodes ...*node) int64 {
	tb.Helper()
	want := digests(tb, nodes[0])
	var total int64
	for _, d := range want {
		total += d.Rows
	}
	for _, x := range nodes[1:] {
		got := digests(tb, x)
		for name, d := range want {
			if got[name] != d {
				tb.Errorf("table %s: %s has %d rows (%.12s), %s has %d rows (%.12s)", name, nodes[0].engine, d.Rows, d.Hash, x.engine, got[name].Rows, got[name].Hash)
			}
		}
	}
	return total
}

// TestChinookSameEngine loads Chinook from its own script on PostgreSQL and
// on MariaDB, and syncs it over HTTP to an empty node of the same engine
// and schema; then changes on the node travel back.
func TestChinookSameEngine(t *testing.T) {
	scripts := map[string]string{"postgres": "Chinook_PostgreSql.sql", "mysql": "Chinook_MySql.sql"}
	updates := map[string]string{
		"postgres": `UPDATE artist SET name = 'changed on the shop' WHERE artist_id = 1`,
		"mysql":    "UPDATE `Artist` SET `Name` = 'changed on the shop' WHERE `ArtistId` = 1",
	}
	for _, engine := range []string{"postgres", "mysql"} {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			hub := chinookNode(t, engine, "hub", chinookScript(t, scripts[engine], true))
			shop := chinookNode(t, engine, "shop", chinookScript(t, scripts[engine], false))
			client := serve(t, hub)
			res, err := shop.n.Sync(t.Context(), client, rowsync.SyncOptions{})
			if err != nil {
				t.Fatal(err)
			}
			total := identical(t, hub, shop)
			if total < 15000 || res.Pulled.Changed != total {
				t.Errorf("pulled %d rows of %d; Chinook has about 15.6k", res.Pulled.Changed, total)
			}
			if _, err := shop.app.Exec(updates[engine]); err != nil {
				t.Fatal(err)
			}
			if res, err = shop.n.Sync(t.Context(), client, rowsync.SyncOptions{}); err != nil {
				t.Fatal(err)
			}
			if res.Pushed.Changed != 1 {
				t.Errorf("pushed %d rows after one update, want 1", res.Pushed.Changed)
			}
			identical(t, hub, shop)
		})
	}
}

// chinookLayoutFor turns the MySQL script's DDL (the SQLite layout:
// mixed-case names, NVARCHAR, DATETIME, NUMERIC(10,2)) into PostgreSQL DDL
// with the same quoted names and the same type classes: how a user
// prepares one logical schema on several engines.
func chinookLayoutForPostgres(stmts []string) []string {
	r := strings.NewReplacer("`", `"`, "NVARCHAR", "VARCHAR", "DATETIME", "TIMESTAMP")
	out := make([]string, len(stmts))
	for i, s := range stmts {
		out[i] = r.Replace(s)
	}
	return out
}

// TestChinookAcrossEngines syncs the SQLite Chinook file to a PostgreSQL
// hub over HTTP, and the hub to a MariaDB node over HTTP, then writes on
// every node and syncs around: all three end identical, value by value in
// the canonical encoding.
func TestChinookAcrossEngines(t *testing.T) {
	mysqlDDL := chinookScript(t, "Chinook_MySql.sql", false)
	src, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "data", "chinook", "Chinook_Sqlite.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	// The SQLite node is a copy of the sample file.
	addr := testdb.New(t, "sqlite")
	if err := os.WriteFile(strings.TrimPrefix(addr, "sqlite:"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := openAddr(t, addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := rowsync.Init(t.Context(), db, rowsync.InitOptions{All: true, Name: "laptop"})
	if err != nil {
		t.Fatal(err)
	}
	lite := &node{engine: "sqlite", app: testdb.App(t, addr), db: db, n: n}

	hub := chinookNode(t, "postgres", "hub", chinookLayoutForPostgres(mysqlDDL))
	shop := chinookNode(t, "mysql", "shop", mysqlDDL)
	hubURL := serve(t, hub)

	if _, err := lite.n.Sync(t.Context(), hubURL, rowsync.SyncOptions{}); err != nil {
		t.Fatalf("laptop with hub: %v", err)
	}
	if _, err := shop.n.Sync(t.Context(), hubURL, rowsync.SyncOptions{}); err != nil {
		t.Fatalf("shop with hub: %v", err)
	}
	if total := identical(t, lite, hub, shop); total < 15000 {
		t.Errorf("%d rows in all; Chinook has about 15.6k", total)
	}
	for _, x := range []*node{lite, hub, shop} {
		cs, err := x.n.Conflicts(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			t.Errorf("%s: conflict %s: %s", x.engine, c.String(), c.Detail)
		}
	}

	// Writes everywhere, then syncs around until quiet.
	lite.run(t, []string{`UPDATE "Track" SET "UnitPrice" = 1.29, "Name" = 'Balls to the Wall (live)' WHERE "TrackId" = 2`,
		`INSERT INTO "Genre"("GenreId", "Name") VALUES (100, 'Field recordings')`})
	hub.run(t, []string{`UPDATE "Customer" SET "Email" = 'luis@example.org' WHERE "CustomerId" = 1`,
		`DELETE FROM "PlaylistTrack" WHERE "PlaylistId" = 1 AND "TrackId" = 3402`})
	shop.run(t, []string{"UPDATE `Invoice` SET `Total` = 99.99, `InvoiceDate` = '2013-12-31 23:59:59' WHERE `InvoiceId` = 412",
		"INSERT INTO `Artist`(`ArtistId`, `Name`) VALUES (1000, 'Shop band')"})
	for range 2 {
		for _, x := range []*node{lite, shop} {
			if _, err := x.n.Sync(t.Context(), hubURL, rowsync.SyncOptions{}); err != nil {
				t.Fatalf("%s with hub: %v", x.engine, err)
			}
		}
	}
	identical(t, lite, hub, shop)
	inv := shop.rows(t, "Invoice")["412"]
	it, _ := shop.n.Table("Invoice")
	for _, x := range []*node{lite, hub} {
		got := x.rows(t, "Invoice")["412"]
		if got == nil || !got[it.ColumnIndex("Total")].Equal(rowsync.TextValue("99.99")) || !got[it.ColumnIndex("InvoiceDate")].Equal(inv[it.ColumnIndex("InvoiceDate")]) {
			t.Errorf("%s: invoice 412 is %v, want the shop's %v", x.engine, got, inv)
		}
	}
}
