package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/rowsync/rowsync"
	"github.com/rowsync/rowsync/internal/bookkeeping"
)

// Tx implements rowsync.Tx on one pooled connection.
//
// A write transaction is READ COMMITTED and first takes the node's
// advisory lock (pg_advisory_xact_lock on a key derived from the schema),
// so rowsync writers of one schema run one at a time in every process,
// while each statement sees the latest committed state. A read transaction
// is REPEATABLE READ READ ONLY: one snapshot for the whole send.
type Tx struct {
	d     *DB
	ctx   context.Context
	tx    pgx.Tx
	write bool
	done  bool
	// logs holds, per table id, what this transaction's ReadLog calls saw
	// (see logState).
	logs map[int64]*logState
	// applying is set between BeginApply and EndApply; stale holds, per
	// table id, the keys with writes the fold did not see (guard.go).
	applying bool
	stale    map[int64]map[string]bool
	// echo holds, between BeginApply and EndApply, for every row the
	// engine wrote to a table that side effects can reach (sideEffects),
	// the highest log row ID right after the engine's last write of it:
	// its echo-marked entries up to there are echoes, later ones (a
	// cascade from another row's delete) are not. reach caches
	// sideEffects per table.
	echo  map[*rowsync.Table]map[string]int64
	reach map[*rowsync.Table]bool
}

var _ rowsync.Tx = (*Tx)(nil)

