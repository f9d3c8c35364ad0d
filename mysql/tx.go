package mysql

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/rowsync/rowsync"
	"github.com/rowsync/rowsync/internal/bookkeeping"
)

// Tx implements rowsync.Tx on a connection of its own. A write
// transaction runs at READ COMMITTED and first locks the 'writer' row of
// _rowsync_state, which excludes every other rowsync writer of the
// database, in this process or another; a read transaction is one
// consistent snapshot (REPEATABLE READ, START TRANSACTION WITH CONSISTENT
// SNAPSHOT).
type Tx struct {
	d     *DB
	ctx   context.Context
	conn  *sql.Conn
	done  bool
	write bool
	// applying is the token BeginApply put in @rowsync_applying (0 when
	// not applying): the capture triggers mark what they log with it.
	applying int64
	// echoFrom holds, per table the engine wrote while applying, the
	// highest log id before its first write: its echoes come after.
	echoFrom map[*rowsync.Table]int64
	// read holds, per table id, what ReadLog returned (see DeleteLog).
	read map[int64]*logReads
	// changed holds, while applying, the keys (canonKey) of rows that an
	// application changed after this transaction folded the log: merging
	// an incoming row with their stale versions would overwrite a newer
	// local write, so the engine's writes to them are refused (held, and
	// retried after a new fold). See guard.
	changed map[*rowsync.Table]map[string]bool
}

// logReads records the log ids ReadLog returned and the id ranges it
// covered, (lo, hi]; in a write transaction also the ids it did not see
// and the keys it no longer returns (see ReadLog).
type logReads struct {
	ids   map[int64]bool
	spans [][2]int64
	// gaps are the id ranges [lo, hi] below entries already read that
	// were not visible then, and top the highest id read.
	gaps [][2]int64
	top  int64
	// blocked holds the keys (canonKey) with an entry that became visible
	// in a gap: their later entries are neither returned nor deleted.
	blocked map[string]bool
}

var (
	_ rowsync.Tx     = (*Tx)(nil)
	_ rowsync.BulkTx = (*Tx)(nil)
)

// Begin implements rowsync.Database.
func (d *DB) Begin(ctx context.Context, write bool) (rowsync.Tx, error) {
	conn, err := d.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin on %s: %w", d.addr, err)
	}
	t := &Tx{d: d, ctx: ctx, conn: conn, write: write, read: map[int64]*logReads{}}
	stmts := []string{"SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"}
	if write {
		stmts = []string{"SET TRANSACTION ISOLATION LEVEL READ COMMITTED", "START TRANSACTION"}
	}
	for _, s := range stmts {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			t.discard()
			return nil, fmt.Errorf("begin on %s: %w", d.addr, err)
		}
	}
	if write {
		var v string
		err := conn.QueryRowContext(ctx, `SELECT v FROM _rowsync_state WHERE k = 'writer' FOR UPDATE`).Scan(&v)
		if err != nil {
			t.end("ROLLBACK")
			if errNumber(err) == errNoSuchTable || err == sql.ErrNoRows {
				return nil, fmt.Errorf("begin on %s: %w", d.addr, rowsync.ErrNotInitialized)
			}
			return nil, fmt.Errorf("begin on %s: wait for other rowsync writers: %w", d.addr, err)
		}
	}
	return t, nil
}

// discard closes the connection without returning it to the pool.
func (t *Tx) discard() {
	t.done = true
	t.conn.Raw(func(any) error { return driver.ErrBadConn })
	t.conn.Close()
}

func (t *Tx) end(stmt string) error {
	if t.done {
		return nil
	}
	t.done = true
	ctx := context.Background()
	_, err := t.conn.ExecContext(ctx, stmt)
	if stmt == "COMMIT" && err != nil {
		t.conn.ExecContext(ctx, "ROLLBACK")
	}
	// The session variable must not outlive the transaction: the
	// connection goes back to the pool.
	if err == nil && t.applying != 0 {
		_, err = t.conn.ExecContext(ctx, "SET @rowsync_applying = NULL")
	}
	// A connection whose transaction could not be ended is not reused.
	if err != nil {
		t.conn.Raw(func(any) error { return driver.ErrBadConn })
	}
	t.conn.Close()
	return err
}

// Commit implements rowsync.Tx.
func (t *Tx) Commit() error {
	if t.done {
		return errors.New("commit: transaction already ended")
	}
	if err := t.end("COMMIT"); err != nil {
		return fmt.Errorf("commit on %s: %w", t.d.addr, err)
	}
	return nil
}

// Rollback implements rowsync.Tx; it does nothing after Commit.
func (t *Tx) Rollback() error { return t.end("ROLLBACK") }

func (t *Tx) exec(q string, args ...any) (sql.Result, error) {
	return t.conn.ExecContext(t.ctx, q, args...)
}

func (t *Tx) query(q string, args ...any) (*sql.Rows, error) {
	return t.conn.QueryContext(t.ctx, q, args...)
}

