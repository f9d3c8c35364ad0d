package postgres

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/rowsync/rowsync"
)

// The log of a tracked table (_rowsync_log_N) has a row per captured
// write, except for inserts: the INSERT trigger writes the keys of up to
// logRows rows of one statement into one log row, in arrays (a0, a1, …,
// one per key column; n counts the entries not deleted). Writing a row
// and an index entry per inserted row was most of the cost of capture on a
// bulk insert; see DESIGN.md.
//
// The engine sees entries. An entry's ID is its log row's id shifted left
// by logShift plus its position in the arrays (0 for a row of one write),
// so IDs grow with the log's identity and an ID names its row. Deleting
// some entries of an array row sets their elements to NULL; the row goes
// when none is left.
const (
	logShift = 7
	logRows  = 1 << logShift
)

// logState is what a write transaction remembers of a table's log. Log
// rows get their IDs from a sequence when a statement ends, and
// transactions commit in any order, so a row with a lower ID can become
// visible after higher ones were read. DeleteLog(upTo, nil) therefore
// deletes only the entries this transaction read (seen), never
// "everything <= upTo"; and when a later page finds rows that were not
// visible before (in the ID gaps of earlier pages), their keys are
// blocked: the rest of their entries stay in the log for the next fold,
// which then reads them all in order.
type logState struct {
	read    bool
	seen    []int64         // entry IDs returned (or knowingly skipped) and not deleted yet
	gaps    [][2]int64      // log row ID ranges below the last page that were not visible
	blocked map[string]bool // keys with a late entry
	floor   int64           // the highest log row ID read: rows above it are this transaction's own
}

func (t *Tx) logState(tb *rowsync.Table) *logState {
	ls := t.logs[tb.ID]
	if ls == nil {
		ls = &logState{blocked: map[string]bool{}}
		t.logs[tb.ID] = ls
	}
	return ls
}

// logView is the SQL of a table's log seen as entries: the log is l, an
// array element u.
type logView struct {
	from  string   // FROM clause
	eid   string   // an entry's ID
	live  string   // true for an entry not deleted
	order string   // ORDER BY entries
	key   []string // the value of each key column
	tb    *rowsync.Table
}

func (ti *tableInfo) logView(tb *rowsync.Table) *logView {
	v := &logView{from: logName(tb.ID) + " AS l", eid: fmt.Sprintf("(l.id << %d)", logShift), live: "true", order: "l.id", tb: tb}
	if ti.arrays {
		arrs, names := make([]string, len(tb.Key)), make([]string, len(tb.Key))
		for i := range tb.Key {
			arrs[i], names[i] = "l."+arrCol(i), arrCol(i)
		}
		v.from = fmt.Sprintf("%s AS l LEFT JOIN LATERAL unnest(%s) WITH ORDINALITY AS u(%s, ord) ON true",
			logName(tb.ID), strings.Join(arrs, ", "), strings.Join(names, ", "))
		v.eid = fmt.Sprintf("((l.id << %d) + coalesce(u.ord, 1) - 1)", logShift)
		v.live = "(u.ord IS NULL OR u.a0 IS NOT NULL)"
		v.order = "l.id, u.ord"
	}
	for i, k := range tb.Key {
		if ti.arrays {
			v.key = append(v.key, fmt.Sprintf("coalesce(u.%s, l.%s)", arrCol(i), logCol(k)))
		} else {
			v.key = append(v.key, "l."+logCol(k))
		}
	}
	return v
}

// col is the SQL of column i of an entry.
func (v *logView) col(i int) string {
	if p := slices.Index(v.tb.Key, i); p >= 0 {
		return v.key[p]
	}
	return "l." + logCol(i)
}

// keyExprs selects the key columns of entries.
func (v *logView) keyExprs(ti *tableInfo) string {
	parts := make([]string, len(v.tb.Key))
	for i, k := range v.tb.Key {
		parts[i] = ti.cols[k].readExpr(v.key[i])
	}
	return strings.Join(parts, ", ")
}

// beforeLogPage, if set (by tests only), runs before each page query of
// ReadLog.
var beforeLogPage func()