// Begin implements rowsync.Database.
func (d *DB) Begin(ctx context.Context, write bool) (rowsync.Tx, error) {
	opts := pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	if write {
		opts = pgx.TxOptions{IsoLevel: pgx.ReadCommitted}
	}
	tx, err := d.pool.BeginTx(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("begin on %s: %w", d.addr, err)
	}
	if write {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(`+lockKey+`)`, d.schema); err != nil {
			tx.Rollback(context.Background())
			return nil, fmt.Errorf("begin: take the writer lock of schema %q: %w", d.schema, err)
		}
	}
	return &Tx{d: d, ctx: ctx, tx: tx, write: write, logs: map[int64]*logState{}}, nil
}

// Commit implements rowsync.Tx.
func (t *Tx) Commit() error {
	if t.done {
		return fmt.Errorf("commit: %w", errTxDone)
	}
	t.done = true
	if err := t.tx.Commit(t.ctx); err != nil {
		t.tx.Rollback(context.Background())
		if isConstraint(err) {
			// A deferred foreign key (see DeferForeignKeys) does not hold.
			return &rowsync.ConstraintError{Err: fmt.Errorf("commit: %w", err)}
		}
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

var _ rowsync.DeferTx = (*Tx)(nil)

// DeferForeignKeys implements rowsync.DeferTx. Only a foreign key declared
// DEFERRABLE can wait for the commit on PostgreSQL (the default is NOT
// DEFERRABLE); it reports whether the schema has one.
func (t *Tx) DeferForeignKeys() (bool, error) {
	var any bool
	err := t.tx.QueryRow(t.ctx, `SELECT EXISTS (SELECT 1 FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid
		WHERE c.contype = 'f' AND c.condeferrable AND r.relnamespace = current_schema()::regnamespace)`).Scan(&any)
	if err != nil || !any {
		return false, err
	}
	_, err = t.tx.Exec(t.ctx, "SET CONSTRAINTS ALL DEFERRED")
	return err == nil, err
}

// Rollback implements rowsync.Tx; it does nothing after Commit.
func (t *Tx) Rollback() error {
	if t.done {
		return nil
	}
	t.done = true
	err := t.tx.Rollback(context.Background())
	if errors.Is(err, pgx.ErrTxClosed) {
		return nil
	}
	return err
}

func (t *Tx) info(tb *rowsync.Table) (*tableInfo, error) {
	return t.d.tableInfo(t.ctx, t.tx, tb)
}

// scanRow reads the current row of rows into dst via the columns' read
// conversions; the first skip values are returned raw.
func scanRow(rows pgx.Rows, cols []colInfo, dst []rowsync.Value, skip int) ([]any, error) {
	raw, err := rows.Values()
	if err != nil {
		return nil, err
	}
	if len(raw) != skip+len(cols) {
		return nil, fmt.Errorf("read row: %d values, want %d", len(raw), skip+len(cols))
	}
	for i := range cols {
		v, err := cols[i].toValue(raw[skip+i])
		if err != nil {
			return nil, err
		}
		dst[i] = v
	}
	return raw[:skip], nil
}

func (ti *tableInfo) keyCols(tb *rowsync.Table) []colInfo {
	out := make([]colInfo, len(tb.Key))
	for i, k := range tb.Key {
		out[i] = ti.cols[k]
	}
	return out
}

// selectCols is the select list of all columns of the user table.
func (ti *tableInfo) selectCols(prefix string) string {
	parts := make([]string, len(ti.cols))
	for i := range ti.cols {
		parts[i] = ti.cols[i].readExpr(prefix + quote(ti.cols[i].name))
	}
	return strings.Join(parts, ", ")
}

// keyArgs converts a key for the key's placeholders. A key value its
// column cannot hold is a malformed key from a peer: no row can have it.
func (ti *tableInfo) keyArgs(tb *rowsync.Table, key []rowsync.Value) ([]any, error) {
	if len(key) != len(tb.Key) {
		return nil, fmt.Errorf("%w: key of %d values for table %q with %d key columns", rowsync.ErrMalformed, len(key), tb.Name, len(tb.Key))
	}
	args := make([]any, len(key))
	for i, k := range tb.Key {
		a, err := ti.cols[k].arg(tb.Name, key[i])
		if err != nil {
			return nil, fmt.Errorf("%w: key %s: %v", rowsync.ErrMalformed, rowsync.FormatKey(key), err)
		}
		args[i] = a
	}
	return args, nil
}

// keyMatch is the WHERE condition on the key columns of the user table,
// with placeholders from $first.
func (ti *tableInfo) keyMatch(tb *rowsync.Table, prefix string, first int) string {
	parts := make([]string, len(tb.Key))
	for i, k := range tb.Key {
		c := &ti.cols[k]
		parts[i] = prefix + quote(c.name) + " = " + c.param(first+i)
	}
	return strings.Join(parts, " AND ")
}

// namedKeyMatch is the same for bookkeeping columns named by fn.
func (ti *tableInfo) namedKeyMatch(tb *rowsync.Table, fn func(i int) string, first int) string {
	parts := make([]string, len(tb.Key))
	for i, k := range tb.Key {
		parts[i] = fn(i) + " = " + ti.cols[k].param(first+i)
	}
	return strings.Join(parts, " AND ")
}

// wrap turns an error of a user-table write into a *rowsync.ConstraintError
// when a value or a constraint caused it.
func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	var ce *rowsync.ConstraintError
	if errors.As(err, &ce) {
		return err
	}
	if isConstraint(err) {
		return &rowsync.ConstraintError{Err: fmt.Errorf("%s: %w", what, err)}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// stmt is one statement of a guarded batch.
type stmt struct {
	q    string
	args []any
}

// guarded runs a statement that may fail on a value or a constraint inside
// a savepoint, pipelined with it in one round trip, so that a failure
// leaves the transaction usable.
func (t *Tx) guarded(q string, args ...any) error {
	return t.guardedAll([]stmt{{q, args}})
}

// guardedAll runs statements inside one savepoint, pipelined with it in
// one round trip (pgx Batch: SAVEPOINT, the statements, RELEASE). If one
// fails, a second round trip rolls back to the savepoint: none of them
// has an effect, and the transaction stays usable.
func (t *Tx) guardedAll(stmts []stmt) error {
	b := &pgx.Batch{}
	b.Queue(`SAVEPOINT _rowsync_w`)
	for _, st := range stmts {
		b.Queue(st.q, st.args...)
	}
	b.Queue(`RELEASE SAVEPOINT _rowsync_w`)
	br := t.tx.SendBatch(t.ctx, b)
	var err error
	for i := 0; i < b.Len() && err == nil; i++ {
		_, err = br.Exec()
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		return nil
	}
	if _, rerr := t.tx.Exec(t.ctx, `ROLLBACK TO SAVEPOINT _rowsync_w; RELEASE SAVEPOINT _rowsync_w`); rerr != nil {
		return fmt.Errorf("%w (and rolling back to the savepoint failed: %v)", err, rerr)
	}
	return err
}

// LoadState implements rowsync.Tx.
func (t *Tx) LoadState() (rowsync.State, error) {
	var st rowsync.State
	rows, err := t.tx.Query(t.ctx, `SELECT key, value FROM _rowsync_state`)
	if err != nil {
		return st, err
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
	if err := rows.Err(); err != nil {
		if sqlState(err) == codeUndefinedTable {
			return st, rowsync.ErrNotInitialized
		}
		return st, err
	}
	return st, nil
}

// SaveState implements rowsync.Tx.
func (t *Tx) SaveState(st rowsync.State) error {
	_, err := t.tx.Exec(t.ctx, `INSERT INTO _rowsync_state(key, value) VALUES ('node_id', $1), ('name', $2), ('clock', $3), ('seq', $4)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
		st.NodeID, st.Name, fmt.Sprint(st.Clock), fmt.Sprint(st.Seq))
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	return nil
}

