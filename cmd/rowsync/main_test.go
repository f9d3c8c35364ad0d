package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rowsync/rowsync"
	"github.com/rowsync/rowsync/rowsynctest"
	"github.com/rowsync/rowsync/sqlite"
)

// result is what one run of the command line did.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
}

// cli runs the command line in-process.
func cli(tb testing.TB, args ...string) result {
	tb.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := run(ctx, args, &out, &errb)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// ok runs the command line and fails the test unless it exits 0.
func ok(tb testing.TB, args ...string) result {
	tb.Helper()
	r := cli(tb, args...)
	if r.code != 0 {
		tb.Fatalf("rowsync %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// fails runs the command line and checks that it exits with code, with a
// one-line error on stderr that mentions every substring.
func fails(tb testing.TB, code int, substrs []string, args ...string) result {
	tb.Helper()
	r := cli(tb, args...)
	if r.code != code {
		tb.Fatalf("rowsync %s: want exit %d, got %s", strings.Join(args, " "), code, r)
	}
	msg := strings.TrimSuffix(r.stderr, "\n")
	if msg == "" || strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "rowsync: ") {
		tb.Errorf("rowsync %s: want a one-line error on stderr, got %q", strings.Join(args, " "), r.stderr)
	}
	for _, s := range substrs {
		if !strings.Contains(msg, s) {
			tb.Errorf("rowsync %s: error %q does not mention %q", strings.Join(args, " "), msg, s)
		}
	}
	return r
}

const schema = `
CREATE TABLE artist(id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT);
CREATE TABLE album(artist INTEGER NOT NULL REFERENCES artist(id), no INTEGER NOT NULL, title TEXT, cover BLOB, PRIMARY KEY(artist, no));`

// newDB creates a SQLite file in dir with the statements and returns its
// path.
func newDB(tb testing.TB, dir, name string, stmts ...string) string {
	tb.Helper()
	path := filepath.Join(dir, name)
	db, err := sqlite.Open(path, true)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.SQL().Exec(s); err != nil {
			tb.Fatalf("%s: %s: %v", name, s, err)
		}
	}
	return path
}

// exec runs statements on a database file.
func exec(tb testing.TB, path string, stmts ...string) {
	tb.Helper()
	db, err := sqlite.Open(path, false)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.SQL().Exec(s); err != nil {
			tb.Fatalf("%s: %s: %v", path, s, err)
		}
	}
}

// query returns the rows of a query on a database file, rendered.
func query(tb testing.TB, path, q string) []string {
	tb.Helper()
	db, err := sqlite.Open(path, false)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	rows, err := rowsynctest.QueryAll(db.SQL(), q)
	if err != nil {
		tb.Fatalf("%s: %s: %v", path, q, err)
	}
	var out []string
	for _, vals := range rows {
		parts := make([]string, len(vals))
		for i, v := range vals {
			if b, ok := v.([]byte); ok {
				v = fmt.Sprintf("x'%x'", b)
			}
			parts[i] = fmt.Sprint(v)
		}
		out = append(out, strings.Join(parts, "|"))
	}
	return out
}

// dump renders a whole database (schema, user tables and bookkeeping), so
// that two dumps are equal iff nothing changed.
func dump(tb testing.TB, path string) string {
	tb.Helper()
	var sb strings.Builder
	var tables []string
	for _, r := range query(tb, path, `SELECT type, name, coalesce(sql, '') FROM sqlite_schema ORDER BY type, name`) {
		sb.WriteString(r + "\n")
		if p := strings.SplitN(r, "|", 3); p[0] == "table" {
			tables = append(tables, p[1])
		}
	}
	for _, t := range tables {
		rows := query(tb, path, `SELECT * FROM "`+t+`"`)
		slices.Sort(rows)
		for _, r := range rows {
			fmt.Fprintf(&sb, "%s: %s\n", t, r)
		}
	}
	return sb.String()
}

// twoNodes creates two initialized nodes with the same schema: a with some
// rows, b empty.
func twoNodes(tb testing.TB) (a, b string) {
	tb.Helper()
	dir := tb.TempDir()
	a = newDB(tb, dir, "a.db", schema, `INSERT INTO artist VALUES (1, 'AC/DC', 'AU'), (2, 'Accept', 'DE');
		INSERT INTO album VALUES (1, 1, 'For Those About To Rock', x'00ff'), (2, 1, 'Balls to the Wall', NULL);`)
	b = newDB(tb, dir, "b.db", schema)
	ok(tb, "init", "--db", a, "--all", "--name", "alpha")
	ok(tb, "init", "--db", b, "--all", "--name", "beta")
	return a, b
}

// statusOf runs status --json, on db unless it is empty.
func statusOf(tb testing.TB, db string) rowsync.Status {
	tb.Helper()
	args := []string{"status", "--json"}
	if db != "" {
		args = append(args, "--db", db)
	}
	r := ok(tb, args...)
	var st rowsync.Status
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		tb.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	if dec.More() {
		tb.Fatalf("status --json printed more than one document:\n%s", r.stdout)
	}
	return st
}

func TestInit(t *testing.T) {
	dir := t.TempDir()
	db := newDB(t, dir, "x.db", schema, `CREATE TABLE tag(name TEXT PRIMARY KEY); INSERT INTO artist VALUES (1, 'a', NULL);`)

	r := ok(t, "init", "--db", db, "--tables", "artist", "--name", "hq")
	if !strings.Contains(r.stdout, "hq") || !strings.Contains(r.stdout, "tracking 1 tables: artist") {
		t.Errorf("init output:\n%s", r.stdout)
	}
	st := statusOf(t, db)
	id := st.Node.ID
	if st.Node.Name != "hq" || len(id) < 16 || len(st.Tables) != 1 || st.Tables[0].Name != "artist" {
		t.Fatalf("status after init: %+v", st)
	}

	// Re-running adds newly listed tables and keeps the id and the name.
	r = ok(t, "init", "--tables", "album, tag", "--db", db)
	if !strings.Contains(r.stdout, "tracking 3 tables") {
		t.Errorf("second init output:\n%s", r.stdout)
	}
	st = statusOf(t, db)
	var names []string
	for _, tb := range st.Tables {
		names = append(names, tb.Name)
	}
	slices.Sort(names)
	if st.Node.ID != id || st.Node.Name != "hq" || !slices.Equal(names, []string{"album", "artist", "tag"}) {
		t.Fatalf("status after the second init: %+v", st)
	}
	if k := st.Tables[slices.IndexFunc(st.Tables, func(ts rowsync.TableStatus) bool { return ts.Name == "album" })].Key; !slices.Equal(k, []string{"artist", "no"}) {
		t.Errorf("album key %v", k)
	}

	// Idempotent: running it again changes nothing at all.
	ok(t, "init", "--db", db, "--all")
	before := dump(t, db)
	ok(t, "init", "--db", db, "--all")
	ok(t, "init", "--db", db, "--tables", "artist")
	if after := dump(t, db); after != before {
		t.Errorf("init --all twice changed the database:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// --name renames.
	ok(t, "init", "--db", "sqlite:"+db, "--all", "--name", "head-office")
	if st := statusOf(t, db); st.Node.ID != id || st.Node.Name != "head-office" {
		t.Errorf("after --name: %+v", st.Node)
	}

	// Errors.
	fails(t, 2, []string{"--tables", "--all"}, "init", "--db", db)
	fails(t, 1, []string{"nosuch"}, "init", "--db", db, "--tables", "nosuch")
	fails(t, 2, []string{"--db"}, "init", "--all")
}

func TestInitWithoutPrimaryKey(t *testing.T) {
	dir := t.TempDir()
	db := newDB(t, dir, "x.db", schema, `CREATE TABLE log(at TEXT, line TEXT)`)
	before := dump(t, db)
	for _, args := range [][]string{{"--all"}, {"--tables", "artist,log"}} {
		fails(t, 1, []string{`"log"`, "primary key"}, append([]string{"init", "--db", db}, args...)...)
		if after := dump(t, db); after != before {
			t.Errorf("a failed init changed the database:\n%s", after)
		}
	}
	// The other tables can still be tracked.
	ok(t, "init", "--db", db, "--tables", "artist,album")
}

func TestFlagsAndEnvironment(t *testing.T) {
	a, b := twoNodes(t)

	// Flags after the positional argument.
	r := ok(t, "sync", b, "--db", a)
	if !strings.Contains(r.stdout, "sent 4 rows, received 0 rows") {
		t.Errorf("sync output: %s", r.stdout)
	}
	ok(t, "verify", a, "--db", b)

	// ROWSYNC_DB is the default for --db.
	t.Setenv("ROWSYNC_DB", b)
	if st := statusOf(t, ""); st.Node.Name != "beta" {
		t.Errorf("status with ROWSYNC_DB: node %+v", st.Node)
	}
	r = ok(t, "status")
	if !strings.Contains(r.stdout, "beta") {
		t.Errorf("status with ROWSYNC_DB:\n%s", r.stdout)
	}
	ok(t, "verify", a)
	// --db wins over the environment.
	if st := statusOf(t, a); st.Node.Name != "alpha" {
		t.Errorf("status --db with ROWSYNC_DB set: node %+v", st.Node)
	}
	t.Setenv("ROWSYNC_DB", "")
	fails(t, 2, []string{"ROWSYNC_DB"}, "status")

	// Usage errors exit 2.
	fails(t, 2, []string{"frobnicate"}, "frobnicate")
	fails(t, 2, []string{"--bogus"}, "status", "--db", a, "--bogus")
	fails(t, 2, []string{"--bogus"}, "sync", "--bogus", "--db", a, b)
	fails(t, 2, nil, "sync", "--db", a)
	fails(t, 2, nil, "sync", "--db", a, b, b)
	fails(t, 2, nil, "verify", "--db", a)
	fails(t, 2, []string{"--push-only", "--pull-only"}, "sync", "--db", a, b, "--push-only", "--pull-only")

	// --help works on every command and exits 0.
	for _, c := range []string{"init", "serve", "sync", "status", "conflicts", "verify"} {
		if r := ok(t, c, "--help"); !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("%s --help:\n%s", c, r.stdout)
		}
	}
}

func TestSyncLocalFiles(t *testing.T) {
	a, b := twoNodes(t)
	exec(t, b, `INSERT INTO artist VALUES (3, 'Aerosmith', 'US')`)

	r := ok(t, "sync", "--db", a, b)
	if !strings.Contains(r.stdout, "synced alpha with beta") || !strings.Contains(r.stdout, "sent 4 rows, received 1 row") {
		t.Errorf("sync output: %s", r.stdout)
	}
	want := []string{"1|AC/DC|AU", "2|Accept|DE", "3|Aerosmith|US"}
	for _, db := range []string{a, b} {
		if got := query(t, db, `SELECT * FROM artist ORDER BY id`); !slices.Equal(got, want) {
			t.Errorf("%s: artist %v, want %v", db, got, want)
		}
		if got := query(t, db, `SELECT * FROM album ORDER BY artist, no`); !slices.Equal(got, []string{"1|1|For Those About To Rock|x'00ff'", "2|1|Balls to the Wall|<nil>"}) {
			t.Errorf("%s: album %v", db, got)
		}
	}
	// A second sync has nothing to move.
	r = ok(t, "sync", "--db", b, "sqlite:"+a)
	if !strings.Contains(r.stdout, "sent 0 rows, received 0 rows") {
		t.Errorf("second sync output: %s", r.stdout)
	}
	// --json prints the result.
	exec(t, a, `UPDATE artist SET country = 'Australia' WHERE id = 1`)
	r = ok(t, "sync", "--db", b, a, "--json")
	var res rowsync.SyncResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("sync --json: %v\n%s", err, r.stdout)
	}
	if res.Peer.Name != "alpha" || res.Pulled == nil || res.Pulled.Rows != 1 || res.Pushed == nil || res.Pushed.Rows != 0 {
		t.Errorf("sync --json: %+v pushed %+v pulled %+v", res, res.Pushed, res.Pulled)
	}
	ok(t, "verify", "--db", a, b)
}

func TestSyncPeerNotInitialized(t *testing.T) {
	dir := t.TempDir()
	a := newDB(t, dir, "a.db", schema)
	b := newDB(t, dir, "b.db", schema)
	ok(t, "init", "--db", a, "--all")
	before := dump(t, b)
	fails(t, 1, []string{b, "not initialized", "rowsync init"}, "sync", "--db", a, b)
	fails(t, 1, []string{b, "not initialized"}, "sync", "--db", b, a)
	if after := dump(t, b); after != before {
		t.Errorf("sync changed the uninitialized database:\n%s", after)
	}
	fails(t, 1, []string{"missing.db"}, "sync", "--db", a, filepath.Join(dir, "missing.db"))
	fails(t, 1, []string{"missing.db"}, "status", "--db", filepath.Join(dir, "missing.db"))
}

func TestSyncOneWay(t *testing.T) {
	a, b := twoNodes(t)
	ok(t, "sync", "--db", a, b)
	exec(t, a, `INSERT INTO artist VALUES (10, 'from a', NULL)`)
	exec(t, b, `INSERT INTO artist VALUES (20, 'from b', NULL)`)

	r := ok(t, "sync", "--db", a, b, "--push-only")
	if !strings.Contains(r.stdout, "sent 1 row") || strings.Contains(r.stdout, "received") {
		t.Errorf("push-only output: %s", r.stdout)
	}
	if got := query(t, b, `SELECT id FROM artist WHERE id >= 10 ORDER BY id`); !slices.Equal(got, []string{"10", "20"}) {
		t.Errorf("b after a's push: %v", got)
	}
	if got := query(t, a, `SELECT id FROM artist WHERE id >= 10 ORDER BY id`); !slices.Equal(got, []string{"10"}) {
		t.Errorf("a after its push: %v", got)
	}
	if r := fails(t, 1, []string{"1 table differs"}, "verify", "--db", a, b); !regexp.MustCompile(`(?m)^artist\s+3\s+4$`).MatchString(r.stdout) {
		t.Errorf("verify output:\n%s", r.stdout)
	}

	r = ok(t, "sync", "--pull-only", "--db", a, b)
	if !strings.Contains(r.stdout, "received 1 row") || strings.Contains(r.stdout, "sent") {
		t.Errorf("pull-only output: %s", r.stdout)
	}
	if got := query(t, a, `SELECT id FROM artist WHERE id >= 10 ORDER BY id`); !slices.Equal(got, []string{"10", "20"}) {
		t.Errorf("a after its pull: %v", got)
	}
	ok(t, "verify", "--db", a, b)
}

func TestStatus(t *testing.T) {
	a, b := twoNodes(t)
	st := statusOf(t, a)
	if len(st.Peers) != 0 {
		t.Errorf("peers before any sync: %+v", st.Peers)
	}
	if r := ok(t, "status", "--db", a); !strings.Contains(r.stdout, "peers: none yet") {
		t.Errorf("status before any sync:\n%s", r.stdout)
	}

	start := time.Now().Add(-time.Second)
	ok(t, "sync", "--db", a, b)
	exec(t, a, `INSERT INTO artist VALUES (3, 'Aerosmith', 'US')`)
	ok(t, "sync", "--db", a, b)
	// A local write not yet synced.
	exec(t, a, `UPDATE artist SET name = 'AC-DC' WHERE id = 1`)

	sa, sb := statusOf(t, a), statusOf(t, b)
	if sa.Node.Name != "alpha" || sb.Node.Name != "beta" || sa.Node.ID == sb.Node.ID || len(sa.Node.ID) < 16 {
		t.Fatalf("nodes %+v %+v", sa.Node, sb.Node)
	}
	if sa.Database != "sqlite:"+a {
		t.Errorf("database %q", sa.Database)
	}
	var names []string
	for _, tb := range sa.Tables {
		names = append(names, tb.Name)
	}
	if !slices.Equal(names, []string{"artist", "album"}) {
		t.Errorf("tables %v, want parents first", names)
	}
	if sa.Unfolded != 1 {
		t.Errorf("unfolded writes %d, want 1", sa.Unfolded)
	}
	for _, c := range []struct {
		st   rowsync.Status
		peer rowsync.NodeInfo
	}{{sa, sb.Node}, {sb, sa.Node}} {
		if len(c.st.Peers) != 1 {
			t.Fatalf("%s peers: %+v", c.st.Node.Name, c.st.Peers)
		}
		p := c.st.Peers[0]
		if p.ID != c.peer.ID || p.Name != c.peer.Name || p.SyncCount != 2 {
			t.Errorf("%s: peer %+v, want %+v with sync_count 2", c.st.Node.Name, p, c.peer)
		}
		if p.LastSync.Before(start) || p.LastSync.After(time.Now().Add(time.Second)) {
			t.Errorf("%s: peer last_sync %v, want about now", c.st.Node.Name, p.LastSync)
		}
	}
	if p := sa.Peers[0]; p.RowsOut != 5 || p.RowsIn != 0 {
		t.Errorf("alpha's counts for beta: sent %d received %d, want 5, 0", p.RowsOut, p.RowsIn)
	}
	if p := sb.Peers[0]; p.RowsIn != 5 {
		t.Errorf("beta's count of rows from alpha: %d, want 5", p.RowsIn)
	}

	// The field names of the JSON document.
	r := ok(t, "status", "--db", a, "--json")
	var raw map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &raw); err != nil {
		t.Fatal(err)
	}
	peer := raw["peers"].([]any)[0].(map[string]any)
	for _, k := range []string{"id", "name", "last_sync", "sync_count", "rows_received", "rows_sent", "pending"} {
		if _, ok := peer[k]; !ok {
			t.Errorf("status --json: peer has no %q: %v", k, peer)
		}
	}
	node := raw["node"].(map[string]any)
	if node["id"] != sa.Node.ID || node["name"] != "alpha" {
		t.Errorf("status --json node %v", node)
	}

	r = ok(t, "status", "--db", a)
	for _, s := range []string{"alpha", sa.Node.ID, "artist, album", "beta", "peers:"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("status does not show %q:\n%s", s, r.stdout)
		}
	}
}