// ReadLog implements rowsync.Tx.
func (t *Tx) ReadLog(tb *rowsync.Table, after int64, limit int) ([]rowsync.LogEntry, error) {
	ti, err := t.info(tb)
	if err != nil {
		return nil, err
	}
	v := ti.logView(tb)
	ls := t.logState(tb)
	if t.write && !ls.read {
		if err := t.checkFirst(v, ls, after); err != nil {
			return nil, fmt.Errorf("read log of %q: %w", tb.Name, err)
		}
	}
	nw := maskWords(len(tb.Columns))
	masks := make([]string, nw)
	for i := range masks {
		masks[i] = fmt.Sprintf("coalesce(l.m%d, 0)", i)
	}
	exprs := make([]string, len(ti.cols))
	for i := range ti.cols {
		exprs[i] = ti.cols[i].readExpr(v.col(i))
	}
	q := fmt.Sprintf(`SELECT %s, l.id, l.op, l.wall, l.echo, %s, %s FROM %s WHERE l.id >= $1 AND %s > $2 AND %s ORDER BY %s LIMIT $3`,
		v.eid, strings.Join(masks, ", "), strings.Join(exprs, ", "), v.from, v.eid, v.live, v.order)
	const skip = 5
	var out []rowsync.LogEntry
	for {
		// The gaps of earlier pages: checked once this page is read.
		known := ls.gaps
		if beforeLogPage != nil {
			beforeLogPage()
		}
		rows, err := t.tx.Query(t.ctx, q, after>>logShift, after, limit)
		if err != nil {
			return nil, fmt.Errorf("read log of %q: %w", tb.Name, err)
		}
		n := 0
		prevRow := after >> logShift
		var page []rowsync.LogEntry
		for rows.Next() {
			n++
			e := rowsync.LogEntry{Row: make([]rowsync.Value, len(tb.Columns)), Mask: make([]uint64, nw)}
			raw, err := scanRow(rows, ti.cols, e.Row, skip+nw)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("read log of %q: %w", tb.Name, err)
			}
			e.ID = raw[0].(int64)
			row := raw[1].(int64)
			e.Op = rowsync.LogOp(raw[2].(int16))
			e.Wall = raw[3].(int64)
			e.Applied = raw[4].(bool)
			for i := range e.Mask {
				e.Mask[i] = uint64(raw[skip+i].(int64))
			}
			after = e.ID
			if t.write {
				if row > prevRow+1 {
					ls.gaps = append(ls.gaps, [2]int64{prevRow + 1, row - 1})
				}
				prevRow = max(prevRow, row)
				ls.floor = max(ls.floor, row)
			}
			page = append(page, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read log of %q: %w", tb.Name, err)
		}
		if t.write {
			if err := t.blockLate(ti, v, ls, known); err != nil {
				return nil, fmt.Errorf("read log of %q: %w", tb.Name, err)
			}
			for _, e := range page {
				key, _ := tb.SplitRow(e.Row)
				if ls.blocked[string(rowsync.EncodeValues(key))] {
					continue
				}
				ls.seen = append(ls.seen, e.ID)
				out = append(out, e)
			}
		} else {
			out = append(out, page...)
		}
		ls.read = true
		// A page whose entries were all blocked: read on, so that the
		// caller does not take an empty page for the end of the log.
		if len(out) > 0 || n < limit {
			return out, nil
		}
	}
}

// checkFirst runs before the first page of a table's log is read in a
// write transaction: if it starts after an ID, the entries up to that ID
// visible now count as seen (the caller skips them knowingly).
func (t *Tx) checkFirst(v *logView, ls *logState, after int64) error {
	if after <= 0 {
		return nil
	}
	rows, err := t.tx.Query(t.ctx, fmt.Sprintf(`SELECT %s FROM %s WHERE l.id <= $1 AND %s <= $2 AND %s`,
		v.eid, v.from, v.eid, v.live), after>>logShift, after)
	if err != nil {
		return err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return err
	}
	ls.seen = append(ls.seen, ids...)
	ls.floor = max(ls.floor, after>>logShift)
	return nil
}

// blockLate runs after a page of the log is read in a write transaction
// (READ COMMITTED: each statement is a snapshot of its own). Rows that
// became visible in the ID gaps of earlier pages (transactions that
// committed late) block their keys, and the page's entries of those keys
// are left for the next fold, which reads them in order. It must come
// after the page: an entry that a later one of its key waited for
// committed before it, so whatever the page shows, this look, a later
// snapshot, sees the late entry too. Looked at before the page, a late
// entry committing between the two statements went unnoticed while the
// page returned the entry after it.
func (t *Tx) blockLate(ti *tableInfo, v *logView, ls *logState, gaps [][2]int64) error {
	if len(gaps) == 0 {
		return nil
	}
	lo, hi := make([]int64, len(gaps)), make([]int64, len(gaps))
	for i, g := range gaps {
		lo[i], hi[i] = g[0], g[1]
	}
	rows, err := t.tx.Query(t.ctx, fmt.Sprintf(`SELECT %s FROM %s JOIN unnest($1::int8[], $2::int8[]) AS g(lo, hi)
		ON l.id BETWEEN g.lo AND g.hi WHERE %s`, v.keyExprs(ti), v.from, v.live), lo, hi)
	if err != nil {
		return err
	}
	defer rows.Close()
	kc := ti.keyCols(v.tb)
	for rows.Next() {
		key := make([]rowsync.Value, len(kc))
		if _, err := scanRow(rows, kc, key, 0); err != nil {
			return err
		}
		ls.blocked[string(rowsync.EncodeValues(key))] = true
	}
	return rows.Err()
}

