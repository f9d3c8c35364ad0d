package rowsync_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rowsync/rowsync"
)

// Bundles (export / import): nodes whose only link is a file carried
// between them.

// exportBundle exports a bundle of s.
func exportBundle(tb testing.TB, s *site, opt rowsync.ExportOptions) ([]byte, *rowsync.ExportResult) {
	tb.Helper()
	var buf bytes.Buffer
	res, err := s.node.Export(tb.Context(), &buf, opt)
	if err != nil {
		tb.Fatalf("%s: export %+v: %v", s.name, opt, err)
	}
	return buf.Bytes(), res
}

// importBundle imports a bundle into s.
func importBundle(tb testing.TB, s *site, b []byte) *rowsync.ImportResult {
	tb.Helper()
	res, err := s.node.Import(tb.Context(), bytes.NewReader(b))
	if err != nil {
		tb.Fatalf("%s: import: %v", s.name, err)
	}
	return res
}

// knows reports whether s has a peer record of node name.
func knows(tb testing.TB, s *site, name string) bool {
	tb.Helper()
	st, err := s.node.Status(tb.Context())
	if err != nil {
		tb.Fatal(err)
	}
	return slices.ContainsFunc(st.Peers, func(p rowsync.PeerStatus) bool { return p.Name == name })
}

// carry exports a bundle of from --for to (everything while from does not
// know to yet) and imports it into to.
func carry(tb testing.TB, from, to *site) (*rowsync.ExportResult, *rowsync.ImportResult) {
	tb.Helper()
	var opt rowsync.ExportOptions
	if knows(tb, from, to.node.Name()) {
		opt.For = to.node.Name()
	}
	b, ex := exportBundle(tb, from, opt)
	return ex, importBundle(tb, to, b)
}

// state renders everything an import may change on a node: its rows, its
// conflicts, its held changes and its sequence number.
func state(tb testing.TB, s *site) string {
	tb.Helper()
	var b strings.Builder
	for _, t := range s.node.Tables() {
		fmt.Fprintf(&b, "%s: %q\n", t.Name, s.rows(tb, t.Name))
	}
	b.WriteString(dumpConflicts(tb, s))
	st, err := s.node.Status(tb.Context())
	if err != nil {
		tb.Fatal(err)
	}
	fmt.Fprintf(&b, "seq %d\n", st.Seq)
	return b.String()
}

// randomWrites runs n random application writes on s, over mergeSchema,
// with small key spaces so that writes of different nodes meet. Writes a
// constraint refuses are skipped, as an application would.
func randomWrites(tb testing.TB, r *rand.Rand, s *site, n int) {
	tb.Helper()
	for i := range n {
		v := fmt.Sprintf("%s%d-%d", s.name, i, r.IntN(1000))
		var q string
		var args []any
		switch r.IntN(7) {
		case 0, 1:
			q, args = `INSERT OR REPLACE INTO item(id, a, b) VALUES (?, ?, ?)`, []any{r.IntN(12), v, v}
		case 2:
			q, args = `UPDATE item SET a = ? WHERE id = ?`, []any{v, r.IntN(12)}
		case 3:
			q, args = `UPDATE item SET b = ? WHERE id = ?`, []any{v, r.IntN(12)}
		case 4:
			q, args = `DELETE FROM item WHERE id = ?`, []any{r.IntN(12)}
		case 5:
			q, args = `INSERT OR REPLACE INTO parent VALUES (?, ?)`, []any{r.IntN(4), v}
		case 6:
			q, args = `INSERT OR REPLACE INTO child SELECT ?, id, ? FROM parent WHERE id = ?`, []any{r.IntN(6), v, r.IntN(4)}
		}
		s.app.Exec(q, args...) // a refused write is not a write
	}
}

