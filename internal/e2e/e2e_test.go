package e2e_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// bin is the rowsync binary built by TestMain; moduleRoot the directory of
// go.mod; tmp a directory for files shared by the tests.
var bin, moduleRoot, tmp string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err == nil {
		_, err = os.Stat(filepath.Join(root, "go.mod"))
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: module root not found: %v\n", err)
		return 1
	}
	moduleRoot = root
	tmp, err = os.MkdirTemp("", "rowsync-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	bin = filepath.Join(tmp, "rowsync")
	build := exec.Command("go", "build", "-o", bin, "./cmd/rowsync")
	build.Dir = moduleRoot
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/rowsync: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// result is what one run of the binary did.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
}

// env is the environment of the binary: this one without ROWSYNC_DB.
func env() []string {
	var out []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "ROWSYNC_DB=") {
			out = append(out, e)
		}
	}
	return out
}

// rs runs the binary to its end.
func rs(tb testing.TB, args ...string) result {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		tb.Fatalf("rowsync %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// ok runs the binary and fails the test unless it exits 0.
func ok(tb testing.TB, args ...string) result {
	tb.Helper()
	r := rs(tb, args...)
	if r.code != 0 {
		tb.Fatalf("rowsync %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// server is a `rowsync serve` subprocess.
type server struct {
	cmd    *exec.Cmd
	url    string
	stderr *bytes.Buffer
	done   chan struct{}
	err    error // of Wait, once done is closed
}

// freePort returns a loopback port that was free a moment ago.
func freePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// serve starts `rowsync serve --db db` on a free loopback port and waits
// until it answers; it is stopped when the test ends.
func serve(tb testing.TB, db string, extra ...string) *server {
	tb.Helper()
	for try := 0; ; try++ {
		s, err := startServer(tb, db, freePort(tb), extra...)
		if err == nil {
			tb.Cleanup(s.stop)
			return s
		}
		if try == 2 {
			tb.Fatal(err)
		}
	}
}

func startServer(tb testing.TB, db string, port int, extra ...string) (*server, error) {
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	s := &server{url: "http://" + addr, stderr: &bytes.Buffer{}, done: make(chan struct{})}
	s.cmd = exec.Command(bin, append([]string{"serve", "--db", db, "--listen", addr}, extra...)...)
	s.cmd.Env = env()
	s.cmd.Stdout, s.cmd.Stderr = io.Discard, s.stderr
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-s.done:
			return nil, fmt.Errorf("rowsync serve exited: %v: %s", s.err, s.stderr)
		default:
		}
		if resp, err := c.Get(s.url + "/"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusNotFound {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			s.kill()
			return nil, fmt.Errorf("rowsync serve did not answer on %s within 30s", addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kill ends the server with SIGKILL and waits for it.
func (s *server) kill() {
	s.cmd.Process.Kill()
	<-s.done
}

// stop ends the server with SIGTERM (a clean shutdown), or SIGKILL if it
// takes too long.
func (s *server) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.kill()
	}
}

// open opens a SQLite file with foreign keys enforced; query_only makes
// the connection read-only.
func open(tb testing.TB, path string, queryOnly bool) *sql.DB {
	tb.Helper()
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)"
	if queryOnly {
		dsn += "&_pragma=query_only(1)"
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// exec runs statements on a database file in one connection.
func execSQL(tb testing.TB, path string, stmts ...string) {
	tb.Helper()
	db := open(tb, path, false)
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			tb.Fatalf("%s: %s: %v", filepath.Base(path), s, err)
		}
	}
	db.Close()
}

func queryInt(tb testing.TB, db *sql.DB, q string, args ...any) int64 {
	tb.Helper()
	var n int64
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		tb.Fatalf("%s: %v", q, err)
	}
	return n
}

func queryString(tb testing.TB, db *sql.DB, q string, args ...any) string {
	tb.Helper()
	var s string
	if err := db.QueryRow(q, args...).Scan(&s); err != nil {
		tb.Fatalf("%s: %v", q, err)
	}
	return s
}

// createFromSchema creates dst with the tables and indexes of src, without
// rowsync's bookkeeping and without rows.
func createFromSchema(tb testing.TB, src, dst string) {
	tb.Helper()
	s := open(tb, src, true)
	rows, err := s.Query(`SELECT sql FROM sqlite_schema WHERE type IN ('table', 'index') AND name NOT LIKE '\_rowsync%' ESCAPE '\'
		AND sql IS NOT NULL ORDER BY type = 'index', rowid`)
	if err != nil {
		tb.Fatal(err)
	}
	var stmts []string
	for rows.Next() {
		var q string
		if err := rows.Scan(&q); err != nil {
			tb.Fatal(err)
		}
		stmts = append(stmts, q)
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	rows.Close()
	if len(stmts) == 0 {
		tb.Fatalf("%s has no tables", src)
	}
	execSQL(tb, dst, stmts...)
}

// checkIntegrity checks SQLite's integrity and foreign keys.
func checkIntegrity(tb testing.TB, path string) {
	tb.Helper()
	db := open(tb, path, true)
	if got := queryString(tb, db, `PRAGMA integrity_check`); got != "ok" {
		tb.Errorf("%s: integrity_check: %s", filepath.Base(path), got)
	}
	rows, err := db.Query(`PRAGMA foreign_key_check`)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var table, parent string
		var rowid sql.NullInt64
		var fk int
		if err := rows.Scan(&table, &rowid, &parent, &fk); err != nil {
			tb.Fatal(err)
		}
		tb.Errorf("%s: foreign key violation: %s rowid %v references %s", filepath.Base(path), table, rowid, parent)
	}
}

// copyFile copies a database file (with no WAL pending) to a new writable
// file.
func copyFile(tb testing.TB, src, dst string) {
	tb.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		tb.Fatal(err)
	}
}

// nextMillisecond waits until the wall clock has moved on by a millisecond
// or more, so that two writes get versions in a known order.
func nextMillisecond() {
	now := time.Now().UnixMilli()
	for time.Now().UnixMilli() <= now+1 {
		time.Sleep(200 * time.Microsecond)
	}
}