// nextMillisecond waits until the wall clock has moved to a later
// millisecond, so that two writes get versions in a known order.
func nextMillisecond() {
	now := time.Now().UnixMilli()
	for time.Now().UnixMilli() <= now+1 {
		time.Sleep(200 * time.Microsecond)
	}
}

func TestConflicts(t *testing.T) {
	a, b := twoNodes(t)
	ok(t, "sync", "--db", a, b)
	if r := ok(t, "conflicts", "--db", a); !strings.Contains(r.stdout, "no conflicts") {
		t.Errorf("conflicts before any: %s", r.stdout)
	}
	if r := ok(t, "conflicts", "--db", a, "--json"); strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("conflicts --json before any: %s", r.stdout)
	}

	exec(t, a, `UPDATE artist SET name = 'AC/DC (a)' WHERE id = 1`)
	nextMillisecond()
	exec(t, b, `UPDATE artist SET name = 'AC/DC (b)' WHERE id = 1`)
	r := ok(t, "sync", "--db", a, b)
	if !strings.Contains(r.stdout, "1 new conflict recorded here") {
		t.Errorf("sync output does not report the conflict: %s", r.stdout)
	}
	ok(t, "verify", "--db", a, b)
	if got := query(t, a, `SELECT name FROM artist WHERE id = 1`); !slices.Equal(got, []string{"AC/DC (b)"}) {
		t.Errorf("name after the conflict: %v, want the later write", got)
	}
	ida, idb := statusOf(t, a).Node.ID, statusOf(t, b).Node.ID

	for _, db := range []string{a, b} {
		r := ok(t, "conflicts", "--db", db, "--json")
		var cs []conflictJSON
		dec := json.NewDecoder(strings.NewReader(r.stdout))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cs); err != nil {
			t.Fatalf("conflicts --json: %v\n%s", err, r.stdout)
		}
		if len(cs) != 1 {
			t.Fatalf("%s: %d conflicts, want 1:\n%s", db, len(cs), r.stdout)
		}
		c := cs[0]
		if c.Table != "artist" || len(c.Key) != 1 || c.Key[0] != float64(1) || c.Column != "name" || c.Kind != rowsync.ConflictUpdate {
			t.Errorf("%s: conflict %+v", db, c)
		}
		if c.Winner.Value != "AC/DC (b)" || c.Winner.Node != idb || c.Loser.Value != "AC/DC (a)" || c.Loser.Node != ida {
			t.Errorf("%s: winner %+v loser %+v", db, c.Winner, c.Loser)
		}
		if c.Winner.HLC <= c.Loser.HLC || c.Winner.Time == "" || c.Loser.Time == "" || c.At.IsZero() {
			t.Errorf("%s: versions winner %+v loser %+v at %v", db, c.Winner, c.Loser, c.At)
		}
		r = ok(t, "conflicts", "--db", db)
		for _, s := range []string{"update", "artist", "name", `"AC/DC (b)"`, `"AC/DC (a)"`} {
			if !strings.Contains(r.stdout, s) {
				t.Errorf("%s: conflicts does not show %q:\n%s", db, s, r.stdout)
			}
		}
	}
	if st := statusOf(t, a); st.Conflicts != 1 {
		t.Errorf("status conflicts %d, want 1", st.Conflicts)
	}
}

