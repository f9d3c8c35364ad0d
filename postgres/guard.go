package postgres

import (
	"fmt"
	"strings"

	"github.com/rowsync/rowsync"
)

// Applying rows while applications write. A batch folds the log when it
// starts; an application transaction may then commit a write to a row
// before the engine writes that row. The engine would merge the incoming
// row with the row's new values but its old versions, and its write would
// overwrite the application's, whose captured entry, folded later, would
// then stamp the engine's value: the application's write lost silently.
//
// So while applying, before the engine reads the bookkeeping of rows it
// may write (GetShadow, GetShadows), the adapter locks those rows of the
// user's table (FOR UPDATE: an application transaction holding one is
// waited for, and none can change them until the batch commits) and then,
// in a new statement that sees what committed meanwhile, looks for
// captured writes of their keys that are not the engine's own (not
// echo-marked) and still in the log: writes the fold did not see. Writes
// of such a stale row are refused with a ConstraintError; the engine holds
// the row and applies it again after the sync's next fold (RetryHeld),
// which merges it with the application's write as with any local write.

// guardKeys locks the rows of keys and records which have captured writes
// the fold did not see (t.stale).
func (t *Tx) guardKeys(tb *rowsync.Table, ti *tableInfo, keys [][]rowsync.Value) error {
	if !t.applying || len(keys) == 0 {
		return nil
	}
	arrays, err := ti.keyArrays(tb, keys, true)
	if err != nil {
		return err
	}
	params, names := ti.keyUnnest(tb, 1)
	v := ti.logView(tb)
	userOn := make([]string, len(tb.Key))
	logOn := make([]string, len(tb.Key))
	for i, k := range tb.Key {
		c := &ti.cols[k]
		userOn[i] = fmt.Sprintf("t.%s = %s", quote(c.name), c.castElem("a."+keyCol(i)))
		logOn[i] = fmt.Sprintf("%s = %s", v.key[i], c.castElem("a."+keyCol(i)))
	}
	unnest := fmt.Sprintf("unnest(%s) WITH ORDINALITY AS a(%s, ord)", strings.Join(params, ", "), strings.Join(names, ", "))
	lock := fmt.Sprintf(`SELECT 1 FROM %s JOIN %s AS t ON %s FOR UPDATE OF t`, unnest, ti.qname, strings.Join(userOn, " AND "))
	if _, err := t.tx.Exec(t.ctx, lock, arrays...); err != nil {
		return fmt.Errorf("lock rows of %q: %w", tb.Name, err)
	}
	late := fmt.Sprintf(`SELECT a.ord FROM %s WHERE EXISTS (SELECT 1 FROM %s WHERE NOT l.echo AND %s)`,
		unnest, v.from, strings.Join(logOn, " AND "))
	rows, err := t.tx.Query(t.ctx, late, arrays...)
	if err != nil {
		return fmt.Errorf("read log of %q: %w", tb.Name, err)
	}
	defer rows.Close()
	// keyArrays left out keys it refuses; ordinals count the others.
	var kept [][]rowsync.Value
	for _, k := range keys {
		if _, err := ti.keyArgs(tb, k); err == nil {
			kept = append(kept, k)
		}
	}
	for rows.Next() {
		var ord int64
		if err := rows.Scan(&ord); err != nil {
			return err
		}
		if ord < 1 || ord > int64(len(kept)) {
			return fmt.Errorf("read log of %q: key position %d out of range", tb.Name, ord)
		}
		if t.stale == nil {
			t.stale = map[int64]map[string]bool{}
		}
		if t.stale[tb.ID] == nil {
			t.stale[tb.ID] = map[string]bool{}
		}
		t.stale[tb.ID][string(rowsync.EncodeValues(kept[ord-1]))] = true
	}
	return rows.Err()
}

// errStale is the reason a write of a stale row is refused.
type errStale struct{ table, key string }

func (e *errStale) Error() string {
	return fmt.Sprintf("row %s of %q was written here after this batch's fold; applied again after the next fold", e.key, e.table)
}

// checkStale refuses a write of a row guardKeys found stale.
func (t *Tx) checkStale(tb *rowsync.Table, keys ...[]rowsync.Value) error {
	s := t.stale[tb.ID]
	if s == nil {
		return nil
	}
	for _, k := range keys {
		if s[string(rowsync.EncodeValues(k))] {
			return &rowsync.ConstraintError{Err: &errStale{tb.Name, rowsync.FormatKey(k)}}
		}
	}
	return nil
}