// NodeIndex implements rowsync.Tx.
func (t *Tx) NodeIndex(id string) (int64, error) {
	var idx int64
	err := t.tx.QueryRow(t.ctx, `SELECT idx FROM _rowsync_nodes WHERE id = $1`, id).Scan(&idx)
	if err == nil {
		return idx, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return 0, err
	}
	err = t.tx.QueryRow(t.ctx, `INSERT INTO _rowsync_nodes(id) VALUES ($1) RETURNING idx`, id).Scan(&idx)
	return idx, err
}

// NodeIDs implements rowsync.Tx.
func (t *Tx) NodeIDs() (map[int64]string, error) {
	rows, err := t.tx.Query(t.ctx, `SELECT idx, id FROM _rowsync_nodes`)
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

// GetShadow implements rowsync.Tx.
func (t *Tx) GetShadow(tb *rowsync.Table, key []rowsync.Value) (*rowsync.Shadow, error) {
	ti, err := t.info(tb)
	if err != nil {
		return nil, err
	}
	args, err := ti.keyArgs(tb, key)
	if err != nil {
		return nil, err
	}
	if err := t.guardKeys(tb, ti, [][]rowsync.Value{key}); err != nil {
		return nil, err
	}
	q := fmt.Sprintf(`SELECT seq, del, src, meta, dead FROM %s WHERE %s`, shadowName(tb.ID), ti.namedKeyMatch(tb, keyCol, 1))
	sh := &rowsync.Shadow{Key: key}
	err = t.tx.QueryRow(t.ctx, q, args...).Scan(&sh.Seq, &sh.Deleted, &sh.Src, &sh.Meta, &sh.Dead)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read bookkeeping of %q key %s: %w", tb.Name, rowsync.FormatKey(key), err)
	}
	return sh, nil
}

// PutShadow implements rowsync.Tx.
func (t *Tx) PutShadow(tb *rowsync.Table, sh *rowsync.Shadow) error {
	ti, err := t.info(tb)
	if err != nil {
		return err
	}
	args, err := ti.keyArgs(tb, sh.Key)
	if err != nil {
		return err
	}
	cols := make([]string, 0, len(tb.Key)+5)
	marks := make([]string, 0, len(tb.Key)+5)
	for i, k := range tb.Key {
		cols = append(cols, keyCol(i))
		marks = append(marks, ti.cols[k].param(i+1))
	}
	n := len(tb.Key)
	cols = append(cols, "seq", "del", "src", "meta", "dead")
	marks = append(marks, fmt.Sprintf("$%d", n+1), fmt.Sprintf("$%d", n+2), fmt.Sprintf("$%d", n+3), fmt.Sprintf("$%d", n+4), fmt.Sprintf("$%d", n+5))
	q := fmt.Sprintf(`INSERT INTO %s(%s) VALUES (%s) ON CONFLICT (%s) DO UPDATE SET seq = excluded.seq, del = excluded.del,
		src = excluded.src, meta = excluded.meta, dead = excluded.dead`,
		shadowName(tb.ID), strings.Join(cols, ", "), strings.Join(marks, ", "), strings.Join(cols[:n], ", "))
	meta := sh.Meta
	if meta == nil {
		meta = []byte{}
	}
	args = append(args, sh.Seq, sh.Deleted, sh.Src, meta, sh.Dead)
	if _, err := t.tx.Exec(t.ctx, q, args...); err != nil {
		return fmt.Errorf("write bookkeeping of %q: %w", tb.Name, err)
	}
	return nil
}

