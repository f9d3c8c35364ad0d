package e2e_test

import (
	"bytes"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// The crash tests move a large table (and a child table with a foreign key
// to it) in batches of crashBatch rows, kill one side mid-way, and check
// what the receiver kept: a whole number of batches, consistent with its
// cursor, and the rest on the next sync.
const (
	crashParents  = 80_000
	crashChildren = 10_000
	crashTotal    = crashParents + crashChildren
	crashBatch    = 500
)

const crashSchema = `
CREATE TABLE big(id INTEGER PRIMARY KEY, a TEXT NOT NULL, b INTEGER, c REAL);
CREATE TABLE tag(id INTEGER PRIMARY KEY, big_id INTEGER NOT NULL REFERENCES big(id), label TEXT);`

// crashTemplate is an initialized node with the rows, made once and copied
// by each test (each copy is only ever synced with new, empty nodes, so
// sharing its node id is harmless).
var crashTemplate = sync.OnceValues(func() (string, error) {
	path := filepath.Join(tmp, "crash-template.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		return "", err
	}
	defer db.Close()
	for _, q := range []string{crashSchema, "BEGIN",
		fmt.Sprintf(`WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < %d)
			INSERT INTO big SELECT i, 'row ' || i, i * 7, i / 3.0 FROM s`, crashParents),
		fmt.Sprintf(`INSERT INTO tag SELECT id, id * 3, 'tag of ' || (id * 3) FROM big WHERE id <= %d`, crashChildren),
		"COMMIT"} {
		if _, err := db.Exec(q); err != nil {
			return "", fmt.Errorf("%s: %w", q, err)
		}
	}
	db.Close()
	cmd := exec.Command(bin, "init", "--db", path, "--all", "--name", "big")
	cmd.Env = env()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("rowsync init: %v: %s", err, out)
	}
	if _, err := os.Stat(path + "-wal"); err == nil {
		return "", fmt.Errorf("%s-wal is left after rowsync init: the template cannot be copied", path)
	}
	return path, nil
})

// crashNodes returns a copy of the template with the rows, and an empty
// initialized node with the same schema.
func crashNodes(tb testing.TB) (full, empty string) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("crash tests move a large table: skipped with -short")
	}
	tmpl, err := crashTemplate()
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	full, empty = filepath.Join(dir, "full.db"), filepath.Join(dir, "empty.db")
	copyFile(tb, tmpl, full)
	execSQL(tb, empty, crashSchema)
	ok(tb, "init", "--db", empty, "--all", "--name", "empty")
	return full, empty
}

// rowCount returns the rows of both tables.
func rowCount(tb testing.TB, db *sql.DB) int64 {
	tb.Helper()
	return queryInt(tb, db, `SELECT (SELECT count(*) FROM big) + (SELECT count(*) FROM tag)`)
}

// killMidway waits until the receiver holds more than after rows but not
// all, then calls kill. It fails the test if the sync ends first.
func killMidway(tb testing.TB, receiver string, after int64, done <-chan struct{}, kill func()) {
	tb.Helper()
	ro := open(tb, receiver, true)
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-done:
			tb.Fatalf("the sync ended before it could be killed midway (%d rows received)", rowCount(tb, ro))
		default:
		}
		if n := rowCount(tb, ro); n > after && n < crashTotal {
			kill()
			ro.Close()
			return
		}
		if time.Now().After(deadline) {
			kill()
			tb.Fatal("no rows arrived within 60s")
		}
		time.Sleep(time.Millisecond)
	}
}

