package sqlite

import (
	"fmt"
	"strings"

	"github.com/rowsync/rowsync"
)

var _ rowsync.BulkTx = (*Tx)(nil)

// marks returns n groups of k placeholders: "(?, ?), (?, ?)".
func marks(n, k int) string {
	group := "(" + strings.TrimSuffix(strings.Repeat("?, ", k), ", ") + ")"
	return strings.TrimSuffix(strings.Repeat(group+", ", n), ", ")
}

// GetShadows implements rowsync.BulkTx with one query: the key columns
// IN a list of row values. The shadow's key columns have no type affinity,
// so = compares values as IS does in GetShadow: same storage class, same
// bytes.
func (t *Tx) GetShadows(tb *rowsync.Table, keys [][]rowsync.Value) ([]*rowsync.Shadow, error) {
	kcols := make([]string, len(tb.Key))
	for i := range tb.Key {
		kcols[i] = keyCol(i)
	}
	var list string
	if len(tb.Key) == 1 {
		list = fmt.Sprintf("%s IN (%s)", kcols[0], strings.TrimSuffix(strings.Repeat("?, ", len(keys)), ", "))
	} else {
		list = fmt.Sprintf("(%s) IN (VALUES %s)", strings.Join(kcols, ", "), marks(len(keys), len(tb.Key)))
	}
	args := make([]any, 0, len(keys)*len(tb.Key))
	pos := make(map[string]int, len(keys))
	enc := make([]string, len(keys))
	for i, k := range keys {
		args = append(args, anyArgs(k)...)
		enc[i] = string(rowsync.EncodeValues(k))
		pos[enc[i]] = i
	}
	rows, err := t.query(fmt.Sprintf(`SELECT seq, del, src, meta, dead, %s FROM %s WHERE %s`, strings.Join(kcols, ", "), shadowName(tb.ID), list), args...)
	if err != nil {
		return nil, fmt.Errorf("read bookkeeping of %q: %w", tb.Name, err)
	}
	defer rows.Close()
	out := make([]*rowsync.Shadow, len(keys))
	for rows.Next() {
		key := make([]rowsync.Value, len(tb.Key))
		sh := &rowsync.Shadow{}
		if err := scanValues(rows, key, &sh.Seq, &sh.Deleted, &sh.Src, &sh.Meta, &sh.Dead); err != nil {
			return nil, err
		}
		i, ok := pos[string(rowsync.EncodeValues(key))]
		if !ok {
			return nil, fmt.Errorf("read bookkeeping of %q: key %s was not asked for", tb.Name, rowsync.FormatKey(key))
		}
		sh.Key = keys[i]
		out[i] = sh
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i, sh := range out {
		if sh == nil {
			t.noteFresh(tb, enc[i])
		}
	}
	return out, nil
}

// maxFresh bounds the keys a transaction remembers as fresh per table: a
// hint only (see PutShadows).
const maxFresh = 1 << 16

// noteFresh remembers that the row of a key has no bookkeeping yet.
func (t *Tx) noteFresh(tb *rowsync.Table, key string) {
	if t.fresh == nil {
		t.fresh = map[*rowsync.Table]map[string]bool{}
	}
	m := t.fresh[tb]
	if m == nil {
		m = map[string]bool{}
		t.fresh[tb] = m
	}
	if len(m) < maxFresh {
		m[key] = true
	}
}

// InsertRows implements rowsync.BulkTx with one multi-row INSERT OR ABORT
// (see InsertRow). SQLite undoes a whole statement that a constraint
// refuses, so nothing is inserted then.
func (t *Tx) InsertRows(tb *rowsync.Table, rows [][]rowsync.Value) error {
	q := fmt.Sprintf(`INSERT OR ABORT INTO %s(%s) VALUES %s`, quote(tb.Name), strings.Join(quotedColumns(tb), ", "), marks(len(rows), len(tb.Columns)))
	args := make([]any, 0, len(rows)*len(tb.Columns))
	for _, r := range rows {
		args = append(args, anyArgs(r)...)
	}
	if _, err := t.exec(q, args...); err != nil {
		return wrap("insert into "+tb.Name, err)
	}
	if t.echo == nil {
		return nil
	}
	keys := make([][]rowsync.Value, len(rows))
	for i, r := range rows {
		keys[i], _ = tb.SplitRow(r)
	}
	return t.noteEcho(tb, keys...)
}

// PutShadows implements rowsync.BulkTx. The bookkeeping of rows that
// GetShadows found none for (new rows: the initial sync) is written with
// one multi-row INSERT OR REPLACE, that of the others with one prepared
// single-row INSERT OR REPLACE per row. Inside a transaction, SQLite gives
// a statement that writes several rows and may abort (a WITHOUT ROWID key
// is NOT NULL) a statement journal: a copy of every page the statement
// changes that existed before it. New rows mostly go to new pages, which
// need no copy; the bookkeeping of existing rows is spread over the whole
// table, and a multi-row statement for it copied as many pages as the WAL
// got (see DESIGN.md, Bulk apply). A single-row statement has no
// statement journal. Both statements have the same effect, so a wrong
// guess costs time only.
func (t *Tx) PutShadows(tb *rowsync.Table, ss []*rowsync.Shadow) error {
	fresh := t.fresh[tb]
	var bulk []*rowsync.Shadow
	q := putShadowQuery(tb, 1)
	for _, sh := range ss {
		k := string(rowsync.EncodeValues(sh.Key))
		if fresh[k] {
			delete(fresh, k)
			bulk = append(bulk, sh)
			continue
		}
		if err := t.putShadow(q, tb, sh); err != nil {
			return err
		}
	}
	if len(bulk) < 2 {
		for _, sh := range bulk {
			if err := t.putShadow(q, tb, sh); err != nil {
				return err
			}
		}
		return nil
	}
	args := make([]any, 0, len(bulk)*(len(tb.Key)+5))
	for _, sh := range bulk {
		args = shadowArgs(args, sh)
	}
	if _, err := t.exec(putShadowQuery(tb, len(bulk)), args...); err != nil {
		return fmt.Errorf("write bookkeeping of %q: %w", tb.Name, err)
	}
	return nil
}