// Changes implements rowsync.Tx.
func (t *Tx) Changes(tb *rowsync.Table, kind rowsync.ChangeKind, after, upTo, excludeSrc int64, limit int) ([]rowsync.StoredChange, error) {
	ti, err := t.info(tb)
	if err != nil {
		return nil, err
	}
	kc := ti.keyCols(tb)
	keys := make([]string, len(kc))
	for i := range kc {
		keys[i] = kc[i].readExpr("s." + keyCol(i))
	}
	var q string
	if kind == rowsync.KindLive {
		var on []string
		for i, k := range tb.Key {
			on = append(on, fmt.Sprintf("b.%s = s.%s", quote(tb.Columns[k].Name), keyCol(i)))
		}
		q = fmt.Sprintf(`SELECT s.seq, s.src, s.meta, %s, %s FROM %s AS s JOIN %s AS b ON %s
			WHERE NOT s.del AND s.seq > $1 AND s.seq <= $2 AND s.src <> $3 ORDER BY s.seq LIMIT $4`,
			strings.Join(keys, ", "), ti.selectCols("b."), shadowName(tb.ID), ti.qname, strings.Join(on, " AND "))
	} else {
		q = fmt.Sprintf(`SELECT s.seq, s.src, s.meta, s.dead, %s FROM %s AS s
			WHERE s.del AND s.seq > $1 AND s.seq <= $2 AND s.src <> $3 ORDER BY s.seq LIMIT $4`,
			strings.Join(keys, ", "), shadowName(tb.ID))
	}
	if excludeSrc == 0 {
		excludeSrc = -1
	}
	rows, err := t.tx.Query(t.ctx, q, after, upTo, excludeSrc, limit)
	if err != nil {
		return nil, fmt.Errorf("read changes of %q: %w", tb.Name, err)
	}
	defer rows.Close()
	var out []rowsync.StoredChange
	for rows.Next() {
		var c rowsync.StoredChange
		c.Deleted = kind == rowsync.KindDead
		c.Key = make([]rowsync.Value, len(kc))
		if kind == rowsync.KindLive {
			all := append(slices.Clone(kc), ti.cols...)
			vals := make([]rowsync.Value, len(all))
			raw, err := scanRow(rows, all, vals, 3)
			if err != nil {
				return nil, fmt.Errorf("read changes of %q: %w", tb.Name, err)
			}
			c.Seq, c.Src, c.Meta = raw[0].(int64), raw[1].(int64), raw[2].([]byte)
			c.Key, c.Row = vals[:len(kc)], vals[len(kc):]
		} else {
			raw, err := scanRow(rows, kc, c.Key, 4)
			if err != nil {
				return nil, fmt.Errorf("read changes of %q: %w", tb.Name, err)
			}
			c.Seq, c.Src, c.Meta = raw[0].(int64), raw[1].(int64), raw[2].([]byte)
			if raw[3] != nil {
				c.Dead = raw[3].([]byte)
			}
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read changes of %q: %w", tb.Name, err)
	}
	return out, nil
}

// CountChanges implements rowsync.Tx.
func (t *Tx) CountChanges(tb *rowsync.Table, after int64) (int64, error) {
	var n int64
	err := t.tx.QueryRow(t.ctx, fmt.Sprintf(`SELECT count(*) FROM %s WHERE seq > $1`, shadowName(tb.ID)), after).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count changes of %q: %w", tb.Name, err)
	}
	return n, nil
}

// GetRow implements rowsync.Tx.
func (t *Tx) GetRow(tb *rowsync.Table, key []rowsync.Value) ([]rowsync.Value, bool, error) {
	ti, err := t.info(tb)
	if err != nil {
		return nil, false, err
	}
	args, err := ti.keyArgs(tb, key)
	if err != nil {
		return nil, false, err
	}
	q := fmt.Sprintf(`SELECT %s FROM %s WHERE %s`, ti.selectCols(""), ti.qname, ti.keyMatch(tb, "", 1))
	rows, err := t.tx.Query(t.ctx, q, args...)
	if err != nil {
		return nil, false, fmt.Errorf("read row of %q: %w", tb.Name, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, false, fmt.Errorf("read row of %q key %s: %w", tb.Name, rowsync.FormatKey(key), err)
		}
		return nil, false, nil
	}
	row := make([]rowsync.Value, len(tb.Columns))
	if _, err := scanRow(rows, ti.cols, row, 0); err != nil {
		return nil, false, fmt.Errorf("read row of %q: %w", tb.Name, err)
	}
	return row, true, nil
}