// wrap turns a server error into the error a Tx method returns: a
// *rowsync.ConstraintError for a row refused by the data or a constraint.
func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, errNotHeld) || isConstraint(err) {
		return &rowsync.ConstraintError{Err: fmt.Errorf("%s: %w", what, err)}
	}
	switch errNumber(err) {
	case errLockDeadlock:
		return fmt.Errorf("%s: %w (the server rolled back the whole transaction; the sync can be retried)", what, err)
	case errLockWaitTimer:
		return fmt.Errorf("%s: %w (an application transaction holds the row; the sync can be retried)", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// tableInfo is what a Tx needs of a tracked table, with its SQL fragments
// built once.
type tableInfo struct {
	cols     []colInfo
	collates []string // per column: its collation, for string columns
	keys     []colInfo
	table    string // quoted name
	log      string
	shadow   string
	// SELECT list of all columns (unqualified, and with alias b.)
	selectAll, selectAllB string
	// WHERE conditions matching a key on the table, the shadow, the log.
	userKey, shadowKey, logKey string
	// keyTuple is the shadow key as compared in an IN list, keyTupleArg
	// one key's placeholder tuple.
	keyTuple, keyTupleArg string
	// shadowKeyArgs are the placeholders of a key in a shadow insert;
	// shadowKeySelect selects the shadow key (alias s.).
	shadowKeyValues, shadowKeySelect string
	joinOn                           string
	logSelect                        string // key and all columns of the log
	logKeySelect                     string
	// userTuple is the key columns of the table as compared in an IN
	// list, userTupleArg one key's placeholders.
	userTuple, userTupleArg string
}

// info returns the SQL of a table, building it the first time.
func (d *DB) info(ctx context.Context, tb *rowsync.Table) (*tableInfo, error) {
	d.mu.Lock()
	ti := d.infos[tb]
	cs, known := d.charsets[tb.Name]
	d.mu.Unlock()
	if ti != nil {
		return ti, nil
	}
	if !known {
		// A table not read through Tables: learn its character sets.
		if _, _, _, err := d.introspect(ctx, d.db, tb.Name); err != nil {
			return nil, err
		}
		d.mu.Lock()
		cs = d.charsets[tb.Name]
		d.mu.Unlock()
	}
	ti = newTableInfo(tb, cs)
	d.mu.Lock()
	d.infos[tb] = ti
	d.mu.Unlock()
	return ti, nil
}

func newTableInfo(tb *rowsync.Table, cs map[string]colMeta) *tableInfo {
	ti := &tableInfo{table: quote(tb.Name), log: logName(tb.ID), shadow: shadowName(tb.ID)}
	var sel, selB, logSel []string
	for i, c := range tb.Columns {
		m := cs[c.Name]
		ci := newColInfo(c.Name, c.Type, m.charset)
		ti.cols = append(ti.cols, ci)
		ti.collates = append(ti.collates, m.collate)
		sel = append(sel, ci.selectExpr(quote(c.Name)))
		selB = append(selB, ci.selectExpr("b."+quote(c.Name)))
		logSel = append(logSel, ci.selectExpr(logCol(i)))
	}
	ti.selectAll, ti.selectAllB, ti.logSelect = join(sel, ", "), join(selB, ", "), join(logSel, ", ")
	var uk, sk, lk, tuple, tupleArg, skv, sks, on, lks, ut, uta []string
	for i, k := range tb.Key {
		ci := ti.cols[k]
		ti.keys = append(ti.keys, ci)
		col := quote(ci.name)
		kc := keyCol(i)
		lc := logCol(k)
		lks = append(lks, ci.selectExpr(lc))
		switch {
		case ci.collated():
			conv := "CONVERT(? USING " + ci.charset + ")"
			uk = append(uk, col+" = ? AND "+binaryOf(col)+" = "+binaryOf(conv))
			sk = append(sk, kc+" = "+conv)
			lk = append(lk, binaryOf(lc)+" = "+binaryOf(conv))
			tupleArg = append(tupleArg, conv)
			skv = append(skv, conv)
			sks = append(sks, "CONVERT(s."+kc+" USING "+ci.charset+")")
			eq := "b." + col + " = CONVERT(s." + kc + " USING " + ci.charset + ")"
			if c := ti.collates[k]; c != "" {
				eq += " COLLATE " + c
			}
			on = append(on, eq+" AND "+binaryOf("b."+col)+" = s."+kc)
		case ci.kind == kDecimal:
			cast := fmt.Sprintf("CAST(? AS DECIMAL(%d,%d))", ci.prec, ci.scale)
			uk = append(uk, col+" = "+cast)
			sk = append(sk, kc+" = "+cast)
			lk = append(lk, lc+" = "+cast)
			tupleArg = append(tupleArg, cast)
			skv = append(skv, "?")
			sks = append(sks, "s."+kc)
			on = append(on, "b."+col+" = s."+kc)
		default:
			uk = append(uk, col+" = ?")
			sk = append(sk, kc+" = ?")
			lk = append(lk, lc+" = ?")
			tupleArg = append(tupleArg, "?")
			skv = append(skv, "?")
			sks = append(sks, ci.selectExpr("s."+kc))
			on = append(on, "b."+col+" = s."+kc)
		}
		tuple = append(tuple, kc)
		ut = append(ut, col)
		if ci.kind == kDecimal {
			uta = append(uta, fmt.Sprintf("CAST(? AS DECIMAL(%d,%d))", ci.prec, ci.scale))
		} else {
			uta = append(uta, "?")
		}
	}
	ti.userTuple, ti.userTupleArg = "("+join(ut, ", ")+")", "("+join(uta, ", ")+")"
	ti.userKey, ti.shadowKey, ti.logKey = join(uk, " AND "), join(sk, " AND "), join(lk, " AND ")
	ti.keyTuple, ti.keyTupleArg = "("+join(tuple, ", ")+")", "("+join(tupleArg, ", ")+")"
	ti.shadowKeyValues, ti.shadowKeySelect, ti.joinOn = join(skv, ", "), join(sks, ", "), join(on, " AND ")
	ti.logKeySelect = join(lks, ", ")
	return ti
}

// keyArgs converts a key to the arguments of userKey (dup: a collated
// column's value is passed twice) or of the other key conditions. It
// returns an error wrapping errNotHeld for a key no row here can have.
func (ti *tableInfo) keyArgs(key []rowsync.Value, dup bool) ([]any, error) {
	out := make([]any, 0, 2*len(key))
	for i, v := range key {
		a, err := ti.keys[i].arg(v)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
		if dup && ti.keys[i].collated() {
			out = append(out, a)
		}
	}
	return out, nil
}

// canonKey is a map key for a primary key, in the canonical encoding of
// its columns' classes, so that a key sent by another engine in another
// form (a decimal as a Real) matches the key as read here.
func canonKey(tb *rowsync.Table, key []rowsync.Value) string {
	c := make([]rowsync.Value, len(key))
	for i, v := range key {
		c[i] = rowsync.Canonical(tb.Columns[tb.Key[i]].Class, v)
	}
	return string(rowsync.EncodeValues(c))
}

// scanRow scans the remaining columns of a row into dst, converting them
// by column.
func scanRow(rows *sql.Rows, cols []colInfo, dst []rowsync.Value, extra ...any) error {
	raw := make([]any, len(dst))
	ptrs := make([]any, 0, len(extra)+len(dst))
	ptrs = append(ptrs, extra...)
	for i := range raw {
		ptrs = append(ptrs, &raw[i])
	}
	if err := rows.Scan(ptrs...); err != nil {
		return err
	}
	for i, x := range raw {
		v, err := cols[i].read(x)
		if err != nil {
			return err
		}
		dst[i] = v
	}
	return nil
}

// LoadState implements rowsync.Tx.
func (t *Tx) LoadState() (rowsync.State, error) {
	var st rowsync.State
	rows, err := t.query(`SELECT k, v FROM _rowsync_state`)
	if err != nil {
		if errNumber(err) == errNoSuchTable {
			return st, rowsync.ErrNotInitialized
		}
		return st, fmt.Errorf("load state: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return st, err
		}
		switch k {
		case "node_id":
			st.NodeID = v
		case "name":
			st.Name = v
		case "clock":
			fmt.Sscan(v, &st.Clock)
		case "seq":
			fmt.Sscan(v, &st.Seq)
		}
	}
	return st, rows.Err()
}

// SaveState implements rowsync.Tx.
func (t *Tx) SaveState(st rowsync.State) error {
	_, err := t.exec(`INSERT INTO _rowsync_state(k, v) VALUES ('node_id', ?), ('name', ?), ('clock', ?), ('seq', ?)
		ON DUPLICATE KEY UPDATE v = VALUES(v)`, st.NodeID, st.Name, fmt.Sprint(st.Clock), fmt.Sprint(st.Seq))
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	return nil
}

// NodeIndex implements rowsync.Tx.
func (t *Tx) NodeIndex(id string) (int64, error) {
	var idx int64
	err := t.conn.QueryRowContext(t.ctx, `SELECT idx FROM _rowsync_nodes WHERE id = ?`, id).Scan(&idx)
	if err == nil {
		return idx, nil
	}
	if err != sql.ErrNoRows {
		return 0, err
	}
	res, err := t.exec(`INSERT INTO _rowsync_nodes(id) VALUES (?)`, id)
	if err != nil {
		return 0, fmt.Errorf("add node %s: %w", id, err)
	}
	return res.LastInsertId()
}

// NodeIDs implements rowsync.Tx.
func (t *Tx) NodeIDs() (map[int64]string, error) {
	rows, err := t.query(`SELECT idx, id FROM _rowsync_nodes`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	m := map[int64]string{}
	for rows.Next() {
		var i int64
		var id string
		if err := rows.Scan(&i, &id); err != nil {
			return nil, err
		}
		m[i] = id
	}
	return m, rows.Err()
}

// ReadLog implements rowsync.Tx. It remembers the ids it returned and the
// range it covered, for DeleteLog.
//
// A write transaction runs at READ COMMITTED, so every page is a snapshot
// of its own, and a later page can show an entry of a key whose earlier
// entry an earlier page could not see. Page 1 skips entry 5, an UPDATE of
// row k not committed yet; the update commits; a DELETE of k logs entry 9
// (the row lock made it wait for the update's commit; two entries of one
// transaction, which commit together, do the same); page 2 (ids > 6)
// returns the delete. The fold would stamp it, and the next fold entry 5
// after it: an update of a dead row, which the fold takes for an insert.
// The shadow would say alive where the table has no row, and the row
// would never be sent again (TestFoldPagesLateEntry). So every page, once
// read, looks for entries that appeared in the id gaps of the pages
// before it, and blocks their keys: entries of a blocked key are neither
// returned nor deleted for the rest of the transaction, and the next fold
// reads all of them in order. The look comes after the page: it sees at
// least what the page saw, so a key that the page shows written after
// its late entry is always blocked. A read transaction is one snapshot
// and needs none of this.
func (t *Tx) ReadLog(tb *rowsync.Table, after int64, limit int) ([]rowsync.LogEntry, error) {
	ti, err := t.d.info(t.ctx, tb)
	if err != nil {
		return nil, err
	}
	r := t.read[tb.ID]
	if r == nil {
		r = &logReads{ids: map[int64]bool{}, blocked: map[string]bool{}}
		t.read[tb.ID] = r
	}
	nw := maskWords(len(tb.Columns))
	masks := make([]string, nw)
	for i := range masks {
		masks[i] = fmt.Sprintf("COALESCE(m%d, 0)", i)
	}
	q := fmt.Sprintf(`SELECT id, op, wall, echo <> 0, %s, %s FROM %s WHERE id > ? ORDER BY id LIMIT ?`,
		join(masks, ", "), ti.logSelect, ti.log)
	for {
		page, err := t.readLogPage(tb, ti, q, nw, after, limit)
		if err != nil {
			return nil, err
		}
		if t.write {
			if err := t.blockLate(tb, ti, r); err != nil {
				return nil, err
			}
			// This page's gaps, above what earlier pages read.
			prev := max(after, r.top)
			for _, e := range page {
				if e.ID > prev+1 {
					r.gaps = append(r.gaps, [2]int64{prev + 1, e.ID - 1})
				}
				prev = max(prev, e.ID)
			}
			r.top = prev
		}
		hi := int64(math.MaxInt64)
		if len(page) >= limit && len(page) > 0 {
			hi = page[len(page)-1].ID
		}
		r.spans = append(r.spans, [2]int64{after, hi})
		var out []rowsync.LogEntry
		var noop []int64
		for _, e := range page {
			if t.write && r.blocked[canonKey(tb, keyOf(tb, e.Row))] {
				continue
			}
			// An update that changed no value (LogEntry.NoChange): the
			// fold would stamp nothing for it, and Send, which leaves out
			// the rows with entries in the log as changed since its fold,
			// would hold the row's last change back for good
			// (TestNoopUpdateDoesNotHoldBackSend). A write transaction
			// deletes it.
			if e.NoChange() {
				noop = append(noop, e.ID)
				continue
			}
			r.ids[e.ID] = true
			out = append(out, e)
		}
		if t.write {
			if err := t.deleteIDs(ti.log, noop); err != nil {
				return nil, fmt.Errorf("delete captured writes of %q: %w", tb.Name, err)
			}
		}
		// A full page whose entries were all left out: read on, so that the
		// caller does not take an empty page for the end of the log.
		if len(out) > 0 || len(page) < limit {
			return out, nil
		}
		after = page[len(page)-1].ID
	}
}

// readLogPage runs ReadLog's query q for one page.
func (t *Tx) readLogPage(tb *rowsync.Table, ti *tableInfo, q string, nw int, after int64, limit int) ([]rowsync.LogEntry, error) {
	rows, err := t.query(q, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read captured writes of %q: %w", tb.Name, err)
	}
	defer rows.Close()
	var out []rowsync.LogEntry
	for rows.Next() {
		e := rowsync.LogEntry{Row: make([]rowsync.Value, len(tb.Columns)), Mask: make([]uint64, nw)}
		extra := []any{&e.ID, &e.Op, &e.Wall, &e.Applied}
		ms := make([]int64, nw)
		for i := range ms {
			extra = append(extra, &ms[i])
		}
		if err := scanRow(rows, ti.cols, e.Row, extra...); err != nil {
			return nil, fmt.Errorf("read captured writes of %q: %w", tb.Name, err)
		}
		for i, m := range ms {
			e.Mask[i] = uint64(m)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// blockLate blocks the keys of the entries now visible in r's gaps (see
// ReadLog).
func (t *Tx) blockLate(tb *rowsync.Table, ti *tableInfo, r *logReads) error {
	for gaps := r.gaps; len(gaps) > 0; {
		part := gaps[:min(len(gaps), 500)]
		gaps = gaps[len(part):]
		conds := make([]string, len(part))
		args := make([]any, 0, 2*len(part))
		for i, g := range part {
			conds[i] = "id BETWEEN ? AND ?"
			args = append(args, g[0], g[1])
		}
		rows, err := t.query(fmt.Sprintf(`SELECT %s FROM %s WHERE %s`, ti.logKeySelect, ti.log, join(conds, " OR ")), args...)
		if err != nil {
			return fmt.Errorf("read captured writes of %q: %w", tb.Name, err)
		}
		key := make([]rowsync.Value, len(tb.Key))
		for rows.Next() {
			if err := scanRow(rows, ti.keys, key); err != nil {
				rows.Close()
				return fmt.Errorf("read captured writes of %q: %w", tb.Name, err)
			}
			r.blocked[canonKey(tb, key)] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read captured writes of %q: %w", tb.Name, err)
		}
	}
	return nil
}

// keyOf returns the key of a full row.
func keyOf(tb *rowsync.Table, row []rowsync.Value) []rowsync.Value {
	key, _ := tb.SplitRow(row)
	return key
}

// NextLogOp implements rowsync.Tx.
func (t *Tx) NextLogOp(tb *rowsync.Table, after int64, key []rowsync.Value) (rowsync.LogOp, bool, error) {
	ti, err := t.d.info(t.ctx, tb)
	if err != nil {
		return 0, false, err
	}
	args, err := ti.keyArgs(key, false)
	if err != nil {
		return 0, false, nil // no row here can have this key
	}
	var op rowsync.LogOp
	err = t.conn.QueryRowContext(t.ctx, fmt.Sprintf(`SELECT op FROM %s WHERE id > ? AND %s ORDER BY id LIMIT 1`, ti.log, ti.logKey),
		append([]any{after}, args...)...).Scan(&op)
	if err == sql.ErrNoRows {
		return 0, false, nil
	}
	return op, err == nil, err
}

// DeleteLog implements rowsync.Tx. With ids nil it deletes the entries up
// to upTo that this transaction's ReadLog returned, not every entry up to
// upTo: log ids are allocated when an application's statement runs but
// become visible when its transaction commits, so an entry with an id
// below upTo may commit after the fold read past it. That entry stays for
// the next fold. (Ranges below upTo that ReadLog never covered are deleted
// whole, as the contract says.)
func (t *Tx) DeleteLog(tb *rowsync.Table, upTo int64, ids []int64) error {
	ti, err := t.d.info(t.ctx, tb)
	if err != nil {
		return err
	}
	r := t.read[tb.ID]
	if ids == nil {
		if r != nil {
			for id := range r.ids {
				if id <= upTo {
					ids = append(ids, id)
				}
			}
		}
		for _, g := range uncovered(r, upTo) {
			if _, err := t.exec(fmt.Sprintf(`DELETE FROM %s WHERE id > ? AND id <= ?`, ti.log), g[0], g[1]); err != nil {
				return fmt.Errorf("delete captured writes of %q: %w", tb.Name, err)
			}
		}
	}
	if err := t.deleteIDs(ti.log, ids); err != nil {
		return fmt.Errorf("delete captured writes of %q: %w", tb.Name, err)
	}
	if r != nil {
		for _, id := range ids {
			delete(r.ids, id)
		}
	}
	return nil
}

// uncovered returns the id ranges (lo, hi] within (0, upTo] that no
// ReadLog of r covered.
func uncovered(r *logReads, upTo int64) [][2]int64 {
	var spans [][2]int64
	if r != nil {
		spans = append(spans, r.spans...)
	}
	var out [][2]int64
	pos := int64(0) // everything <= pos is covered or emitted
	for pos < upTo {
		// The span that starts at or below pos and reaches furthest.
		best := pos
		for _, s := range spans {
			if s[0] <= pos && s[1] > best {
				best = s[1]
			}
		}
		if best > pos {
			pos = best
			continue
		}
		// A gap: up to the next span's start.
		next := upTo
		for _, s := range spans {
			if s[0] > pos && s[0] < next {
				next = s[0]
			}
		}
		out = append(out, [2]int64{pos, next})
		pos = next
	}
	return out
}

// deleteIDs deletes log entries by id, in chunks.
func (t *Tx) deleteIDs(log string, ids []int64) error {
	for len(ids) > 0 {
		n := min(len(ids), 1000)
		var b strings.Builder
		fmt.Fprintf(&b, "DELETE FROM %s WHERE id IN (", log)
		for i, id := range ids[:n] {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprint(&b, id)
		}
		b.WriteString(")")
		if _, err := t.exec(b.String()); err != nil {
			return err
		}
		ids = ids[n:]
	}
	return nil
}

// LogCount implements rowsync.Tx.
func (t *Tx) LogCount(tb *rowsync.Table) (int64, error) {
	var n int64
	err := t.conn.QueryRowContext(t.ctx, fmt.Sprintf(`SELECT COUNT(*) FROM %s`, logName(tb.ID))).Scan(&n)
	return n, err
}

// GetShadow implements rowsync.Tx.
func (t *Tx) GetShadow(tb *rowsync.Table, key []rowsync.Value) (*rowsync.Shadow, error) {
	ti, err := t.d.info(t.ctx, tb)
	if err != nil {
		return nil, err
	}
	args, err := ti.keyArgs(key, false)
	if err != nil {
		return nil, nil // no row here can have this key
	}
	if err := t.guard(tb, ti, [][]rowsync.Value{key}); err != nil {
		return nil, err
	}
	sh := &rowsync.Shadow{Key: key}
	err = t.conn.QueryRowContext(t.ctx, fmt.Sprintf(`SELECT seq, del, src, meta, dead FROM %s WHERE %s`, ti.shadow, ti.shadowKey), args...).
		Scan(&sh.Seq, &sh.Deleted, &sh.Src, &sh.Meta, &sh.Dead)
	if err == sql.ErrNoRows {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read bookkeeping of %q: %w", tb.Name, err)
	}
	return sh, nil
}

// GetShadows implements rowsync.BulkTx.
func (t *Tx) GetShadows(tb *rowsync.Table, keys [][]rowsync.Value) ([]*rowsync.Shadow, error) {
	ti, err := t.d.info(t.ctx, tb)
	if err != nil {
		return nil, err
	}
	if err := t.guard(tb, ti, keys); err != nil {
		return nil, err
	}
	out := make([]*rowsync.Shadow, len(keys))
	pos := map[string]int{}
	var args []any
	var tuples []string
	for i, k := range keys {
		a, err := ti.keyArgs(k, false)
		if err != nil {
			continue // no row here can have this key
		}
		pos[canonKey(tb, k)] = i
		args = append(args, a...)
		tuples = append(tuples, ti.keyTupleArg)
	}
	if len(tuples) == 0 {
		return out, nil
	}
	q := fmt.Sprintf(`SELECT seq, del, src, meta, dead, %s FROM %s AS s WHERE %s IN (%s)`,
		ti.shadowKeySelect, ti.shadow, ti.keyTuple, join(tuples, ", "))
	rows, err := t.query(q, args...)
	if err != nil {
		return nil, fmt.Errorf("read bookkeeping of %q: %w", tb.Name, err)
	}
	defer rows.Close()
	for rows.Next() {
		sh := &rowsync.Shadow{Key: make([]rowsync.Value, len(tb.Key))}
		if err := scanRow(rows, ti.keys, sh.Key, &sh.Seq, &sh.Deleted, &sh.Src, &sh.Meta, &sh.Dead); err != nil {
			return nil, fmt.Errorf("read bookkeeping of %q: %w", tb.Name, err)
		}
		if i, ok := pos[canonKey(tb, sh.Key)]; ok {
			sh.Key = keys[i]
			out[i] = sh
		}
	}
	return out, rows.Err()
}

// guard runs, while the engine applies rows, before it reads the
// bookkeeping of rows it is about to merge and write. It locks the rows
// (so that no application writes them until this transaction ends), then
// notes which of them an application changed after this transaction's
// fold: their captured writes are still in the log, unmarked. The
// engine's write to such a row is refused as a constraint error, so the
// engine holds the incoming row and merges it again after a new fold,
// against versions that include the application's write.
func (t *Tx) guard(tb *rowsync.Table, ti *tableInfo, keys [][]rowsync.Value) error {
	if t.applying == 0 || len(keys) == 0 {
		return nil
	}
	var args []any
	var tuples []string
	for _, k := range keys {
		a, err := ti.keyArgs(k, false)
		if err != nil {
			continue
		}
		args = append(args, a...)
		tuples = append(tuples, ti.userTupleArg)
	}
	if len(tuples) == 0 {
		return nil
	}
	rows, err := t.query(fmt.Sprintf(`SELECT 1 FROM %s WHERE %s IN (%s) FOR UPDATE`, ti.table, ti.userTuple, join(tuples, ", ")), args...)
	if err != nil {
		return wrap("lock rows of "+tb.Name, err)
	}
	for rows.Next() {
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return wrap("lock rows of "+tb.Name, err)
	}
	// Entries this transaction folded are deleted; what is left unmarked
	// was committed since (updates that changed nothing aside).
	noop := make([]string, maskWords(len(tb.Columns)))
	for i := range noop {
		noop[i] = fmt.Sprintf("COALESCE(m%d, 0) = 0", i)
	}
	rows, err = t.query(fmt.Sprintf(`SELECT %s FROM %s WHERE echo = 0 AND NOT (op = 2 AND %s)`, ti.logKeySelect, ti.log, join(noop, " AND ")))
	if err != nil {
		return fmt.Errorf("read the log of %q: %w", tb.Name, err)
	}
	defer rows.Close()
	key := make([]rowsync.Value, len(tb.Key))
	for rows.Next() {
		if err := scanRow(rows, ti.keys, key); err != nil {
			return err
		}
		if t.changed == nil {
			t.changed = map[*rowsync.Table]map[string]bool{}
		}
		if t.changed[tb] == nil {
			t.changed[tb] = map[string]bool{}
		}
		t.changed[tb][canonKey(tb, key)] = true
	}
	return rows.Err()
}

// checkUnchanged refuses the engine's write to a row an application
// changed after the fold (see guard).
func (t *Tx) checkUnchanged(tb *rowsync.Table, key []rowsync.Value) error {
	if t.applying == 0 || !t.changed[tb][canonKey(tb, key)] {
		return nil
	}
	return &rowsync.ConstraintError{Err: fmt.Errorf("row %s of %q was changed by another transaction while rowsync applied rows; held to be merged again",
		rowsync.FormatKey(key), tb.Name)}
}

// PutShadow implements rowsync.Tx.
func (t *Tx) PutShadow(tb *rowsync.Table, sh *rowsync.Shadow) error {
	return t.PutShadows(tb, []*rowsync.Shadow{sh})
}

// PutShadows implements rowsync.BulkTx.
func (t *Tx) PutShadows(tb *rowsync.Table, ss []*rowsync.Shadow) error {
	if len(ss) == 0 {
		return nil
	}
	ti, err := t.d.info(t.ctx, tb)
	if err != nil {
		return err
	}
	cols := make([]string, 0, len(tb.Key)+5)
	for i := range tb.Key {
		cols = append(cols, keyCol(i))
	}
	cols = append(cols, "seq", "del", "src", "meta", "dead")
	tuple := "(" + ti.shadowKeyValues + ", ?, ?, ?, ?, ?)"
	var args []any
	tuples := make([]string, len(ss))
	for i, sh := range ss {
		ka, err := ti.keyArgs(sh.Key, false)
		if err != nil {
			return fmt.Errorf("write bookkeeping of %q: %w", tb.Name, err)
		}
		meta := sh.Meta
		if meta == nil {
			meta = []byte{}
		}
		var dead any
		if sh.Dead != nil {
			dead = sh.Dead
		}
		args = append(append(args, ka...), sh.Seq, sh.Deleted, sh.Src, meta, dead)
		tuples[i] = tuple
	}
	q := fmt.Sprintf(`INSERT INTO %s(%s) VALUES %s ON DUPLICATE KEY UPDATE seq = VALUES(seq), del = VALUES(del),
		src = VALUES(src), meta = VALUES(meta), dead = VALUES(dead)`, ti.shadow, join(cols, ", "), join(tuples, ", "))
	if _, err := t.exec(q, args...); err != nil {
		return fmt.Errorf("write bookkeeping of %q: %w", tb.Name, err)
	}
	return nil
}

// Changes implements rowsync.Tx.
func (t *Tx) Changes(tb *rowsync.Table, kind rowsync.ChangeKind, after, upTo, excludeSrc int64, limit int) ([]rowsync.StoredChange, error) {
	ti, err := t.d.info(t.ctx, tb)
	if err != nil {
		return nil, err
	}
	var q string
	if kind == rowsync.KindLive {
		q = fmt.Sprintf(`SELECT s.seq, s.src, s.meta, %s, %s FROM %s AS s JOIN %s AS b ON %s
			WHERE s.del = 0 AND s.seq > ? AND s.seq <= ? AND s.src <> ? ORDER BY s.seq LIMIT ?`,
			ti.shadowKeySelect, ti.selectAllB, ti.shadow, ti.table, ti.joinOn)
	} else {
		q = fmt.Sprintf(`SELECT s.seq, s.src, s.meta, s.dead, %s FROM %s AS s
			WHERE s.del = 1 AND s.seq > ? AND s.seq <= ? AND s.src <> ? ORDER BY s.seq LIMIT ?`,
			ti.shadowKeySelect, ti.shadow)
	}
	if excludeSrc == 0 {
		excludeSrc = -1
	}
	rows, err := t.query(q, after, upTo, excludeSrc, limit)
	if err != nil {
		return nil, fmt.Errorf("read changes of %q: %w", tb.Name, err)
	}
	defer rows.Close()
	var out []rowsync.StoredChange
	cols := append(append([]colInfo{}, ti.keys...), ti.cols...)
	for rows.Next() {
		var c rowsync.StoredChange
		c.Deleted = kind == rowsync.KindDead
		if kind == rowsync.KindLive {
			vals := make([]rowsync.Value, len(tb.Key)+len(tb.Columns))
			if err := scanRow(rows, cols, vals, &c.Seq, &c.Src, &c.Meta); err != nil {
				return nil, err
			}
			c.Key, c.Row = vals[:len(tb.Key)], vals[len(tb.Key):]
		} else {
			c.Key = make([]rowsync.Value, len(tb.Key))
			if err := scanRow(rows, ti.keys, c.Key, &c.Seq, &c.Src, &c.Meta, &c.Dead); err != nil {
				return nil, err
			}
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// CountChanges implements rowsync.Tx.
func (t *Tx) CountChanges(tb *rowsync.Table, after int64) (int64, error) {
	var n int64
	err := t.conn.QueryRowContext(t.ctx, fmt.Sprintf(`SELECT COUNT(*) FROM %s WHERE del IN (0, 1) AND seq > ?`, shadowName(tb.ID)), after).Scan(&n)
	return n, err
}

// GetRow implements rowsync.Tx.
func (t *Tx) GetRow(tb *rowsync.Table, key []rowsync.Value) ([]rowsync.Value, bool, error) {
	ti, err := t.d.info(t.ctx, tb)
	if err != nil {
		return nil, false, err
	}
	args, err := ti.keyArgs(key, true)
	if err != nil {
		return nil, false, nil // no row here can have this key
	}
	rows, err := t.query(fmt.Sprintf(`SELECT %s FROM %s WHERE %s`, ti.selectAll, ti.table, ti.userKey), args...)
	if err != nil {
		return nil, false, fmt.Errorf("read row of %q: %w", tb.Name, err)
	}
	defer rows.Close()
	if !rows.Next() {
		return nil, false, rows.Err()
	}
	row := make([]rowsync.Value, len(tb.Columns))
	if err := scanRow(rows, ti.cols, row); err != nil {
		return nil, false, fmt.Errorf("read row of %q: %w", tb.Name, err)
	}
	return row, true, nil
}

// rowArgs converts a full row to arguments.
func (ti *tableInfo) rowArgs(row []rowsync.Value) ([]any, error) {
	out := make([]any, len(row))
	for i, v := range row {
		a, err := ti.cols[i].arg(v)
		if err != nil {
			return nil, err
		}
		out[i] = a
	}
	return out, nil
}

// InsertRow implements rowsync.Tx.
func (t *Tx) InsertRow(tb *rowsync.Table, row []rowsync.Value) error {
	return t.InsertRows(tb, [][]rowsync.Value{row})
}

// InsertRows implements rowsync.BulkTx: one multi-row INSERT, which InnoDB
// applies all or nothing.
func (t *Tx) InsertRows(tb *rowsync.Table, rows [][]rowsync.Value) error {
	if len(rows) == 0 {
		return nil
	}
	ti, err := t.d.info(t.ctx, tb)
	if err != nil {
		return err
	}
	what := "insert into " + tb.Name
	names := make([]string, len(tb.Columns))
	for i, c := range tb.Columns {
		names[i] = quote(c.Name)
	}
	tuple := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(tb.Columns)), ", ") + ")"
	tuples := make([]string, len(rows))
	args := make([]any, 0, len(rows)*len(tb.Columns))
	for i, row := range rows {
		key, _ := tb.SplitRow(row)
		if err := t.checkUnchanged(tb, key); err != nil {
			return err
		}
		a, err := ti.rowArgs(row)
		if err != nil {
			return wrap(what, err)
		}
		args = append(args, a...)
		tuples[i] = tuple
	}
	if err := t.noteEcho(tb, ti); err != nil {
		return err
	}
	q := fmt.Sprintf(`INSERT INTO %s(%s) VALUES %s`, ti.table, join(names, ", "), join(tuples, ", "))
	if _, err := t.exec(q, args...); err != nil {
		return wrap(what, err)
	}
	return nil
}

// UpdateRow implements rowsync.Tx.
func (t *Tx) UpdateRow(tb *rowsync.Table, key []rowsync.Value, cols []int, vals []rowsync.Value) error {
	ti, err := t.d.info(t.ctx, tb)
	if err != nil {
		return err
	}
	what := "update " + tb.Name
	if err := t.checkUnchanged(tb, key); err != nil {
		return err
	}
	sets := make([]string, len(cols))
	args := make([]any, 0, len(cols)+2*len(key))
	for i, c := range cols {
		sets[i] = quote(tb.Columns[c].Name) + " = ?"
		a, err := ti.cols[c].arg(vals[i])
		if err != nil {
			return wrap(what, err)
		}
		args = append(args, a)
	}
	ka, err := ti.keyArgs(key, true)
	if err != nil {
		return wrap(what, err)
	}
	if err := t.noteEcho(tb, ti); err != nil {
		return err
	}
	q := fmt.Sprintf(`UPDATE %s SET %s WHERE %s`, ti.table, join(sets, ", "), ti.userKey)
	if _, err := t.exec(q, append(args, ka...)...); err != nil {
		return wrap(what, err)
	}
	return nil
}

// DeleteRow implements rowsync.Tx.
func (t *Tx) DeleteRow(tb *rowsync.Table, key []rowsync.Value) error {
	ti, err := t.d.info(t.ctx, tb)
	if err != nil {
		return err
	}
	what := "delete from " + tb.Name
	if err := t.checkUnchanged(tb, key); err != nil {
		return err
	}
	ka, err := ti.keyArgs(key, true)
	if err != nil {
		return wrap(what, err)
	}
	if err := t.noteEcho(tb, ti); err != nil {
		return err
	}
	if _, err := t.exec(fmt.Sprintf(`DELETE FROM %s WHERE %s`, ti.table, ti.userKey), ka...); err != nil {
		return wrap(what, err)
	}
	return nil
}

// noteEcho records, before the engine's first write to a table while it
// applies rows, the highest log id of the table: the echoes of its writes
// get higher ids (ids are allocated in increasing order), so EndApply
// looks only above it.
func (t *Tx) noteEcho(tb *rowsync.Table, ti *tableInfo) error {
	if t.applying == 0 {
		return nil
	}
	if _, ok := t.echoFrom[tb]; ok {
		return nil
	}
	var last int64
	if err := t.conn.QueryRowContext(t.ctx, fmt.Sprintf(`SELECT COALESCE(MAX(id), 0) FROM %s`, ti.log)).Scan(&last); err != nil {
		return fmt.Errorf("read log of %q: %w", tb.Name, err)
	}
	t.echoFrom[tb] = last
	return nil
}

// ScanRows implements rowsync.Tx.
func (t *Tx) ScanRows(tb *rowsync.Table, fn func([]rowsync.Value) error) error {
	ti, err := t.d.info(t.ctx, tb)
	if err != nil {
		return err
	}
	rows, err := t.query(fmt.Sprintf(`SELECT %s FROM %s`, ti.selectAll, ti.table))
	if err != nil {
		return fmt.Errorf("read rows of %q: %w", tb.Name, err)
	}
	defer rows.Close()
	row := make([]rowsync.Value, len(tb.Columns))
	for rows.Next() {
		if err := scanRow(rows, ti.cols, row); err != nil {
			return fmt.Errorf("read rows of %q: %w", tb.Name, err)
		}
		if err := fn(row); err != nil {
			return err
		}
	}
	return rows.Err()
}

// BeginApply implements rowsync.Tx: it sets the session variable the
// capture triggers read to a token of this apply. The triggers still log
// the engine's writes, marked with the token, and so are the writes of
// application triggers that the engine's writes fire.
func (t *Tx) BeginApply() error {
	var b [8]byte
	rand.Read(b[:])
	token := int64(binary.LittleEndian.Uint64(b[:])&math.MaxInt64) | 1
	if _, err := t.exec(`SET @rowsync_applying = ?`, token); err != nil {
		return fmt.Errorf("begin apply: %w", err)
	}
	t.applying = token
	t.echoFrom = map[*rowsync.Table]int64{}
	return nil
}

// EndApply implements rowsync.Tx: it clears the session variable and
// deletes the entries marked with this apply's token whose key the engine
// wrote (echoes); marked entries of other rows (application triggers
// fired by the engine's writes) stay, as local writes.
func (t *Tx) EndApply(applied map[*rowsync.Table][][]rowsync.Value) error {
	token, from := t.applying, t.echoFrom
	if token == 0 {
		return nil
	}
	if _, err := t.exec(`SET @rowsync_applying = NULL`); err != nil {
		return fmt.Errorf("end apply: %w", err)
	}
	t.applying, t.echoFrom, t.changed = 0, nil, nil
	for tb, keys := range applied {
		after, ok := from[tb]
		if !ok {
			continue // the engine wrote nothing to it
		}
		ti, err := t.d.info(t.ctx, tb)
		if err != nil {
			return err
		}
		set := make(map[string]bool, len(keys))
		for _, k := range keys {
			set[canonKey(tb, k)] = true
		}
		// A plain read: it takes no locks, so it never waits for an
		// application's uncommitted log entries (which carry no token).
		rows, err := t.query(fmt.Sprintf(`SELECT id, %s FROM %s WHERE id > ? AND echo = ?`, ti.logKeySelect, ti.log), after, token)
		if err != nil {
			return fmt.Errorf("read echoes in the log of %q: %w", tb.Name, err)
		}
		var echo []int64
		key := make([]rowsync.Value, len(tb.Key))
		for rows.Next() {
			var id int64
			if err := scanRow(rows, ti.keys, key, &id); err != nil {
				rows.Close()
				return err
			}
			if set[canonKey(tb, key)] {
				echo = append(echo, id)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if err := t.deleteIDs(ti.log, echo); err != nil {
			return fmt.Errorf("delete echoes in the log of %q: %w", tb.Name, err)
		}
	}
	return nil
}

// Cursors implements rowsync.Tx.
func (t *Tx) Cursors(peer string) ([]rowsync.Cursor, error) {
	rows, err := t.query(`SELECT `+bookkeeping.CursorColumns+` FROM _rowsync_cursors WHERE peer = ? ORDER BY tbl, kind`, peer)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return bookkeeping.Cursors(rows)
}

// SetCursor implements rowsync.Tx.
func (t *Tx) SetCursor(peer string, c rowsync.Cursor) error {
	_, err := t.exec(`INSERT INTO _rowsync_cursors(peer, tbl, kind, seq) VALUES (?, ?, ?, ?) ON DUPLICATE KEY UPDATE seq = VALUES(seq)`,
		peer, c.Table, int64(c.Kind), c.Seq)
	return err
}

// GetPeer implements rowsync.Tx.
func (t *Tx) GetPeer(id string) (*rowsync.PeerRecord, error) {
	p, err := bookkeeping.ScanPeer(t.conn.QueryRowContext(t.ctx, `SELECT `+bookkeeping.PeerColumns+` FROM _rowsync_peers WHERE id = ?`, id))
	if err == sql.ErrNoRows {
		return nil, nil
	}
	return p, err
}

// PutPeer implements rowsync.Tx.
func (t *Tx) PutPeer(p *rowsync.PeerRecord) error {
	var last int64
	if !p.LastSync.IsZero() {
		last = p.LastSync.UnixMilli()
	}
	_, err := t.exec(`INSERT INTO _rowsync_peers(`+bookkeeping.PeerColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON DUPLICATE KEY UPDATE name = VALUES(name), url = VALUES(url), last_sync = VALUES(last_sync), sync_count = VALUES(sync_count),
		rows_in = VALUES(rows_in), rows_out = VALUES(rows_out), acked_seq = VALUES(acked_seq), last_error = VALUES(last_error)`,
		p.ID, p.Name, p.URL, last, p.SyncCount, p.RowsIn, p.RowsOut, p.AckedSeq, p.LastError)
	return err
}

// Peers implements rowsync.Tx.
func (t *Tx) Peers() ([]rowsync.PeerRecord, error) {
	rows, err := t.query(`SELECT ` + bookkeeping.PeerColumns + ` FROM _rowsync_peers ORDER BY name, id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return bookkeeping.Peers(rows)
}

// dedup hashes the fields that identify a conflict or a held change.
func dedup(vs ...rowsync.Value) []byte {
	h := sha256.Sum256(rowsync.EncodeValues(vs))
	return h[:]
}

// AddConflict implements rowsync.Tx.
func (t *Tx) AddConflict(c *rowsync.Conflict) (bool, error) {
	pk := rowsync.EncodeValues(c.Key)
	key := dedup(rowsync.TextValue(c.Table), rowsync.BlobValue(pk), rowsync.TextValue(c.Column), rowsync.TextValue(c.Kind),
		rowsync.IntValue(c.WinnerV.HLC), rowsync.TextValue(c.WinnerV.Node), rowsync.IntValue(c.LoserV.HLC), rowsync.TextValue(c.LoserV.Node))
	// ON DUPLICATE KEY UPDATE that changes nothing: 0 rows affected for
	// a duplicate (unlike INSERT IGNORE, other errors still fail).
	res, err := t.exec(`INSERT INTO _rowsync_conflicts(at, tbl, pk, col, kind, winner, winner_hlc, winner_node,
		loser, loser_hlc, loser_node, peer, detail, dedup) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON DUPLICATE KEY UPDATE id = id`,
		c.At.UnixMilli(), c.Table, pk, c.Column, c.Kind, bookkeeping.EncodeValue(c.Winner), c.WinnerV.HLC, c.WinnerV.Node,
		bookkeeping.EncodeValue(c.Loser), c.LoserV.HLC, c.LoserV.Node, c.Peer, c.Detail, key)
	if err != nil {
		return false, fmt.Errorf("record conflict: %w", err)
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// Conflicts implements rowsync.Tx.
func (t *Tx) Conflicts() ([]rowsync.Conflict, error) {
	rows, err := t.query(`SELECT ` + bookkeeping.ConflictColumns + ` FROM _rowsync_conflicts ORDER BY id DESC`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return bookkeeping.Conflicts(rows)
}

// ResolveConflicts implements rowsync.Tx.
func (t *Tx) ResolveConflicts(table string, key []rowsync.Value) error {
	_, err := t.exec(`UPDATE _rowsync_conflicts SET resolved = 1 WHERE tbl = ? AND pk = ? AND kind = ?`,
		table, rowsync.EncodeValues(key), rowsync.ConflictConstraint)
	return err
}

// PutHeld implements rowsync.Tx. REPLACE gives the change a new id, as
// SQLite's INSERT OR REPLACE does.
func (t *Tx) PutHeld(h *rowsync.Held) error {
	pk := rowsync.EncodeValues(h.Key)
	_, err := t.exec("REPLACE INTO _rowsync_held(tbl, pk, peer, `change`, error, at, dedup) VALUES (?, ?, ?, ?, ?, ?, ?)",
		h.Table, pk, h.Peer, h.Change, h.Error, h.At.UnixMilli(), dedup(rowsync.TextValue(h.Table), rowsync.BlobValue(pk), rowsync.TextValue(h.Peer)))
	return err
}

// HeldChanges implements rowsync.Tx.
func (t *Tx) HeldChanges() ([]rowsync.Held, error) {
	rows, err := t.query("SELECT id, tbl, pk, peer, `change`, error, at FROM _rowsync_held ORDER BY id")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return bookkeeping.Held(rows)
}

// DeleteHeld implements rowsync.Tx.
func (t *Tx) DeleteHeld(id int64) error {
	_, err := t.exec(`DELETE FROM _rowsync_held WHERE id = ?`, id)
	return err
}

// Savepoint implements rowsync.Tx.
func (t *Tx) Savepoint(name string) error {
	_, err := t.exec("SAVEPOINT " + quote(name))
	return err
}

// RollbackTo implements rowsync.Tx.
func (t *Tx) RollbackTo(name string) error {
	_, err := t.exec("ROLLBACK TO SAVEPOINT " + quote(name))
	return err
}

// Release implements rowsync.Tx.
func (t *Tx) Release(name string) error {
	_, err := t.exec("RELEASE SAVEPOINT " + quote(name))
	return err
}