// checkAfterCrash checks what a receiver killed (or left) mid-sync kept:
// an intact database, whole batches only, rows that agree with the cursor
// the receiver keeps for the sender, foreign keys that hold. It returns the
// number of rows kept.
func checkAfterCrash(tb testing.TB, receiver, sender, senderID string) int64 {
	tb.Helper()
	checkIntegrity(tb, receiver)
	rdb, sdb := open(tb, receiver, false), open(tb, sender, true)
	kept := rowCount(tb, rdb)
	if kept == 0 || kept >= crashTotal {
		tb.Fatalf("receiver kept %d of %d rows: not a crash midway", kept, crashTotal)
	}
	if kept%crashBatch != 0 {
		tb.Errorf("receiver kept %d rows: not a whole number of batches of %d", kept, crashBatch)
	}
	// Every row kept is at or below the cursor the receiver stored for the
	// sender, and every row of the sender at or below it was kept.
	for _, table := range []string{"big", "tag"} {
		var cursor int64
		err := rdb.QueryRow(`SELECT seq FROM _rowsync_cursors WHERE peer = ? AND tbl = ? AND kind = 0`, senderID, table).Scan(&cursor)
		if err == sql.ErrNoRows {
			cursor = 0
		} else if err != nil {
			tb.Fatal(err)
		}
		id := queryInt(tb, sdb, `SELECT id FROM _rowsync_tables WHERE name = ?`, table)
		below := queryInt(tb, sdb, fmt.Sprintf(`SELECT count(*) FROM _rowsync_shadow_%d WHERE seq <= ?`, id), cursor)
		have := queryInt(tb, rdb, `SELECT count(*) FROM "`+table+`"`)
		if have != below {
			tb.Errorf("%s: receiver has %d rows, the sender has %d at or below the receiver's cursor %d", table, have, below, cursor)
		}
	}
	tb.Logf("receiver kept %d of %d rows", kept, crashTotal)
	return kept
}

// process is a subprocess of the binary running in the background.
type process struct {
	cmd  *exec.Cmd
	out  bytes.Buffer
	done chan struct{}
}

func start(tb testing.TB, args ...string) *process {
	tb.Helper()
	p := &process{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Env = env()
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() {
		p.cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// TestKillClientMidPull kills `rowsync sync` while it applies the batches it
// pulls from a server.
func TestKillClientMidPull(t *testing.T) {
	hub, node := crashNodes(t)
	srv := serve(t, hub, "--batch-rows", fmt.Sprint(crashBatch))

	p := start(t, "sync", "--db", node, srv.url)
	// Once the child table has started: batches span both tables.
	killMidway(t, node, crashParents, p.done, func() { p.cmd.Process.Kill() })
	<-p.done
	if p.cmd.ProcessState.Success() {
		t.Fatalf("the killed sync exited 0: %s", p.out.String())
	}

	kept := checkAfterCrash(t, node, hub, status(t, hub).Node.ID)
	// The next sync resumes where the killed one stopped.
	if sent, received := syncCounts(t, "--db", node, srv.url); sent != 0 || received != crashTotal-kept {
		t.Errorf("the sync after the crash sent %d and received %d rows, want 0 and %d", sent, received, crashTotal-kept)
	}
	ok(t, "verify", "--db", node, srv.url)
	checkIntegrity(t, node)
}

// TestKillServerMidPush kills `rowsync serve` while it applies the batches a
// client pushes to it.
func TestKillServerMidPush(t *testing.T) {
	node, hub := crashNodes(t)
	srv := serve(t, hub)

	p := start(t, "sync", "--db", node, srv.url, "--push-only", "--batch-rows", fmt.Sprint(crashBatch))
	killMidway(t, hub, crashParents/3, p.done, srv.kill)
	<-p.done
	if p.cmd.ProcessState.Success() {
		t.Fatalf("the sync exited 0 although its server was killed: %s", p.out.String())
	}
	t.Logf("the client said: %s", bytes.TrimSpace(p.out.Bytes()))

	kept := checkAfterCrash(t, hub, node, status(t, node).Node.ID)
	srv = serve(t, hub)
	if sent, received := syncCounts(t, "--db", node, srv.url); sent != crashTotal-kept || received != 0 {
		t.Errorf("the sync after the crash sent %d and received %d rows, want %d and 0", sent, received, crashTotal-kept)
	}
	ok(t, "verify", "--db", node, srv.url)
	checkIntegrity(t, hub)
}