func TestVerify(t *testing.T) {
	a, b := twoNodes(t)
	r := fails(t, 1, []string{"2 tables differ"}, "verify", "--db", a, b)
	if !regexp.MustCompile(`(?m)^artist\s+2\s+0$`).MatchString(r.stdout) || !regexp.MustCompile(`(?m)^album\s+2\s+0$`).MatchString(r.stdout) {
		t.Errorf("verify does not print the tables and row counts:\n%s", r.stdout)
	}
	ok(t, "sync", "--db", a, b)
	r = ok(t, "verify", "--db", a, b)
	if !strings.Contains(r.stdout, "identical") {
		t.Errorf("verify output: %s", r.stdout)
	}

	// Same row counts, one value differs: still found.
	exec(t, b, `UPDATE album SET cover = x'00fe' WHERE artist = 1`)
	r = fails(t, 1, []string{"1 table differs"}, "verify", "--db", a, b)
	if !regexp.MustCompile(`(?m)^album\s+2\s+2$`).MatchString(r.stdout) || strings.Contains(r.stdout, "artist") {
		t.Errorf("verify output:\n%s", r.stdout)
	}
	// A value of another storage class with the same text.
	exec(t, b, `UPDATE album SET cover = x'00ff' WHERE artist = 1`)
	ok(t, "verify", "--db", a, b)
	exec(t, b, `UPDATE album SET cover = 61 WHERE artist = 1`, `UPDATE album SET cover = '61' WHERE artist = 2`)
	exec(t, a, `UPDATE album SET cover = '61' WHERE artist = 1`, `UPDATE album SET cover = 61 WHERE artist = 2`)
	r = fails(t, 1, nil, "verify", "--db", a, b)
	if !regexp.MustCompile(`(?m)^album\s+2\s+2$`).MatchString(r.stdout) {
		t.Errorf("verify does not see a storage class difference:\n%s", r.stdout)
	}
	// Verifying does not count as a sync.
	if st := statusOf(t, b); st.Peers[0].SyncCount != 1 {
		t.Errorf("verify counted as a sync: %+v", st.Peers[0])
	}
}

