package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/rowsync/rowsync"
	"github.com/rowsync/rowsync/internal/bookkeeping"
)

// Tx implements rowsync.Tx on one connection. Write transactions start
// with BEGIN IMMEDIATE, so they hold SQLite's write lock from the start.
type Tx struct {
	ctx  context.Context
	conn *sql.Conn
	// A write transaction runs on the writer w of db and prepares its
	// statements there; a read transaction keeps its own in stmts.
	db    *DB
	w     *writer
	stmts map[string]*sql.Stmt
	done  bool
	write bool
	// echo holds, between BeginApply and EndApply, for every row the
	// engine wrote, the last id of its table's log right after the
	// engine's last write of it: the row's captured writes up to there
	// are echoes, later ones (a cascade from another row) are not.
	echo map[*rowsync.Table]map[string]int64
	// quiet holds, between BeginApply and EndApply, whether writes to a
	// table can only come from the engine: no application trigger exists
	// and no foreign key of the table cascades. Such a table's log gets
	// nothing but echoes while the engine applies, so no bound per row is
	// kept and EndApply empties its log.
	quiet       map[*rowsync.Table]bool
	appTriggers bool
	// applied is set by BeginApply: the fold before it emptied the logs
	// and no other connection writes while this transaction does, so
	// every entry read from then on is this transaction's own, written
	// while it applied (LogEntry.Applied).
	applied bool
	// fresh holds, per table, keys GetShadows found no bookkeeping for:
	// PutShadows writes those with a multi-row statement.
	fresh map[*rowsync.Table]map[string]bool
}

var _ rowsync.Tx = (*Tx)(nil)

// Begin implements rowsync.Database.
// Write transactions run on the DB's writer connection, whose prepared
// statements outlive the transaction (writer.go); read transactions take a
// connection of the pool and prepare their statements for themselves.
func (d *DB) Begin(ctx context.Context, write bool) (rowsync.Tx, error) {
	if write {
		w, err := d.acquireWriter(ctx)
		if err != nil {
			return nil, fmt.Errorf("begin: %w", err)
		}
		if _, err := w.conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
			d.releaseWriter(false)
			return nil, fmt.Errorf("begin: %w", err)
		}
		return &Tx{ctx: ctx, conn: w.conn, db: d, w: w, write: true}, nil
	}
	conn, err := d.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
		conn.Close()
		return nil, fmt.Errorf("begin: %w", err)
	}
	return &Tx{ctx: ctx, conn: conn, stmts: map[string]*sql.Stmt{}}, nil
}