// InsertRow implements rowsync.Tx. OVERRIDING SYSTEM VALUE lets the row
// keep its key in a GENERATED ALWAYS identity column: the key came from
// the node that created the row.
func (t *Tx) InsertRow(tb *rowsync.Table, row []rowsync.Value) error {
	return t.insert(tb, [][]rowsync.Value{row})
}

// maxParams is the most bind parameters one PostgreSQL statement takes.
const maxParams = 65535

// insert inserts rows (all columns each) with as few INSERT statements as
// the parameter limit allows (one for the engine's chunks), all inside
// one savepoint: all or none. A value a column cannot hold is refused
// before anything is sent.
func (t *Tx) insert(tb *rowsync.Table, rows [][]rowsync.Value) error {
	ti, err := t.info(tb)
	if err != nil {
		return err
	}
	if t.stale[tb.ID] != nil {
		for _, r := range rows {
			key, _ := tb.SplitRow(r)
			if err := t.checkStale(tb, key); err != nil {
				return err
			}
		}
	}
	names := make([]string, len(ti.cols))
	for i := range ti.cols {
		names[i] = quote(ti.cols[i].name)
	}
	head := fmt.Sprintf(`INSERT INTO %s(%s) OVERRIDING SYSTEM VALUE VALUES `, ti.qname, strings.Join(names, ", "))
	per := max(1, maxParams/max(1, len(ti.cols)))
	var stmts []stmt
	for len(rows) > 0 {
		part := rows[:min(per, len(rows))]
		rows = rows[len(part):]
		var q strings.Builder
		q.WriteString(head)
		args := make([]any, 0, len(part)*len(ti.cols))
		marks := make([]string, len(ti.cols))
		for r, row := range part {
			if len(row) != len(ti.cols) {
				return fmt.Errorf("insert into %q: row of %d values for %d columns", tb.Name, len(row), len(ti.cols))
			}
			for i := range ti.cols {
				c := &ti.cols[i]
				a, err := c.arg(tb.Name, row[i])
				if err != nil {
					return err
				}
				args = append(args, a)
				marks[i] = c.param(len(args))
			}
			if r > 0 {
				q.WriteString(", ")
			}
			q.WriteString("(" + strings.Join(marks, ", ") + ")")
		}
		stmts = append(stmts, stmt{q.String(), args})
	}
	if err := t.guardedAll(stmts); err != nil {
		return wrap(fmt.Sprintf("insert into %q", tb.Name), err)
	}
	keys := make([][]rowsync.Value, len(rows))
	for i, r := range rows {
		keys[i], _ = tb.SplitRow(r)
	}
	return t.noteEcho(tb, ti, keys...)
}

// UpdateRow implements rowsync.Tx.
func (t *Tx) UpdateRow(tb *rowsync.Table, key []rowsync.Value, cols []int, vals []rowsync.Value) error {
	ti, err := t.info(tb)
	if err != nil {
		return err
	}
	if err := t.checkStale(tb, key); err != nil {
		return err
	}
	sets := make([]string, len(cols))
	args := make([]any, 0, len(cols)+len(key))
	for i, ci := range cols {
		c := &ti.cols[ci]
		sets[i] = quote(c.name) + " = " + c.param(i+1)
		a, err := c.arg(tb.Name, vals[i])
		if err != nil {
			return err
		}
		args = append(args, a)
	}
	kargs, err := ti.keyArgs(tb, key)
	if err != nil {
		return err
	}
	args = append(args, kargs...)
	q := fmt.Sprintf(`UPDATE %s SET %s WHERE %s`, ti.qname, strings.Join(sets, ", "), ti.keyMatch(tb, "", len(cols)+1))
	if err := t.guarded(q, args...); err != nil {
		return wrap(fmt.Sprintf("update %q", tb.Name), err)
	}
	return t.noteEcho(tb, ti, key)
}

