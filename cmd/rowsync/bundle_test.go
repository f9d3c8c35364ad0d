package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rowsync/rowsync"
)

// files lists the names in dir.
func files(tb testing.TB, dir string) []string {
	tb.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// Two nodes whose only link is a bundle file: the USB stick workflow of
// docs/OPERATIONS.md.
func TestExportImport(t *testing.T) {
	a, b := twoNodes(t)
	stick := t.TempDir()
	file := filepath.Join(stick, "alpha.bundle")

	r := ok(t, "export", "--db", a, "-o", file)
	if !regexp.MustCompile(`^exported 4 rows of alpha \(everything up to cursor \d+\) to .*alpha.bundle\n$`).MatchString(r.stdout) {
		t.Errorf("export output: %q", r.stdout)
	}
	if got := files(t, stick); !slices.Equal(got, []string{"alpha.bundle"}) {
		t.Errorf("files after export: %v", got)
	}
	r = ok(t, "import", file, "--db", b)
	if !strings.Contains(r.stdout, "imported bundle of alpha") || !strings.Contains(r.stdout, "received 4 rows, 4 changed here") {
		t.Errorf("import output: %s", r.stdout)
	}
	ok(t, "verify", "--db", a, b)

	// Again: nothing changes, and it says so.
	before := dump(t, b)
	r = ok(t, "import", "--db", b, file)
	if !strings.Contains(r.stdout, "4 already here, 0 changed here") || !strings.Contains(r.stdout, "nothing changed") {
		t.Errorf("second import output: %s", r.stdout)
	}
	if strings.Count(dump(t, b), "\n") != strings.Count(before, "\n") || !slices.Equal(query(t, b, `SELECT * FROM artist ORDER BY id`), query(t, a, `SELECT * FROM artist ORDER BY id`)) {
		t.Errorf("second import changed b")
	}

	// Back, with what alpha has not acknowledged: beta's new row, and a
	// concurrent edit of the same column on both sides.
	exec(t, b, `INSERT INTO artist VALUES (3, 'Aerosmith', 'US')`)
	exec(t, a, `UPDATE artist SET country = 'Australia' WHERE id = 1`)
	nextMillisecond()
	exec(t, b, `UPDATE artist SET country = 'AUS' WHERE id = 1`)
	back := filepath.Join(stick, "beta.bundle")
	r = ok(t, "export", "--db", b, "-o", back, "--for", "alpha")
	if !strings.Contains(r.stdout, "exported 2 rows of beta (for alpha: not yet acknowledged") {
		t.Errorf("export --for output: %s", r.stdout)
	}
	r = ok(t, "import", "--db", a, back)
	if !strings.Contains(r.stdout, "received 2 rows") || !strings.Contains(r.stdout, "1 new conflict recorded here; see: rowsync conflicts --db "+a) {
		t.Errorf("import with a conflict: %s", r.stdout)
	}
	st := statusOf(t, a)
	if len(st.Peers) != 1 || st.Peers[0].Name != "beta" || st.Peers[0].RowsIn != 2 || st.Peers[0].SyncCount != 1 || st.Peers[0].AckedSeq == 0 {
		t.Errorf("a's peers after the import: %+v", st.Peers)
	}
	// alpha's export --for beta now holds only its new row: beta
	// acknowledged the four rows, and the row whose edit lost is as beta
	// sent it. By name, id or id prefix.
	exec(t, a, `INSERT INTO artist VALUES (6, 'Cream', 'UK')`)
	for _, who := range []string{"beta", st.Peers[0].ID, st.Peers[0].ID[:5]} {
		r = ok(t, "export", "--db", a, "-o", file, "--for", who, "--json")
		var res rowsync.ExportResult
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
			t.Fatalf("export --json: %v\n%s", err, r.stdout)
		}
		if res.Rows != 1 || res.Header.For == nil || res.Header.For.Name != "beta" {
			t.Errorf("export --for %s: %+v", who, res)
		}
	}
	r = ok(t, "import", "--db", b, file, "--json")
	var res rowsync.ImportResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("import --json: %v\n%s", err, r.stdout)
	}
	if res.Rows != 1 || res.Header.Node.Name != "alpha" {
		t.Errorf("import --json: %+v", res)
	}
	ok(t, "verify", "--db", a, b)
	if got := query(t, a, `SELECT country FROM artist WHERE id = 1`); !slices.Equal(got, []string{"AUS"}) {
		t.Errorf("the later edit did not win: %v", got)
	}
}