// Three nodes on a line a - b - c whose only links are bundles converge:
// random writes, a conflicting edit of one column, a delete racing an
// edit; a's changes reach c through b. Once quiet, --for exports carry no
// rows at all: every peer has acknowledged everything.
func TestBundlesConverge(t *testing.T) {
	s := newSites(t, 3, mergeSchema)
	a, b, c := s[0], s[1], s[2]
	pairs := [][2]*site{{a, b}, {b, a}, {b, c}, {c, b}}
	// round carries a bundle along every link, and reports whether
	// nothing changed anywhere and whether every bundle was empty.
	round := func() (quiet, empty bool) {
		quiet, empty = true, true
		for _, p := range pairs {
			ex, im := carry(t, p[0], p[1])
			quiet = quiet && im.Changed == 0 && im.NewConflicts == 0
			empty = empty && ex.Rows == 0 && ex.Header.For != nil
		}
		return quiet, empty
	}
	a.exec(t, `INSERT INTO item VALUES (100, 'base', 'base', NULL), (101, 'doomed', 'x', NULL)`)
	round()
	round()
	if got := c.row(t, "item", 100); got == "" {
		t.Fatalf("a's row did not reach c through b")
	}

	a.exec(t, `UPDATE item SET a = 'from-a' WHERE id = 100`)
	a.exec(t, `UPDATE item SET b = 'edited' WHERE id = 101`)
	laterMilli(t)
	c.exec(t, `UPDATE item SET a = 'from-c' WHERE id = 100`)
	b.exec(t, `DELETE FROM item WHERE id = 101`)
	r := rand.New(rand.NewPCG(7, uint64(time.Now().UnixNano())))
	for range 4 {
		for _, x := range s {
			randomWrites(t, r, x, 15)
		}
		round()
	}
	settled := false
	for range 8 {
		if quiet, empty := round(); quiet && empty {
			settled = true
			break
		}
	}
	if !settled {
		t.Errorf("bundles did not settle to empty --for exports in 8 rounds")
	}
	convergedExceptHeld(t, a, b, c)
	for _, x := range s {
		if got := x.row(t, "item", 100); !strings.Contains(got, "'from-c'") {
			t.Errorf("%s: item 100 = %s, want the later edit from-c", x.name, got)
		}
		if got := x.row(t, "item", 101); got != "" {
			t.Errorf("%s: item 101 = %s, want it deleted (the delete came after the edit)", x.name, got)
		}
	}
	if !loggedLoser(t, "item", "from-a", a, b, c) {
		t.Errorf("the losing edit from-a is in no conflict log:\n%s", dumpConflicts(t, a, b, c))
	}
	if len(findConflicts(append(a.conflicts(t), b.conflicts(t)...), rowsync.ConflictDeleteWins, "item", 101)) == 0 {
		t.Errorf("the edit the delete of 101 overrode is not logged:\n%s", dumpConflicts(t, a, b, c))
	}
	// The peers are listed with what came in.
	st, err := a.node.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Peers) != 1 || st.Peers[0].Name != "b" || st.Peers[0].RowsIn == 0 || st.Peers[0].SyncCount == 0 || st.Peers[0].Pending != 0 {
		t.Errorf("a's peers after the bundles: %+v", st.Peers)
	}
}