func (t *Tx) end(stmt string) error {
	if t.done {
		return nil
	}
	t.done = true
	for _, s := range t.stmts {
		s.Close()
	}
	_, err := t.conn.ExecContext(context.Background(), stmt)
	if stmt == "COMMIT" && err != nil {
		t.conn.ExecContext(context.Background(), "ROLLBACK")
	}
	if t.w != nil {
		// A connection whose transaction could not be ended is not reused.
		t.db.releaseWriter(err != nil)
		return err
	}
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
		if isConstraint(err) {
			// A deferred foreign key (see DeferForeignKeys) does not hold;
			// end has rolled the transaction back.
			return &rowsync.ConstraintError{Err: fmt.Errorf("commit: %w", err)}
		}
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

var _ rowsync.DeferTx = (*Tx)(nil)

// DeferForeignKeys implements rowsync.DeferTx: SQLite can defer every
// foreign key to the commit (PRAGMA defer_foreign_keys, which ends with
// the transaction).
func (t *Tx) DeferForeignKeys() (bool, error) {
	_, err := t.conn.ExecContext(t.ctx, "PRAGMA defer_foreign_keys = ON")
	return err == nil, err
}

// Rollback implements rowsync.Tx; it does nothing after Commit.
func (t *Tx) Rollback() error { return t.end("ROLLBACK") }

func (t *Tx) stmt(q string) (*sql.Stmt, error) {
	if t.w != nil {
		return t.w.stmt(t.ctx, q)
	}
	if s, ok := t.stmts[q]; ok {
		return s, nil
	}
	s, err := t.conn.PrepareContext(t.ctx, q)
	if err != nil {
		return nil, err
	}
	t.stmts[q] = s
	return s, nil
}

// exec and query run the short statements of the engine. They check the
// transaction's context before each statement but run it with a context
// that cannot be cancelled: given a cancellable one, the driver starts a
// goroutine per statement to watch it, which costs more than the point
// statements themselves.
func (t *Tx) exec(q string, args ...any) (sql.Result, error) {
	if err := t.ctx.Err(); err != nil {
		return nil, err
	}
	s, err := t.stmt(q)
	if err != nil {
		return nil, err
	}
	return s.ExecContext(context.Background(), args...)
}

// scanRow runs the one-row query q and scans its columns into dest.
func (t *Tx) scanRow(q string, args []any, dest ...any) error {
	s, err := t.stmt(q)
	if err != nil {
		return err
	}
	return s.QueryRowContext(context.Background(), args...).Scan(dest...)
}

func (t *Tx) query(q string, args ...any) (*sql.Rows, error) {
	if err := t.ctx.Err(); err != nil {
		return nil, err
	}
	s, err := t.stmt(q)
	if err != nil {
		return nil, err
	}
	return s.QueryContext(context.Background(), args...)
}

func anyArgs(vs []rowsync.Value) []any {
	out := make([]any, len(vs))
	for i, v := range vs {
		out[i] = v.Any()
	}
	return out
}

// scanValues scans n columns into Values.
func scanValues(rows *sql.Rows, dst []rowsync.Value, extra ...any) error {
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
		v, err := rowsync.ValueOf(x)
		if err != nil {
			return err
		}
		dst[i] = v
	}
	return nil
}

// valueExprs selects columns without their declared type (a bare column
// of type DATETIME would be parsed into time.Time by the driver): unary +
// keeps the stored value and storage class exactly.
func valueExprs(prefix string, names []string) string {
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = "+" + prefix + n
	}
	return strings.Join(parts, ", ")
}

func quotedColumns(tb *rowsync.Table) []string {
	out := make([]string, len(tb.Columns))
	for i, c := range tb.Columns {
		out[i] = quote(c.Name)
	}
	return out
}

func keyMatch(tb *rowsync.Table) string {
	parts := make([]string, len(tb.Key))
	for i, k := range tb.Key {
		parts[i] = quote(tb.Columns[k].Name) + " IS ?"
	}
	return strings.Join(parts, " AND ")
}

func shadowKeyMatch(tb *rowsync.Table) string {
	parts := make([]string, len(tb.Key))
	for i := range tb.Key {
		parts[i] = keyCol(i) + " IS ?"
	}
	return strings.Join(parts, " AND ")
}