// DeleteRow implements rowsync.Tx.
func (t *Tx) DeleteRow(tb *rowsync.Table, key []rowsync.Value) error {
	ti, err := t.info(tb)
	if err != nil {
		return err
	}
	if err := t.checkStale(tb, key); err != nil {
		return err
	}
	args, err := ti.keyArgs(tb, key)
	if err != nil {
		return err
	}
	q := fmt.Sprintf(`DELETE FROM %s WHERE %s`, ti.qname, ti.keyMatch(tb, "", 1))
	if err := t.guarded(q, args...); err != nil {
		return wrap(fmt.Sprintf("delete from %q", tb.Name), err)
	}
	return t.noteEcho(tb, ti, key)
}

// ScanRows implements rowsync.Tx.
func (t *Tx) ScanRows(tb *rowsync.Table, fn func([]rowsync.Value) error) error {
	ti, err := t.info(tb)
	if err != nil {
		return err
	}
	rows, err := t.tx.Query(t.ctx, fmt.Sprintf(`SELECT %s FROM %s`, ti.selectCols(""), ti.qname))
	if err != nil {
		return fmt.Errorf("scan %q: %w", tb.Name, err)
	}
	defer rows.Close()
	row := make([]rowsync.Value, len(tb.Columns))
	for rows.Next() {
		if _, err := scanRow(rows, ti.cols, row, 0); err != nil {
			return fmt.Errorf("scan %q: %w", tb.Name, err)
		}
		if err := fn(row); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("scan %q: %w", tb.Name, err)
	}
	return nil
}

// BeginApply implements rowsync.Tx: from now until EndApply, the capture
// triggers mark what they log in this transaction as echo.
func (t *Tx) BeginApply() error {
	_, err := t.tx.Exec(t.ctx, `SELECT set_config('rowsync.applying', 'on', true)`)
	t.applying = err == nil
	t.echo, t.reach = map[*rowsync.Table]map[string]int64{}, map[*rowsync.Table]bool{}
	return err
}

// EndApply implements rowsync.Tx: it turns the echo marking off and
// deletes the echo-marked entries of the keys the engine wrote. Echo-marked
// entries of other keys (cascades, the application's triggers fired by
// the engine's writes) stay as local writes. Only entries above what this
// transaction's fold read are considered: they are this transaction's own.
func (t *Tx) EndApply(applied map[*rowsync.Table][][]rowsync.Value) error {
	bounds := t.echo
	t.applying, t.stale, t.echo, t.reach = false, nil, nil, nil
	if _, err := t.tx.Exec(t.ctx, `SELECT set_config('rowsync.applying', 'off', true)`); err != nil {
		return err
	}
	for tb, keys := range applied {
		if len(keys) == 0 {
			continue
		}
		if err := t.dropEcho(tb, keys, bounds[tb]); err != nil {
			return err
		}
	}
	return nil
}

// Cursors implements rowsync.Tx.
func (t *Tx) Cursors(peer string) ([]rowsync.Cursor, error) {
	rows, err := t.tx.Query(t.ctx, `SELECT `+bookkeeping.CursorColumns+` FROM _rowsync_cursors WHERE peer = $1 ORDER BY tbl, kind`, peer)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return bookkeeping.Cursors(rows)
}

// SetCursor implements rowsync.Tx.
func (t *Tx) SetCursor(peer string, c rowsync.Cursor) error {
	_, err := t.tx.Exec(t.ctx, `INSERT INTO _rowsync_cursors(peer, tbl, kind, seq) VALUES ($1, $2, $3, $4)
		ON CONFLICT (peer, tbl, kind) DO UPDATE SET seq = excluded.seq`, peer, c.Table, int32(c.Kind), c.Seq)
	return err
}