// NextLogOp implements rowsync.Tx.
func (t *Tx) NextLogOp(tb *rowsync.Table, after int64, key []rowsync.Value) (rowsync.LogOp, bool, error) {
	ti, err := t.info(tb)
	if err != nil {
		return 0, false, err
	}
	args, err := ti.keyArgs(tb, key)
	if err != nil {
		return 0, false, err
	}
	v := ti.logView(tb)
	q := fmt.Sprintf(`SELECT l.op FROM %s WHERE l.id >= $1 AND %s > $2 AND %s ORDER BY %s LIMIT 1`, v.from, v.eid,
		ti.namedKeyMatch(tb, func(i int) string { return v.key[i] }, 3), v.order)
	var op int16
	err = t.tx.QueryRow(t.ctx, q, append([]any{after >> logShift, after}, args...)...).Scan(&op)
	if err == pgx.ErrNoRows {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read log of %q: %w", tb.Name, err)
	}
	return rowsync.LogOp(op), true, nil
}

// DeleteLog implements rowsync.Tx. With ids nil it deletes the entries
// with ID <= upTo that this transaction's ReadLog returned (see logState);
// for a table this transaction never read, every entry <= upTo.
func (t *Tx) DeleteLog(tb *rowsync.Table, upTo int64, ids []int64) error {
	ti, err := t.info(tb)
	if err != nil {
		return err
	}
	ls := t.logState(tb)
	if ids == nil && !ls.read {
		v := ti.logView(tb)
		return t.deleteEntries(tb, ti, fmt.Sprintf(`SELECT %s FROM %s WHERE l.id <= $1 AND %s <= $2 AND %s`, v.eid, v.from, v.eid, v.live),
			upTo>>logShift, upTo)
	}
	del := ids
	if ids == nil {
		del = nil
		for _, id := range ls.seen {
			if id <= upTo {
				del = append(del, id)
			}
		}
	}
	if len(del) == 0 {
		return nil
	}
	if err := t.deleteEntries(tb, ti, `SELECT unnest($1::int8[])`, del); err != nil {
		return err
	}
	gone := make(map[int64]bool, len(del))
	for _, id := range del {
		gone[id] = true
	}
	ls.seen = slices.DeleteFunc(ls.seen, func(id int64) bool { return gone[id] })
	return nil
}

// deleteEntries deletes the log entries whose IDs the query src selects,
// in one statement; each must be an entry not deleted yet. A log row goes
// when all its entries go; otherwise the array elements of the entries
// named are set to NULL.
func (t *Tx) deleteEntries(tb *rowsync.Table, ti *tableInfo, src string, args ...any) error {
	log := logName(tb.ID)
	q := fmt.Sprintf(`DELETE FROM %s WHERE id IN (SELECT x >> %d FROM (%s) AS e(x))`, log, logShift, src)
	if ti.arrays {
		sets := []string{"n = l.n - cardinality(h.pos)"}
		for i := range tb.Key {
			a := arrCol(i)
			sets = append(sets, fmt.Sprintf(`%s = ARRAY(SELECT CASE WHEN v.o = ANY(h.pos) THEN NULL ELSE v.x END
				FROM unnest(l.%s) WITH ORDINALITY AS v(x, o) ORDER BY v.o)`, a, a))
		}
		// The DELETE and the UPDATE touch different rows.
		q = fmt.Sprintf(`WITH h AS (SELECT x >> %d AS id, array_agg(DISTINCT (x & %d) + 1) AS pos FROM (%s) AS e(x) GROUP BY 1),
			d AS (DELETE FROM %s AS l USING h WHERE l.id = h.id AND coalesce(l.n, 1) <= cardinality(h.pos))
			UPDATE %s AS l SET %s FROM h WHERE l.id = h.id AND l.n > cardinality(h.pos)`,
			logShift, logRows-1, src, log, log, strings.Join(sets, ", "))
	}
	if _, err := t.tx.Exec(t.ctx, q, args...); err != nil {
		return fmt.Errorf("delete log of %q: %w", tb.Name, err)
	}
	return nil
}