func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	if isConstraint(err) {
		return &rowsync.ConstraintError{Err: err}
	}
	if isMismatch(err) {
		// Only a value of the wrong type for an INTEGER PRIMARY KEY gets
		// here: the peer sent a value that no row of this table can have.
		return fmt.Errorf("%s: %w: a value of the wrong type for the column: %v", what, rowsync.ErrMalformed, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// LoadState implements rowsync.Tx.
func (t *Tx) LoadState() (rowsync.State, error) {
	var st rowsync.State
	rows, err := t.query(`SELECT key, value FROM _rowsync_state`)
	if err != nil {
		if strings.Contains(err.Error(), "no such table") {
			return st, rowsync.ErrNotInitialized
		}
		return st, err
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var v any
		if err := rows.Scan(&k, &v); err != nil {
			return st, err
		}
		switch k {
		case "node_id":
			st.NodeID, _ = v.(string)
		case "name":
			st.Name, _ = v.(string)
		case "clock":
			st.Clock, _ = v.(int64)
		case "seq":
			st.Seq, _ = v.(int64)
		}
	}
	return st, rows.Err()
}

// SaveState implements rowsync.Tx.
func (t *Tx) SaveState(st rowsync.State) error {
	for k, v := range map[string]any{"node_id": st.NodeID, "name": st.Name, "clock": st.Clock, "seq": st.Seq} {
		if _, err := t.exec(`INSERT OR REPLACE INTO _rowsync_state(key, value) VALUES (?, ?)`, k, v); err != nil {
			return fmt.Errorf("save state: %w", err)
		}
	}
	return nil
}

// NodeIndex implements rowsync.Tx.
func (t *Tx) NodeIndex(id string) (int64, error) {
	if _, err := t.exec(`INSERT OR IGNORE INTO _rowsync_nodes(id) VALUES (?)`, id); err != nil {
		return 0, err
	}
	s, err := t.stmt(`SELECT idx FROM _rowsync_nodes WHERE id = ?`)
	if err != nil {
		return 0, err
	}
	var idx int64
	err = s.QueryRowContext(context.Background(), id).Scan(&idx)
	return idx, err
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

// ReadLog implements rowsync.Tx.
func (t *Tx) ReadLog(tb *rowsync.Table, after int64, limit int) ([]rowsync.LogEntry, error) {
	nw := maskWords(len(tb.Columns))
	cols := make([]string, len(tb.Columns))
	for i := range cols {
		cols[i] = logCol(i)
	}
	masks := make([]string, nw)
	for i := range masks {
		masks[i] = fmt.Sprintf("coalesce(m%d, 0)", i)
	}
	q := fmt.Sprintf(`SELECT rowid, op, wall, %s, %s FROM %s WHERE rowid > ? ORDER BY rowid LIMIT ?`,
		strings.Join(masks, ", "), strings.Join(cols, ", "), logName(tb.ID))
	rows, err := t.query(q, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []rowsync.LogEntry
	for rows.Next() {
		e := rowsync.LogEntry{Row: make([]rowsync.Value, len(tb.Columns)), Mask: make([]uint64, nw), Applied: t.applied}
		extra := []any{&e.ID, &e.Op, &e.Wall}
		ms := make([]int64, nw)
		for i := range ms {
			extra = append(extra, &ms[i])
		}
		if err := scanValues(rows, e.Row, extra...); err != nil {
			return nil, err
		}
		for i, m := range ms {
			e.Mask[i] = uint64(m)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// NextLogOp implements rowsync.Tx.
func (t *Tx) NextLogOp(tb *rowsync.Table, after int64, key []rowsync.Value) (rowsync.LogOp, bool, error) {
	parts := make([]string, len(tb.Key))
	for i, k := range tb.Key {
		parts[i] = logCol(k) + " IS ?"
	}
	q := fmt.Sprintf(`SELECT op FROM %s WHERE rowid > ? AND %s ORDER BY rowid LIMIT 1`, logName(tb.ID), strings.Join(parts, " AND "))
	s, err := t.stmt(q)
	if err != nil {
		return 0, false, err
	}
	var op rowsync.LogOp
	err = s.QueryRowContext(context.Background(), append([]any{after}, anyArgs(key)...)...).Scan(&op)
	if err == sql.ErrNoRows {
		return 0, false, nil
	}
	return op, err == nil, err
}

// DeleteLog implements rowsync.Tx.
func (t *Tx) DeleteLog(tb *rowsync.Table, upTo int64, ids []int64) error {
	if ids == nil {
		_, err := t.exec(fmt.Sprintf(`DELETE FROM %s WHERE rowid <= ?`, logName(tb.ID)), upTo)
		return err
	}
	for _, id := range ids {
		if _, err := t.exec(fmt.Sprintf(`DELETE FROM %s WHERE rowid = ?`, logName(tb.ID)), id); err != nil {
			return err
		}
	}
	return nil
}

// LogCount implements rowsync.Tx.
func (t *Tx) LogCount(tb *rowsync.Table) (int64, error) {
	var n int64
	err := t.scanRow(fmt.Sprintf(`SELECT count(*) FROM %s`, logName(tb.ID)), nil, &n)
	return n, err
}

// GetShadow implements rowsync.Tx.
func (t *Tx) GetShadow(tb *rowsync.Table, key []rowsync.Value) (*rowsync.Shadow, error) {
	s, err := t.stmt(fmt.Sprintf(`SELECT seq, del, src, meta, dead FROM %s WHERE %s`, shadowName(tb.ID), shadowKeyMatch(tb)))
	if err != nil {
		return nil, err
	}
	sh := &rowsync.Shadow{Key: key}
	err = s.QueryRowContext(context.Background(), anyArgs(key)...).Scan(&sh.Seq, &sh.Deleted, &sh.Src, &sh.Meta, &sh.Dead)
	if err == sql.ErrNoRows {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read bookkeeping of %q: %w", tb.Name, err)
	}
	return sh, nil
}

// PutShadow implements rowsync.Tx.
func (t *Tx) PutShadow(tb *rowsync.Table, sh *rowsync.Shadow) error {
	return t.putShadow(putShadowQuery(tb, 1), tb, sh)
}

// putShadowQuery is the INSERT OR REPLACE of the bookkeeping of n rows,
// whose arguments shadowArgs gives row by row.
func putShadowQuery(tb *rowsync.Table, n int) string {
	cols := make([]string, 0, len(tb.Key)+5)
	for i := range tb.Key {
		cols = append(cols, keyCol(i))
	}
	cols = append(cols, "seq", "del", "src", "meta", "dead")
	return fmt.Sprintf(`INSERT OR REPLACE INTO %s(%s) VALUES %s`, shadowName(tb.ID), strings.Join(cols, ", "), marks(n, len(cols)))
}

// shadowArgs appends the arguments of sh for putShadowQuery to args.
func shadowArgs(args []any, sh *rowsync.Shadow) []any {
	return append(append(args, anyArgs(sh.Key)...), sh.Seq, sh.Deleted, sh.Src, sh.Meta, sh.Dead)
}

func (t *Tx) putShadow(q string, tb *rowsync.Table, sh *rowsync.Shadow) error {
	if _, err := t.exec(q, shadowArgs(nil, sh)...); err != nil {
		return fmt.Errorf("write bookkeeping of %q: %w", tb.Name, err)
	}
	return nil
}

// Changes implements rowsync.Tx.
func (t *Tx) Changes(tb *rowsync.Table, kind rowsync.ChangeKind, after, upTo, excludeSrc int64, limit int) ([]rowsync.StoredChange, error) {
	q := changesQuery(tb, kind)
	if excludeSrc == 0 {
		excludeSrc = -1
	}
	rows, err := t.query(q, after, upTo, excludeSrc, limit)
	if err != nil {
		return nil, fmt.Errorf("read changes: %w", err)
	}
	defer rows.Close()
	var out []rowsync.StoredChange
	for rows.Next() {
		var c rowsync.StoredChange
		c.Deleted = kind == rowsync.KindDead
		if kind == rowsync.KindLive {
			vals := make([]rowsync.Value, len(tb.Key)+len(tb.Columns))
			if err := scanValues(rows, vals, &c.Seq, &c.Src, &c.Meta); err != nil {
				return nil, err
			}
			c.Key, c.Row = vals[:len(tb.Key)], vals[len(tb.Key):]
		} else {
			c.Key = make([]rowsync.Value, len(tb.Key))
			if err := scanValues(rows, c.Key, &c.Seq, &c.Src, &c.Meta, &c.Dead); err != nil {
				return nil, err
			}
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// changesQuery reads the changes of one kind after a cursor, in seq order.
// The shadow table is read twice: c walks the (del, seq, src) index alone
// (it holds the key), so the rows that came from the receiver are skipped
// there, before the bookkeeping row s and the user's row b are looked up.
// Skipping a row then costs an index entry, not a lookup in the shadow
// table: after a node received a large pull, its next push skips every row
// of it. The parameters are after, upTo, the excluded src and the limit.
func changesQuery(tb *rowsync.Table, kind rowsync.ChangeKind) string {
	keys := make([]string, len(tb.Key))
	sameKey := make([]string, len(tb.Key))
	for i := range tb.Key {
		keys[i] = keyCol(i)
		sameKey[i] = fmt.Sprintf("s.%s IS c.%s", keyCol(i), keyCol(i))
	}
	from := fmt.Sprintf(`%s AS c JOIN %s AS s ON %s`, shadowName(tb.ID), shadowName(tb.ID), strings.Join(sameKey, " AND "))
	if kind == rowsync.KindLive {
		on := make([]string, len(tb.Key))
		for i, k := range tb.Key {
			on[i] = fmt.Sprintf("b.%s IS c.%s", quote(tb.Columns[k].Name), keyCol(i))
		}
		return fmt.Sprintf(`SELECT s.seq, s.src, s.meta, %s, %s FROM %s JOIN %s AS b ON %s
			WHERE c.del = 0 AND c.seq > ? AND c.seq <= ? AND c.src <> ? ORDER BY c.seq LIMIT ?`,
			valueExprs("c.", keys), valueExprs("b.", quotedColumns(tb)), from, quote(tb.Name), strings.Join(on, " AND "))
	}
	return fmt.Sprintf(`SELECT s.seq, s.src, s.meta, s.dead, %s FROM %s
		WHERE c.del = 1 AND c.seq > ? AND c.seq <= ? AND c.src <> ? ORDER BY c.seq LIMIT ?`,
		valueExprs("c.", keys), from)
}

// CountChanges implements rowsync.Tx.
func (t *Tx) CountChanges(tb *rowsync.Table, after int64) (int64, error) {
	var n int64
	err := t.scanRow(fmt.Sprintf(`SELECT count(*) FROM %s WHERE del IN (0, 1) AND seq > ?`, shadowName(tb.ID)), []any{after}, &n)
	return n, err
}

// GetRow implements rowsync.Tx.
func (t *Tx) GetRow(tb *rowsync.Table, key []rowsync.Value) ([]rowsync.Value, bool, error) {
	q := fmt.Sprintf(`SELECT %s FROM %s WHERE %s`, valueExprs("", quotedColumns(tb)), quote(tb.Name), keyMatch(tb))
	rows, err := t.query(q, anyArgs(key)...)
	if err != nil {
		return nil, false, fmt.Errorf("read row of %q: %w", tb.Name, err)
	}
	defer rows.Close()
	if !rows.Next() {
		return nil, false, rows.Err()
	}
	row := make([]rowsync.Value, len(tb.Columns))
	if err := scanValues(rows, row); err != nil {
		return nil, false, err
	}
	return row, true, nil
}

// InsertRow implements rowsync.Tx. The engine's writes say OR ABORT: a
// conflict clause in the table's definition (UNIQUE ON CONFLICT REPLACE,
// IGNORE, ROLLBACK…) would otherwise remove another row, drop the write
// silently or end the batch's transaction, where the engine needs the
// statement refused (TestUniqueColumnWithConflictClause).
func (t *Tx) InsertRow(tb *rowsync.Table, row []rowsync.Value) error {
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(tb.Columns)), ", ")
	q := fmt.Sprintf(`INSERT OR ABORT INTO %s(%s) VALUES (%s)`, quote(tb.Name), strings.Join(quotedColumns(tb), ", "), marks)
	if _, err := t.exec(q, anyArgs(row)...); err != nil {
		return wrap("insert into "+tb.Name, err)
	}
	key, _ := tb.SplitRow(row)
	return t.noteEcho(tb, key)
}

// UpdateRow implements rowsync.Tx, with OR ABORT as InsertRow.
func (t *Tx) UpdateRow(tb *rowsync.Table, key []rowsync.Value, cols []int, vals []rowsync.Value) error {
	sets := make([]string, len(cols))
	for i, c := range cols {
		sets[i] = quote(tb.Columns[c].Name) + " = ?"
	}
	q := fmt.Sprintf(`UPDATE OR ABORT %s SET %s WHERE %s`, quote(tb.Name), strings.Join(sets, ", "), keyMatch(tb))
	if _, err := t.exec(q, append(anyArgs(vals), anyArgs(key)...)...); err != nil {
		return wrap("update "+tb.Name, err)
	}
	return t.noteEcho(tb, key)
}

// DeleteRow implements rowsync.Tx.
func (t *Tx) DeleteRow(tb *rowsync.Table, key []rowsync.Value) error {
	if _, err := t.exec(fmt.Sprintf(`DELETE FROM %s WHERE %s`, quote(tb.Name), keyMatch(tb)), anyArgs(key)...); err != nil {
		return wrap("delete from "+tb.Name, err)
	}
	return t.noteEcho(tb, key)
}

// noteEcho records, while the engine applies rows, that it has just
// written a row: what the table's log holds for the row up to now is the
// echo of that write.
func (t *Tx) noteEcho(tb *rowsync.Table, keys ...[]rowsync.Value) error {
	if t.echo == nil {
		return nil
	}
	if quiet, err := t.isQuiet(tb); err != nil || quiet {
		return err
	}
	var last int64
	if err := t.scanRow(fmt.Sprintf(`SELECT coalesce(max(rowid), 0) FROM %s`, logName(tb.ID)), nil, &last); err != nil {
		return fmt.Errorf("read log of %q: %w", tb.Name, err)
	}
	if t.echo[tb] == nil {
		t.echo[tb] = map[string]int64{}
	}
	for _, key := range keys {
		t.echo[tb][string(rowsync.EncodeValues(key))] = last
	}
	return nil
}

// ScanRows implements rowsync.Tx.
func (t *Tx) ScanRows(tb *rowsync.Table, fn func([]rowsync.Value) error) error {
	rows, err := t.conn.QueryContext(t.ctx, fmt.Sprintf(`SELECT %s FROM %s`, valueExprs("", quotedColumns(tb)), quote(tb.Name)))
	if err != nil {
		return err
	}
	defer rows.Close()
	row := make([]rowsync.Value, len(tb.Columns))
	for rows.Next() {
		if err := scanValues(rows, row); err != nil {
			return err
		}
		if err := fn(row); err != nil {
			return err
		}
	}
	return rows.Err()
}

// BeginApply implements rowsync.Tx. SQLite has no session variable the
// capture triggers could read cheaply, so they fire for applied rows too;
// EndApply removes what they logged for the rows the engine wrote.
func (t *Tx) BeginApply() error {
	t.applied = true
	t.echo = map[*rowsync.Table]map[string]int64{}
	t.quiet = map[*rowsync.Table]bool{}
	var n int64
	if err := t.scanRow(`SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND name NOT LIKE '\_rowsync\_%' ESCAPE '\'`, nil, &n); err != nil {
		return fmt.Errorf("list triggers: %w", err)
	}
	t.appTriggers = n > 0
	return nil
}

// isQuiet reports whether only the engine writes to tb while it applies
// rows (see Tx.quiet).
func (t *Tx) isQuiet(tb *rowsync.Table) (bool, error) {
	if t.appTriggers {
		return false, nil
	}
	if q, ok := t.quiet[tb]; ok {
		return q, nil
	}
	var n int64
	if err := t.scanRow(`SELECT count(*) FROM pragma_foreign_key_list(?) WHERE on_delete NOT IN ('NO ACTION', 'RESTRICT') OR on_update NOT IN ('NO ACTION', 'RESTRICT')`, []any{tb.Name}, &n); err != nil {
		return false, fmt.Errorf("foreign keys of %q: %w", tb.Name, err)
	}
	t.quiet[tb] = n == 0
	return n == 0, nil
}

// EndApply implements rowsync.Tx: captured writes of rows the engine wrote
// are echoes and are dropped; the rest (cascades, application triggers) are
// local writes and stay in the log, including a cascade that hit a row the
// engine had written earlier in the transaction.
func (t *Tx) EndApply(applied map[*rowsync.Table][][]rowsync.Value) error {
	bounds := t.echo
	t.echo = nil
	defer func() { t.quiet = nil }()
	for tb, keys := range applied {
		if bounds != nil {
			quiet, err := t.isQuiet(tb)
			if err != nil {
				return err
			}
			if quiet {
				if _, err := t.exec(`DELETE FROM ` + logName(tb.ID)); err != nil {
					return fmt.Errorf("clear log of %q: %w", tb.Name, err)
				}
				continue
			}
		}
		set := make(map[string]int64, len(keys))
		for _, k := range keys {
			ks := string(rowsync.EncodeValues(k))
			if bounds == nil {
				set[ks] = math.MaxInt64 // BeginApply was not called
			} else if b, ok := bounds[tb][ks]; ok {
				set[ks] = b
			}
		}
		var after, last int64
		var keep bool
		var echo []int64
		for {
			es, err := t.ReadLog(tb, after, 4096)
			if err != nil {
				return err
			}
			if len(es) == 0 {
				break
			}
			for i := range es {
				key, _ := tb.SplitRow(es[i].Row)
				if b, ok := set[string(rowsync.EncodeValues(key))]; ok && es[i].ID <= b {
					echo = append(echo, es[i].ID)
				} else {
					keep = true
				}
			}
			after = es[len(es)-1].ID
			last = after
		}
		var err error
		if !keep && last > 0 {
			err = t.DeleteLog(tb, last, nil)
		} else if len(echo) > 0 {
			err = t.DeleteLog(tb, 0, echo)
		}
		if err != nil {
			return err
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
	_, err := t.exec(`INSERT OR REPLACE INTO _rowsync_cursors(peer, tbl, kind, seq) VALUES (?, ?, ?, ?)`, peer, c.Table, c.Kind, c.Seq)
	return err
}

// GetPeer implements rowsync.Tx.
func (t *Tx) GetPeer(id string) (*rowsync.PeerRecord, error) {
	s, err := t.stmt(`SELECT ` + bookkeeping.PeerColumns + ` FROM _rowsync_peers WHERE id = ?`)
	if err != nil {
		return nil, err
	}
	p, err := bookkeeping.ScanPeer(s.QueryRowContext(context.Background(), id))
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
	_, err := t.exec(`INSERT OR REPLACE INTO _rowsync_peers(`+bookkeeping.PeerColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
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

// AddConflict implements rowsync.Tx.
func (t *Tx) AddConflict(c *rowsync.Conflict) (bool, error) {
	res, err := t.exec(`INSERT OR IGNORE INTO _rowsync_conflicts(at, tbl, pk, col, kind, winner, winner_hlc, winner_node,
		loser, loser_hlc, loser_node, peer, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.At.UnixMilli(), c.Table, rowsync.EncodeValues(c.Key), c.Column, c.Kind, bookkeeping.EncodeValue(c.Winner), c.WinnerV.HLC, c.WinnerV.Node,
		bookkeeping.EncodeValue(c.Loser), c.LoserV.HLC, c.LoserV.Node, c.Peer, c.Detail)
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

// PutHeld implements rowsync.Tx.
func (t *Tx) PutHeld(h *rowsync.Held) error {
	_, err := t.exec(`INSERT OR REPLACE INTO _rowsync_held(tbl, pk, peer, change, error, at) VALUES (?, ?, ?, ?, ?, ?)`,
		h.Table, rowsync.EncodeValues(h.Key), h.Peer, h.Change, h.Error, h.At.UnixMilli())
	return err
}

// HeldChanges implements rowsync.Tx.
func (t *Tx) HeldChanges() ([]rowsync.Held, error) {
	rows, err := t.query(`SELECT id, tbl, pk, peer, change, error, at FROM _rowsync_held ORDER BY id`)
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
	_, err := t.conn.ExecContext(t.ctx, "SAVEPOINT "+quote(name))
	return err
}

// RollbackTo implements rowsync.Tx.
func (t *Tx) RollbackTo(name string) error {
	_, err := t.conn.ExecContext(t.ctx, "ROLLBACK TO "+quote(name))
	return err
}

// Release implements rowsync.Tx.
func (t *Tx) Release(name string) error {
	_, err := t.conn.ExecContext(t.ctx, "RELEASE "+quote(name))
	return err
}