// GetPeer implements rowsync.Tx.
func (t *Tx) GetPeer(id string) (*rowsync.PeerRecord, error) {
	p, err := bookkeeping.ScanPeer(t.tx.QueryRow(t.ctx, `SELECT `+bookkeeping.PeerColumns+` FROM _rowsync_peers WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
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
	_, err := t.tx.Exec(t.ctx, `INSERT INTO _rowsync_peers(`+bookkeeping.PeerColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (id) DO UPDATE SET name = excluded.name, url = excluded.url, last_sync = excluded.last_sync,
		sync_count = excluded.sync_count, rows_in = excluded.rows_in, rows_out = excluded.rows_out,
		acked_seq = excluded.acked_seq, last_error = excluded.last_error`,
		p.ID, text(p.Name), text(p.URL), last, p.SyncCount, p.RowsIn, p.RowsOut, p.AckedSeq, text(p.LastError))
	return err
}

// Peers implements rowsync.Tx.
func (t *Tx) Peers() ([]rowsync.PeerRecord, error) {
	rows, err := t.tx.Query(t.ctx, `SELECT `+bookkeeping.PeerColumns+` FROM _rowsync_peers ORDER BY name, id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return bookkeeping.Peers(rows)
}

// text makes a message storable in a text column: PostgreSQL text holds
// neither NUL bytes nor invalid UTF-8, and an error message may quote a
// value that has them.
func text(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", `\x00`)
}

// AddConflict implements rowsync.Tx.
func (t *Tx) AddConflict(c *rowsync.Conflict) (bool, error) {
	tag, err := t.tx.Exec(t.ctx, `INSERT INTO _rowsync_conflicts(at, tbl, pk, col, kind, winner, winner_hlc, winner_node,
		loser, loser_hlc, loser_node, peer, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
		ON CONFLICT DO NOTHING`,
		c.At.UnixMilli(), c.Table, rowsync.EncodeValues(c.Key), c.Column, c.Kind, bookkeeping.EncodeValue(c.Winner), c.WinnerV.HLC, c.WinnerV.Node,
		bookkeeping.EncodeValue(c.Loser), c.LoserV.HLC, c.LoserV.Node, c.Peer, text(c.Detail))
	if err != nil {
		return false, fmt.Errorf("record conflict: %w", err)
	}
	return tag.RowsAffected() > 0, nil
}

// Conflicts implements rowsync.Tx.
func (t *Tx) Conflicts() ([]rowsync.Conflict, error) {
	rows, err := t.tx.Query(t.ctx, `SELECT `+bookkeeping.ConflictColumns+` FROM _rowsync_conflicts ORDER BY id DESC`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return bookkeeping.Conflicts(rows)
}

// ResolveConflicts implements rowsync.Tx.
func (t *Tx) ResolveConflicts(table string, key []rowsync.Value) error {
	_, err := t.tx.Exec(t.ctx, `UPDATE _rowsync_conflicts SET resolved = true WHERE tbl = $1 AND pk = $2 AND kind = $3`,
		table, rowsync.EncodeValues(key), rowsync.ConflictConstraint)
	return err
}

// PutHeld implements rowsync.Tx.
func (t *Tx) PutHeld(h *rowsync.Held) error {
	_, err := t.tx.Exec(t.ctx, `INSERT INTO _rowsync_held(tbl, pk, peer, change, error, at) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (tbl, pk, peer) DO UPDATE SET change = excluded.change, error = excluded.error, at = excluded.at`,
		h.Table, rowsync.EncodeValues(h.Key), h.Peer, h.Change, text(h.Error), h.At.UnixMilli())
	return err
}

// HeldChanges implements rowsync.Tx.
func (t *Tx) HeldChanges() ([]rowsync.Held, error) {
	rows, err := t.tx.Query(t.ctx, `SELECT id, tbl, pk, peer, change, error, at FROM _rowsync_held ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return bookkeeping.Held(rows)
}

// DeleteHeld implements rowsync.Tx.
func (t *Tx) DeleteHeld(id int64) error {
	_, err := t.tx.Exec(t.ctx, `DELETE FROM _rowsync_held WHERE id = $1`, id)
	return err
}

// Savepoint implements rowsync.Tx.
func (t *Tx) Savepoint(name string) error {
	_, err := t.tx.Exec(t.ctx, "SAVEPOINT "+quote(name))
	return err
}

// RollbackTo implements rowsync.Tx.
func (t *Tx) RollbackTo(name string) error {
	_, err := t.tx.Exec(t.ctx, "ROLLBACK TO SAVEPOINT "+quote(name))
	return err
}

// Release implements rowsync.Tx.
func (t *Tx) Release(name string) error {
	_, err := t.tx.Exec(t.ctx, "RELEASE SAVEPOINT "+quote(name))
	return err
}