// Importing a bundle again changes nothing, and skips every row.
func TestBundleReimportIsNoop(t *testing.T) {
	s := newSites(t, 2, mergeSchema)
	a, b := s[0], s[1]
	a.exec(t, `INSERT INTO item VALUES (1, 'x', 'y', 1), (2, 'z', NULL, 2); INSERT INTO parent VALUES (1, 'p'); INSERT INTO child VALUES (1, 1, 'c')`)
	a.exec(t, `DELETE FROM item WHERE id = 2`)
	// b has a concurrent edit: the import records a conflict, once.
	b.exec(t, `INSERT INTO item VALUES (1, 'bx', 'by', 1)`)
	laterMilli(t)
	bundle, ex := exportBundle(t, a, rowsync.ExportOptions{})
	if ex.Rows != 4 {
		t.Errorf("export of everything: %d rows, want 4", ex.Rows)
	}
	first := importBundle(t, b, bundle)
	if first.Rows != 4 || first.Changed == 0 || first.Skipped != 0 {
		t.Errorf("first import: %+v", first)
	}
	before := state(t, b)
	again := importBundle(t, b, bundle)
	if again.Changed != 0 || again.NewConflicts != 0 || again.Skipped != again.Rows || again.Rows != 4 {
		t.Errorf("second import: %+v, want every row skipped and nothing changed", again)
	}
	if after := state(t, b); after != before {
		t.Errorf("re-import changed b:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// A bundle that cannot advance b's cursors (a --since bundle) is
	// merged again instead of skipped: still no change.
	since, _ := exportBundle(t, a, rowsync.ExportOptions{SinceTime: time.Now().Add(-time.Hour)})
	res := importBundle(t, b, since)
	if res.Changed != 0 || res.NewConflicts != 0 {
		t.Errorf("import of an overlapping --since bundle: %+v", res)
	}
	if after := state(t, b); after != before {
		t.Errorf("overlapping bundle changed b:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// export --for holds only what the peer has not acknowledged: after a
// round trip of bundles, only the rows written since.
func TestBundleForExportsOnlyUnacknowledged(t *testing.T) {
	s := newSites(t, 2, mergeSchema)
	a, b := s[0], s[1]
	for i := range 20 {
		a.exec(t, `INSERT INTO item VALUES (?, 'a', 'b', NULL)`, i)
	}
	// a does not know b yet.
	var buf bytes.Buffer
	if _, err := a.node.Export(t.Context(), &buf, rowsync.ExportOptions{For: "b"}); err == nil || !strings.Contains(err.Error(), "knows no peers") {
		t.Fatalf("export --for an unknown peer with no peers: %v", err)
	}
	all, ex := exportBundle(t, a, rowsync.ExportOptions{})
	if ex.Rows != 20 {
		t.Fatalf("export: %d rows", ex.Rows)
	}
	importBundle(t, b, all)
	b.exec(t, `INSERT INTO item VALUES (100, 'from b', NULL, NULL)`)
	back, ex := exportBundle(t, b, rowsync.ExportOptions{For: a.node.ID()[:6]}) // an id prefix
	if ex.Rows != 1 || ex.Header.For == nil || ex.Header.For.ID != a.node.ID() {
		t.Errorf("b's export --for a: %d rows, header %+v", ex.Rows, ex.Header)
	}
	res := importBundle(t, a, back)
	if res.Acked != 20 {
		t.Errorf("a recorded b's acknowledgement %d, want 20 (a's 20 rows)", res.Acked)
	}
	// Written since: one insert, one update.
	a.exec(t, `INSERT INTO item VALUES (50, 'new', NULL, NULL)`)
	a.exec(t, `UPDATE item SET a = 'changed' WHERE id = 3`)
	next, ex := exportBundle(t, a, rowsync.ExportOptions{For: "b"})
	if ex.Rows != 2 {
		t.Errorf("export --for b after the round trip: %d rows, want 2 (not the 20 acknowledged, nor b's own row)", ex.Rows)
	}
	if res := importBundle(t, b, next); res.Changed != 2 {
		t.Errorf("b's import: %+v", res)
	}
	converged(t, a, b)

	// Unknown peers are refused with the known ones listed.
	if _, err := a.node.Export(t.Context(), &buf, rowsync.ExportOptions{For: "nosuch"}); err == nil || !strings.Contains(err.Error(), `unknown peer`) || !strings.Contains(err.Error(), "b (id ") {
		t.Errorf("export --for nosuch: %v", err)
	}
	if _, err := a.node.Export(t.Context(), &buf, rowsync.ExportOptions{For: "b", Since: 3}); err == nil {
		t.Errorf("--for with --since accepted")
	}
}

// --since CURSOR and --since TIME hold the rows changed after the cursor
// or at or after the time, deletes included; a node that imports such a
// bundle does not take it for everything up to its end.
func TestBundleSince(t *testing.T) {
	s := newSites(t, 3, mergeSchema)
	a, b, c := s[0], s[1], s[2]
	a.exec(t, `INSERT INTO item VALUES (1, 'one', NULL, NULL), (2, 'two', NULL, NULL), (3, 'three', NULL, NULL)`)
	if err := a.node.Fold(t.Context()); err != nil {
		t.Fatal(err)
	}
	st, err := a.node.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	cursor := st.Seq
	laterMilli(t)
	since := time.Now()
	laterMilli(t)
	a.exec(t, `UPDATE item SET a = 'ONE' WHERE id = 1`)
	a.exec(t, `INSERT INTO item VALUES (4, 'four', NULL, NULL)`)
	a.exec(t, `DELETE FROM item WHERE id = 2`)

	byCursor, ex := exportBundle(t, a, rowsync.ExportOptions{Since: cursor})
	if ex.Rows != 3 || ex.Header.SinceSeq != cursor {
		t.Errorf("--since %d: %d rows, want 3 (1 updated, 4 inserted, 2 deleted)", cursor, ex.Rows)
	}
	byTime, ex := exportBundle(t, a, rowsync.ExportOptions{SinceTime: since})
	if ex.Rows != 3 || ex.Header.SinceTime == nil {
		t.Errorf("--since %s: %d rows, want 3", since.Format(time.RFC3339Nano), ex.Rows)
	}
	if _, ex := exportBundle(t, a, rowsync.ExportOptions{SinceTime: time.Now().Add(time.Hour)}); ex.Rows != 0 {
		t.Errorf("--since an hour ahead: %d rows", ex.Rows)
	}
	for _, x := range []struct {
		to     *site
		bundle []byte
	}{{b, byCursor}, {c, byTime}} {
		importBundle(t, x.to, x.bundle)
		if got, want := x.to.rows(t, "item"), []string{a.row(t, "item", 1), a.row(t, "item", 4)}; !slices.Equal(got, want) {
			t.Errorf("%s after the --since bundle: %q, want %q", x.to.name, got, want)
		}
	}
	// The bundle left row 3 out: b's cursors for a did not move past it,
	// so a later sync (or a full bundle) still brings it.
	syncSites(t, b, a)
	full, _ := exportBundle(t, a, rowsync.ExportOptions{})
	importBundle(t, c, full)
	converged(t, a, b, c)
}

// A bundle of another schema is refused before anything changes, with
// the error a sync gives.
func TestBundleSchemaMismatch(t *testing.T) {
	a := newSite(t, "a", mergeSchema)
	b := newSite(t, "b", strings.Replace(mergeSchema, "code INTEGER UNIQUE", "code INTEGER UNIQUE, extra TEXT", 1))
	a.exec(t, `INSERT INTO item VALUES (1, 'x', 'y', NULL)`)
	b.exec(t, `INSERT INTO item VALUES (2, 'x', 'y', NULL, 'e')`)
	bundle, _ := exportBundle(t, a, rowsync.ExportOptions{})
	before := state(t, b)
	_, err := b.node.Import(t.Context(), bytes.NewReader(bundle))
	var se *rowsync.SchemaError
	if !errors.As(err, &se) || se.Table != "item" || se.Column != "extra" || !strings.Contains(err.Error(), "schema mismatch") {
		t.Fatalf("import of another schema: %v", err)
	}
	if after := state(t, b); after != before {
		t.Errorf("a refused import changed b:\n%s", after)
	}
	if knows(t, b, "a") {
		t.Errorf("a refused import recorded the exporter as a peer")
	}
}

// A node refuses its own bundle.
func TestBundleOwnRefused(t *testing.T) {
	a := newSite(t, "a", mergeSchema)
	a.exec(t, `INSERT INTO item VALUES (1, 'x', 'y', NULL)`)
	bundle, _ := exportBundle(t, a, rowsync.ExportOptions{})
	before := state(t, a)
	if _, err := a.node.Import(t.Context(), bytes.NewReader(bundle)); !errors.Is(err, rowsync.ErrOwnBundle) {
		t.Fatalf("import of its own bundle: %v", err)
	}
	if after := state(t, a); after != before || knows(t, a, "a") {
		t.Errorf("a refused import changed a:\n%s", after)
	}
}

// A bundle cut short or damaged anywhere: every batch before the damage
// is applied, nothing of the batch it hits, and the error says so. The
// complete bundle imported next brings the rest, skipping what is there.
func TestBundleTruncatedOrCorrupt(t *testing.T) {
	a := newSite(t, "a", mergeSchema)
	// Values that do not compress away, so that the bundle has several
	// chunks (of 1 MiB of stream) of several batches each.
	a.exec(t, `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 999) INSERT INTO item SELECT i, hex(randomblob(1500)), NULL, NULL FROM n`)
	const total, batch = 1000, 50
	a.node.BatchRows = batch
	bundle, ex := exportBundle(t, a, rowsync.ExportOptions{})
	if ex.Rows != total {
		t.Fatalf("export: %d rows", ex.Rows)
	}
	headerEnd := bytes.IndexByte(bundle[len("rowsync bundle\n"):], '\n') + len("rowsync bundle\n") + 1
	sawPartial := false
	for i, cut := range []int{headerEnd - 10, headerEnd, headerEnd + 3, len(bundle) / 2, len(bundle) * 3 / 4, len(bundle) - 1} {
		for _, damage := range []string{"truncated", "corrupt"} {
			bad := slices.Clone(bundle)
			if damage == "truncated" {
				bad = bad[:cut]
			} else {
				if cut <= headerEnd {
					continue
				}
				bad[cut] ^= 0x55
			}
			t.Run(fmt.Sprintf("%s at %d", damage, cut), func(t *testing.T) {
				b := newSite(t, fmt.Sprintf("b%d%s", i, damage[:1]), mergeSchema)
				res, err := b.node.Import(t.Context(), bytes.NewReader(bad))
				if !errors.Is(err, rowsync.ErrBundleDamaged) || !strings.Contains(err.Error(), "truncated or corrupt") {
					t.Fatalf("import of a %s bundle: %v", damage, err)
				}
				var be *rowsync.BundleError
				applied := int64(0)
				if errors.As(err, &be) {
					applied = be.Applied
					if !strings.Contains(err.Error(), fmt.Sprintf("%d rows applied", applied)) {
						t.Errorf("error does not say how many rows were applied: %v", err)
					}
				} else if res != nil {
					t.Errorf("header damage returned a result: %+v", res)
				}
				rows := b.rows(t, "item")
				// (Cut in its End frame, every batch is there.)
				if int64(len(rows)) != applied || applied%batch != 0 || (applied == total && cut < len(bundle)-20) {
					t.Fatalf("%d rows here, %d said applied: want the same, whole batches of %d, not all", len(rows), applied, batch)
				}
				if applied > 0 {
					sawPartial = true
				}
				all := a.rows(t, "item")
				for _, r := range rows {
					if !slices.Contains(all, r) {
						t.Fatalf("a damaged row was applied: %.80s", r)
					}
				}
				res = importBundle(t, b, bundle)
				if res.Skipped != applied || res.Changed != total-applied {
					t.Errorf("the full import after: %+v, want %d skipped and the rest applied", res, applied)
				}
				converged(t, a, b)
			})
		}
	}
	if !sawPartial {
		t.Errorf("no damaged bundle applied any batch: the test does not test partial application")
	}
}

// Files that are not bundles are refused, and nothing changes.
func TestBundleNotABundle(t *testing.T) {
	b := newSite(t, "b", mergeSchema)
	b.exec(t, `INSERT INTO item VALUES (1, 'x', 'y', NULL)`)
	before := state(t, b)
	for _, data := range [][]byte{nil, []byte("hello\n"), []byte("SQLite format 3\x00 and more bytes than the magic"), []byte("rowsync bund")} {
		_, err := b.node.Import(t.Context(), bytes.NewReader(data))
		if len(data) > 0 && bytes.HasPrefix([]byte("rowsync bundle\n"), data) {
			if !errors.Is(err, rowsync.ErrBundleDamaged) {
				t.Errorf("import of %q: %v, want a truncated bundle", data, err)
			}
			continue
		}
		if !errors.Is(err, rowsync.ErrNotBundle) {
			t.Errorf("import of %q: %v, want not a bundle", data, err)
		}
	}
	for _, data := range []string{"rowsync bundle\nnot json\n", "rowsync bundle\n{\"format\": 9, \"protocol\": 2, \"node\": {\"id\": \"x\"}}\n"} {
		if _, err := b.node.Import(t.Context(), strings.NewReader(data)); err == nil {
			t.Errorf("import of %q succeeded", data)
		}
	}
	if after := state(t, b); after != before {
		t.Errorf("refused imports changed b:\n%s", after)
	}
}

// A bundle exported --for one node and imported by another: the rows the
// exporter got from the first node are left out, so the importer's
// cursors must not claim them; a later sync still brings them.
func TestBundleForAnotherNode(t *testing.T) {
	s := newSites(t, 3, mergeSchema)
	a, b, c := s[0], s[1], s[2]
	b.exec(t, `INSERT INTO item VALUES (1, 'from b', NULL, NULL)`)
	a.exec(t, `INSERT INTO item VALUES (2, 'from a', NULL, NULL)`)
	carry(t, b, a) // a now holds b's row as b sent it, and knows b
	forB, ex := exportBundle(t, a, rowsync.ExportOptions{For: "b"})
	if ex.Rows != 1 {
		t.Errorf("export --for b: %d rows, want a's own row only", ex.Rows)
	}
	importBundle(t, c, forB) // not the node it was for
	if got := c.rows(t, "item"); len(got) != 1 {
		t.Errorf("c after a bundle for b: %q", got)
	}
	syncSites(t, c, a)
	converged(t, a, c)
	if c.row(t, "item", 1) == "" {
		t.Errorf("b's row never reached c: c's cursors for a skipped it")
	}
}

// Nodes of other engines exchange bundles: a PostgreSQL or MariaDB node
// exports, a SQLite node imports, and back, values of every type class
// intact. Without the server this fails when CI=true (internal/testdb).
func TestBundleAcrossEngines(t *testing.T) {
	schemas := map[string]string{
		"postgres": `CREATE TABLE item(id bigint PRIMARY KEY, name text, price double precision, amount numeric(10,2), data bytea, at timestamp)`,
		"mysql":    `CREATE TABLE item(id BIGINT PRIMARY KEY, name TEXT, price DOUBLE, amount DECIMAL(10,2), data LONGBLOB, at DATETIME(6))`,
	}
	blob := map[string]string{"postgres": `'\x00ff'::bytea`, "mysql": `x'00ff'`}
	for _, engine := range []string{"postgres", "mysql"} {
		t.Run(engine, func(t *testing.T) {
			srv := newEngineSite(t, "srv", engine, schemas[engine]).site
			lite := newSite(t, "lite", `CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT, price REAL, amount DECIMAL(10,2), data BLOB, at DATETIME)`)
			srv.exec(t, `INSERT INTO item VALUES (1, 'tea', 1.5, 2.50, NULL, '2024-02-29 23:59:59.5'), (2, 'café ☕', -0.25, 1000, NULL, NULL), (3, '', 1e300, -0.01, NULL, '1970-01-01 00:00:00')`)
			srv.exec(t, `UPDATE item SET data = `+blob[engine]+` WHERE id = 2`)
			srv.exec(t, `DELETE FROM item WHERE id = 3`)
			b, ex := exportBundle(t, srv, rowsync.ExportOptions{})
			if ex.Rows != 3 {
				t.Errorf("export: %d rows, want 2 live and 1 deleted", ex.Rows)
			}
			if res := importBundle(t, lite, b); res.Changed != 3 || res.Held != 0 {
				t.Errorf("import into SQLite: %+v", res)
			}
			lite.exec(t, `UPDATE item SET amount = '3.75', name = 'green tea' WHERE id = 1`)
			lite.exec(t, `INSERT INTO item VALUES (4, 'from sqlite', 0.5, '0.01', x'00ff', '2025-01-01 00:00:00')`)
			back, ex := exportBundle(t, lite, rowsync.ExportOptions{For: "srv"})
			if ex.Rows != 2 {
				t.Errorf("export --for srv: %d rows, want 2", ex.Rows)
			}
			if res := importBundle(t, srv, back); res.Changed != 2 || res.Held != 0 || res.Acked <= 0 {
				t.Errorf("import into %s: %+v", engine, res)
			}
			diffs, err := srv.node.Verify(t.Context(), lite.node)
			if err != nil {
				t.Fatal(err)
			}
			if len(diffs) != 0 {
				t.Errorf("%s and SQLite differ after bundles: %+v", engine, diffs)
			}
			if next, ex := exportBundle(t, srv, rowsync.ExportOptions{For: "lite"}); ex.Rows != 0 {
				t.Errorf("export --for lite after the round trip: %d rows, want 0", ex.Rows)
				importBundle(t, lite, next)
			}
		})
	}
}