func TestExportSinceAndStdout(t *testing.T) {
	a, b := twoNodes(t)
	cursor := statusOf(t, a).Seq
	nextMillisecond()
	since := time.Now().UTC().Format(time.RFC3339Nano)
	nextMillisecond()
	exec(t, a, `INSERT INTO artist VALUES (5, 'Blur', 'UK')`)
	dir := t.TempDir()
	for _, arg := range []string{strconv.FormatInt(cursor, 10), since} {
		r := ok(t, "export", "--db", a, "-o", filepath.Join(dir, "x.bundle"), "--since", arg)
		if !strings.HasPrefix(r.stdout, "exported 1 row of alpha") {
			t.Errorf("export --since %s: %s", arg, r.stdout)
		}
	}
	// -o - writes the bundle to standard output and the summary to
	// standard error.
	r := ok(t, "export", "--db", a, "-o", "-")
	if !strings.HasPrefix(r.stdout, "rowsync bundle\n") || !strings.Contains(r.stderr, "exported 5 rows of alpha") || !strings.Contains(r.stderr, "standard output") {
		t.Fatalf("export -o -: stderr %q, stdout starts %q", r.stderr, r.stdout[:min(40, len(r.stdout))])
	}
	file := filepath.Join(dir, "stdout.bundle")
	if err := os.WriteFile(file, []byte(r.stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	ok(t, "import", "--db", b, file)
	ok(t, "verify", "--db", a, b)

	fails(t, 2, []string{"--since", "RFC 3339"}, "export", "--db", a, "-o", file, "--since", "yesterday")
	fails(t, 2, []string{"--since", "negative"}, "export", "--db", a, "-o", file, "--since", "-3")
}

func TestExportImportErrors(t *testing.T) {
	a, b := twoNodes(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "a.bundle")
	ok(t, "export", "--db", a, "-o", file)

	// Usage errors exit 2.
	fails(t, 2, []string{"-o FILE"}, "export", "--db", a)
	fails(t, 2, []string{"--for", "--since"}, "export", "--db", a, "-o", file, "--for", "beta", "--since", "3")
	fails(t, 2, []string{"--db"}, "export", "-o", file)
	fails(t, 2, nil, "import", "--db", b)
	fails(t, 2, nil, "import", "--db", b, file, file)
	fails(t, 2, []string{"--bogus"}, "import", "--db", b, file, "--bogus")
	for _, c := range []string{"export", "import"} {
		if r := ok(t, c, "--help"); !strings.Contains(r.stdout, "Usage:") || !strings.Contains(r.stdout, "bundle") {
			t.Errorf("%s --help:\n%s", c, r.stdout)
		}
	}

	// A peer this node does not know: the known ones are listed, and no
	// file is left.
	fails(t, 1, []string{"nosuch", "knows no peers"}, "export", "--db", a, "-o", filepath.Join(dir, "x.bundle"), "--for", "nosuch")
	ok(t, "import", "--db", b, file)
	fails(t, 1, []string{"nosuch", "unknown peer", "alpha (id "}, "export", "--db", b, "-o", filepath.Join(dir, "x.bundle"), "--for", "nosuch")
	if got := files(t, dir); !slices.Equal(got, []string{"a.bundle"}) {
		t.Errorf("failed exports left files: %v", got)
	}
	fails(t, 1, []string{"nodir"}, "export", "--db", a, "-o", filepath.Join(dir, "nodir", "x.bundle"))

	before := dump(t, a)
	fails(t, 1, []string{"exported by this node"}, "import", "--db", a, file)
	other := filepath.Join(dir, "notes.txt")
	os.WriteFile(other, []byte("shopping list\n"), 0o600)
	fails(t, 1, []string{other + " is not a rowsync bundle"}, "import", "--db", a, other)
	fails(t, 1, []string{"is not a rowsync bundle"}, "import", "--db", a, b)
	fails(t, 1, []string{"missing.bundle"}, "import", "--db", a, filepath.Join(dir, "missing.bundle"))
	if after := dump(t, a); after != before {
		t.Errorf("refused imports changed a")
	}

	// Into a database that is not initialized: the error every command
	// gives.
	plain := newDB(t, dir, "plain.db", schema)
	fails(t, 1, []string{"not initialized", "rowsync init"}, "import", "--db", plain, file)
	fails(t, 1, []string{"not initialized"}, "export", "--db", plain, "-o", filepath.Join(dir, "p.bundle"))

	// A schema mismatch changes nothing.
	c := newDB(t, dir, "c.db", `CREATE TABLE artist(id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT, born INTEGER);
		CREATE TABLE album(artist INTEGER NOT NULL REFERENCES artist(id), no INTEGER NOT NULL, title TEXT, cover BLOB, PRIMARY KEY(artist, no));`)
	ok(t, "init", "--db", c, "--all", "--name", "gamma")
	before = dump(t, c)
	fails(t, 1, []string{"schema mismatch", `"artist"`, `"born"`}, "import", "--db", c, file)
	if after := dump(t, c); after != before {
		t.Errorf("a mismatched import changed c")
	}

	// A truncated bundle: what is applied is said, the exit is 1, and
	// the complete bundle then brings the rest.
	d := newDB(t, dir, "d.db", schema)
	ok(t, "init", "--db", d, "--all", "--name", "delta")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(dir, "cut.bundle")
	os.WriteFile(cut, data[:len(data)-30], 0o600)
	fails(t, 1, []string{"truncated or corrupt", "rows applied"}, "import", "--db", d, cut)
	ok(t, "import", "--db", d, file)
	ok(t, "verify", "--db", a, d)
}
