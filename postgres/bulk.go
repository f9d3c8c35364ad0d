package postgres

import (
	"fmt"
	"strings"

	"github.com/rowsync/rowsync"
)

var _ rowsync.BulkTx = (*Tx)(nil)

// Bulk reads and writes. The engine applies incoming rows and folds the
// log a chunk (up to 256 rows) at a time through these methods: one
// statement each instead of one per row. GetShadows and PutShadows pass
// one array per column (unnest), so their statement text does not depend
// on the number of rows (one prepared statement per table) and the bind
// parameter limit does not apply; InsertRows uses InsertRow's code.

// newArray returns an empty array parameter for values of column c, of
// c.arrayType(), for n values.
func newArray(c *colInfo, n int) any {
	if c.read == readBytes {
		return make([][]byte, 0, n)
	}
	return make([]*string, 0, n)
}

// appendArray appends a value converted by colInfo.arg (nil, []byte or
// string) to an array from newArray.
func appendArray(arr, a any) any {
	switch arr := arr.(type) {
	case [][]byte:
		b, _ := a.([]byte)
		return append(arr, b)
	case []*string:
		var sp *string
		if s, ok := a.(string); ok {
			sp = &s
		}
		return append(arr, sp)
	}
	panic(fmt.Sprintf("appendArray: %T", arr))
}

// keyArrays converts keys, with keyArgs, into one array parameter per key
// column. A key keyArgs refuses is an error, or left out if skipBad.
func (ti *tableInfo) keyArrays(tb *rowsync.Table, keys [][]rowsync.Value, skipBad bool) ([]any, error) {
	arrays := make([]any, len(tb.Key))
	for i, k := range tb.Key {
		arrays[i] = newArray(&ti.cols[k], len(keys))
	}
	for _, key := range keys {
		args, err := ti.keyArgs(tb, key)
		if err != nil {
			if skipBad {
				continue
			}
			return nil, err
		}
		for i, a := range args {
			arrays[i] = appendArray(arrays[i], a)
		}
	}
	return arrays, nil
}

// keyUnnest returns the unnest arguments of the key arrays ($first, ...)
// and the key columns' names.
func (ti *tableInfo) keyUnnest(tb *rowsync.Table, first int) (params, names []string) {
	for i, k := range tb.Key {
		params = append(params, fmt.Sprintf("$%d::%s", first+i, ti.cols[k].arrayType()))
		names = append(names, keyCol(i))
	}
	return params, names
}

