package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"time"
)

// The write transactions of a DB share one connection, kept open with the
// statements they prepared. SQLite lets one transaction write at a time
// anyway (BEGIN IMMEDIATE), so nothing is lost by queueing writers of this
// process on one connection, and the engine's statements (the multi-row
// inserts of a chunk: hundreds of parameters, and the capture triggers
// compiled in) are parsed once instead of once per batch: parsing was a
// tenth of an initial sync's receiving CPU (docs/BENCHMARKS.md).

// maxWriterStmts bounds the prepared statements kept on the writer
// connection; the least recently used is closed beyond it. A chunk's
// multi-row statements are the largest (a program of several opcodes per
// value of up to 256 rows, the capture trigger compiled in).
const maxWriterStmts = 64

// writerWait bounds how long Begin waits for the writer connection, like
// the busy timeout bounds the wait for SQLite's write lock.
const writerWait = 30 * time.Second

// writer is the connection of write transactions and its statements.
type writer struct {
	conn  *sql.Conn
	stmts map[string]*cachedStmt
	clock int64
}

type cachedStmt struct {
	s    *sql.Stmt
	used int64
}

// acquireWriter waits for the writer connection (opening it if needed)
// and holds it until releaseWriter.
func (d *DB) acquireWriter(ctx context.Context) (*writer, error) {
	timer := time.NewTimer(writerWait)
	defer timer.Stop()
	select {
	case d.wsem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-timer.C:
		return nil, fmt.Errorf("database is locked: another write transaction of this process has held it for %v", writerWait)
	}
	if d.w == nil {
		conn, err := d.db.Conn(ctx)
		if err != nil {
			<-d.wsem
			return nil, err
		}
		d.w = &writer{conn: conn, stmts: map[string]*cachedStmt{}}
	}
	return d.w, nil
}

// releaseWriter gives the writer connection back. A connection whose
// transaction could not be ended (broken is true) is closed and not
// reused, with its statements.
func (d *DB) releaseWriter(broken bool) {
	if d.w != nil && (broken || d.closed.Load()) {
		d.w.close(broken)
		d.w = nil
	}
	<-d.wsem
}

// closeWriter closes the writer connection, or, if a transaction holds it,
// has releaseWriter close it when the transaction ends.
func (d *DB) closeWriter() {
	d.closed.Store(true)
	select {
	case d.wsem <- struct{}{}:
		if d.w != nil {
			d.w.close(false)
			d.w = nil
		}
		<-d.wsem
	default:
	}
}

func (w *writer) close(broken bool) {
	for _, c := range w.stmts {
		c.s.Close()
	}
	w.stmts = nil
	if broken {
		w.conn.Raw(func(any) error { return driver.ErrBadConn })
	}
	w.conn.Close()
}

// stmt returns the prepared statement of q on the writer connection.
func (w *writer) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	w.clock++
	if c, ok := w.stmts[q]; ok {
		c.used = w.clock
		return c.s, nil
	}
	s, err := w.conn.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if len(w.stmts) >= maxWriterStmts {
		var oldest string
		var at int64 = -1
		for k, c := range w.stmts {
			if at < 0 || c.used < at {
				oldest, at = k, c.used
			}
		}
		w.stmts[oldest].s.Close()
		delete(w.stmts, oldest)
	}
	w.stmts[q] = &cachedStmt{s: s, used: w.clock}
	return s, nil
}