// dropEcho deletes the entries above the fold's floor that this
// transaction marked as echo, of the keys the engine wrote, up to each
// key's bound (Tx.echo; none for a table no side effect reaches).
func (t *Tx) dropEcho(tb *rowsync.Table, keys [][]rowsync.Value, bounds map[string]int64) error {
	ti, err := t.info(tb)
	if err != nil {
		return err
	}
	v := ti.logView(tb)
	// A key that keyArgs refuses is skipped: no row can have it, so
	// nothing echoed it.
	var valid [][]rowsync.Value
	var upTo []int64
	for _, k := range keys {
		if _, err := ti.keyArgs(tb, k); err != nil {
			continue
		}
		b, ok := bounds[string(rowsync.EncodeValues(k))]
		if !ok {
			b = math.MaxInt64
		}
		valid, upTo = append(valid, k), append(upTo, b)
	}
	arrays, err := ti.keyArrays(tb, valid, false)
	if err != nil {
		return err
	}
	params, names := ti.keyUnnest(tb, 2)
	params = append(params, fmt.Sprintf("$%d::int8[]", 2+len(tb.Key)))
	names = append(names, "upto")
	conds := make([]string, len(tb.Key))
	for i, k := range tb.Key {
		conds[i] = fmt.Sprintf("%s = %s", v.key[i], ti.cols[k].castElem("a."+keyCol(i)))
	}
	src := fmt.Sprintf(`SELECT %s FROM %s JOIN unnest(%s) AS a(%s) ON %s WHERE l.echo AND l.id > $1 AND l.id <= a.upto`,
		v.eid, v.from, strings.Join(params, ", "), strings.Join(names, ", "), strings.Join(conds, " AND "))
	args := append(append([]any{t.logState(tb).floor}, arrays...), upTo)
	if err := t.deleteEntries(tb, ti, src, args...); err != nil {
		return fmt.Errorf("drop echo of applied rows: %w", err)
	}
	return nil
}

// noteEcho records, while the engine applies rows, the echo bound of the
// keys it just wrote to tb (see Tx.echo), if side effects can reach tb.
func (t *Tx) noteEcho(tb *rowsync.Table, ti *tableInfo, keys ...[]rowsync.Value) error {
	if t.echo == nil {
		return nil
	}
	if reach, err := t.sideEffects(tb, ti); err != nil || !reach {
		return err
	}
	var last int64
	if err := t.tx.QueryRow(t.ctx, fmt.Sprintf(`SELECT coalesce(max(id), 0) FROM %s`, logName(tb.ID))).Scan(&last); err != nil {
		return fmt.Errorf("read log of %q: %w", tb.Name, err)
	}
	m := t.echo[tb]
	if m == nil {
		m = map[string]int64{}
		t.echo[tb] = m
	}
	for _, k := range keys {
		m[string(rowsync.EncodeValues(k))] = last
	}
	return nil
}

// sideEffects reports whether rows of tb can be written by a statement
// on another row: a foreign key of tb has an action (ON DELETE CASCADE,
// SET NULL, ON UPDATE CASCADE, …), or an application's trigger exists on a
// table of the schema.
func (t *Tx) sideEffects(tb *rowsync.Table, ti *tableInfo) (bool, error) {
	if r, ok := t.reach[tb]; ok {
		return r, nil
	}
	var r bool
	err := t.tx.QueryRow(t.ctx, `SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'f'
			AND (confdeltype NOT IN ('a', 'r') OR confupdtype NOT IN ('a', 'r')))
		OR EXISTS (SELECT 1 FROM pg_trigger AS g JOIN pg_class AS c ON c.oid = g.tgrelid JOIN pg_namespace AS n ON n.oid = c.relnamespace
			WHERE n.nspname = $2 AND NOT g.tgisinternal AND g.tgname NOT LIKE '\_rowsync\_%')`, ti.qname, t.d.schema).Scan(&r)
	if err != nil {
		return false, fmt.Errorf("foreign keys and triggers of %q: %w", tb.Name, err)
	}
	t.reach[tb] = r
	return r, nil
}

// LogCount implements rowsync.Tx.
func (t *Tx) LogCount(tb *rowsync.Table) (int64, error) {
	var n int64
	q := fmt.Sprintf(`SELECT count(*) FROM %s`, logName(tb.ID))
	ti, err := t.info(tb)
	if err != nil {
		return 0, err
	}
	if ti.arrays {
		q = fmt.Sprintf(`SELECT coalesce(sum(coalesce(n, 1)), 0)::int8 FROM %s`, logName(tb.ID))
	}
	if err := t.tx.QueryRow(t.ctx, q).Scan(&n); err != nil {
		return 0, fmt.Errorf("count log of %q: %w", tb.Name, err)
	}
	return n, nil
}