func TestSchemaMismatch(t *testing.T) {
	for _, c := range []struct {
		name, other string
		mention     []string
	}{
		{"extra column", `CREATE TABLE artist(id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT, born INTEGER);
			CREATE TABLE album(artist INTEGER NOT NULL REFERENCES artist(id), no INTEGER NOT NULL, title TEXT, cover BLOB, PRIMARY KEY(artist, no));`,
			[]string{`"artist"`, `"born"`}},
		{"type class", `CREATE TABLE artist(id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT);
			CREATE TABLE album(artist INTEGER NOT NULL REFERENCES artist(id), no INTEGER NOT NULL, title TEXT, cover REAL, PRIMARY KEY(artist, no));`,
			[]string{`"album"`, `"cover"`}},
		{"key", `CREATE TABLE artist(id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT);
			CREATE TABLE album(artist INTEGER NOT NULL REFERENCES artist(id), no INTEGER NOT NULL PRIMARY KEY, title TEXT, cover BLOB);`,
			[]string{`"album"`, "key"}},
		{"missing table", `CREATE TABLE artist(id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT);`,
			[]string{`"album"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			a := newDB(t, dir, "a.db", schema, `INSERT INTO artist VALUES (1, 'AC/DC', 'AU')`)
			b := newDB(t, dir, "b.db", c.other, `INSERT INTO artist(id, name, country) VALUES (2, 'Accept', 'DE')`)
			ok(t, "init", "--db", a, "--all")
			ok(t, "init", "--db", b, "--all")
			da, db := dump(t, a), dump(t, b)
			for _, args := range [][]string{{"sync", "--db", a, b}, {"sync", "--db", b, a}, {"sync", "--db", a, b, "--pull-only"}, {"verify", "--db", a, b}} {
				fails(t, 1, append([]string{"schema mismatch"}, c.mention...), args...)
			}
			if got := dump(t, a); got != da {
				t.Errorf("a changed:\n%s", got)
			}
			if got := dump(t, b); got != db {
				t.Errorf("b changed:\n%s", got)
			}
		})
	}
}

func TestAddresses(t *testing.T) {
	dir := t.TempDir()
	db := newDB(t, dir, "a.db", `CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT)`)
	// SQLite has no id generator to move.
	fails(t, 1, []string{"--id-range", "SQLite assigns max(id)+1"}, "init", "--db", db, "--all", "--id-range", "1000")
	// Addresses of unknown schemes and server URLs are refused with what
	// to use instead; passwords are not shown.
	fails(t, 1, []string{"unknown scheme", "oracle", "postgres://"}, "status", "--db", "oracle://scott:tiger@db/orcl")
	r := fails(t, 1, []string{"is a server URL"}, "status", "--db", "http://office:7400")
	if strings.Contains(r.stderr, "tiger") {
		t.Errorf("password in the message: %s", r.stderr)
	}
	r = cli(t, "status", "--db", "postgres://rowsync:s3cret@127.0.0.1:1/none?connect_timeout=2")
	if r.code == 0 || strings.Contains(r.stderr, "s3cret") || !strings.Contains(r.stderr, "127.0.0.1:1") {
		t.Errorf("unreachable PostgreSQL: %s", r)
	}
	r = cli(t, "status", "--db", "mysql://rowsync:s3cret@127.0.0.1:1/none")
	if r.code == 0 || strings.Contains(r.stderr, "s3cret") || !strings.Contains(r.stderr, "127.0.0.1:1") {
		t.Errorf("unreachable MySQL: %s", r)
	}
}