// GetShadows implements rowsync.BulkTx with one query: the shadow table
// joined with the keys, unnested from one array per key column WITH
// ORDINALITY (which gives each result its key's position). Each element
// is cast to the column's type as GetShadow's placeholder is, and compared
// with =, so a key finds what GetShadow would find; two keys that are
// equal as the column's values (Integer 1 and Text "1") both find it.
func (t *Tx) GetShadows(tb *rowsync.Table, keys [][]rowsync.Value) ([]*rowsync.Shadow, error) {
	out := make([]*rowsync.Shadow, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	ti, err := t.info(tb)
	if err != nil {
		return nil, err
	}
	arrays, err := ti.keyArrays(tb, keys, false)
	if err != nil {
		return nil, err
	}
	if err := t.guardKeys(tb, ti, keys); err != nil {
		return nil, err
	}
	params, names := ti.keyUnnest(tb, 1)
	on := make([]string, len(tb.Key))
	for i, k := range tb.Key {
		on[i] = fmt.Sprintf("s.%s = %s", keyCol(i), ti.cols[k].castElem("a."+keyCol(i)))
	}
	q := fmt.Sprintf(`SELECT a.ord, s.seq, s.del, s.src, s.meta, s.dead
		FROM unnest(%s) WITH ORDINALITY AS a(%s, ord) JOIN %s AS s ON %s`,
		strings.Join(params, ", "), strings.Join(names, ", "), shadowName(tb.ID), strings.Join(on, " AND "))
	rows, err := t.tx.Query(t.ctx, q, arrays...)
	if err != nil {
		return nil, fmt.Errorf("read bookkeeping of %q: %w", tb.Name, err)
	}
	defer rows.Close()
	for rows.Next() {
		var ord int64
		sh := &rowsync.Shadow{}
		if err := rows.Scan(&ord, &sh.Seq, &sh.Deleted, &sh.Src, &sh.Meta, &sh.Dead); err != nil {
			return nil, fmt.Errorf("read bookkeeping of %q: %w", tb.Name, err)
		}
		if ord < 1 || ord > int64(len(keys)) {
			return nil, fmt.Errorf("read bookkeeping of %q: key position %d out of range", tb.Name, ord)
		}
		sh.Key = keys[ord-1]
		out[ord-1] = sh
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read bookkeeping of %q: %w", tb.Name, err)
	}
	return out, nil
}

// InsertRows implements rowsync.BulkTx: InsertRow's statement with one
// VALUES row per row (the same conversions, casts and refusals), in one
// savepoint pipelined with it. A refused row (a constraint or a bad
// value, in PostgreSQL or before) rolls back to the savepoint: nothing is
// inserted, and the error is a *rowsync.ConstraintError. The capture
// triggers mark the inserted rows' log entries as echo, as for InsertRow,
// and EndApply drops them by key.
//
// The engine's chunks stay under 30,000 parameters (chunkRows), below
// PostgreSQL's 65,535; longer calls are split into several INSERTs in
// the same savepoint.
func (t *Tx) InsertRows(tb *rowsync.Table, rows [][]rowsync.Value) error {
	if len(rows) == 0 {
		return nil
	}
	return t.insert(tb, rows)
}

// PutShadows implements rowsync.BulkTx with one upsert (INSERT ... SELECT
// FROM unnest(...) ON CONFLICT (key) DO UPDATE), of the values PutShadow
// writes. Keys that differ as rowsync values but are equal as the
// column's (Integer 1 and Text "1") would make ON CONFLICT DO UPDATE fail
// ("cannot affect row a second time"); DISTINCT ON keeps the last of
// them, as PutShadow one after the other would.
func (t *Tx) PutShadows(tb *rowsync.Table, ss []*rowsync.Shadow) error {
	if len(ss) == 0 {
		return nil
	}
	ti, err := t.info(tb)
	if err != nil {
		return err
	}
	keys := make([][]rowsync.Value, len(ss))
	for i, sh := range ss {
		keys[i] = sh.Key
	}
	arrays, err := ti.keyArrays(tb, keys, false)
	if err != nil {
		return err
	}
	seq, src := make([]int64, len(ss)), make([]int64, len(ss))
	del := make([]bool, len(ss))
	meta, dead := make([][]byte, len(ss)), make([][]byte, len(ss))
	for i, sh := range ss {
		seq[i], del[i], src[i], dead[i] = sh.Seq, sh.Deleted, sh.Src, sh.Dead
		meta[i] = sh.Meta
		if meta[i] == nil {
			meta[i] = []byte{}
		}
	}
	n := len(tb.Key)
	arrays = append(arrays, seq, del, src, meta, dead)
	params, names := ti.keyUnnest(tb, 1)
	params = append(params, fmt.Sprintf("$%d::int8[]", n+1), fmt.Sprintf("$%d::bool[]", n+2), fmt.Sprintf("$%d::int8[]", n+3),
		fmt.Sprintf("$%d::bytea[]", n+4), fmt.Sprintf("$%d::bytea[]", n+5))
	casts := make([]string, n)
	for i, k := range tb.Key {
		casts[i] = ti.cols[k].castElem("a."+keyCol(i)) + " AS " + keyCol(i)
	}
	keyList := strings.Join(names, ", ")
	q := fmt.Sprintf(`INSERT INTO %[1]s(%[2]s, seq, del, src, meta, dead)
		SELECT DISTINCT ON (%[2]s) %[2]s, seq, del, src, meta, dead FROM (
			SELECT %[3]s, a.seq, a.del, a.src, a.meta, a.dead, a.ord
			FROM unnest(%[4]s) WITH ORDINALITY AS a(%[2]s, seq, del, src, meta, dead, ord)) AS x
		ORDER BY %[2]s, ord DESC
		ON CONFLICT (%[2]s) DO UPDATE SET seq = excluded.seq, del = excluded.del,
		src = excluded.src, meta = excluded.meta, dead = excluded.dead`,
		shadowName(tb.ID), keyList, strings.Join(casts, ", "), strings.Join(params, ", "))
	if _, err := t.tx.Exec(t.ctx, q, arrays...); err != nil {
		return fmt.Errorf("write bookkeeping of %q: %w", tb.Name, err)
	}
	return nil
}
