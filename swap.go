package rowsync

import (
	"fmt"
	"math"
)

// Unique values swapped between rows on one node (x.code=1, y.code=2
// becoming x.code=2, y.code=1) cannot be applied one row at a time on
// another node: each update collides with the other row's old value, and
// SQLite checks UNIQUE constraints per row, not at commit. When a batch
// ends with such failures, resolveSwaps moves the values the failed
// updates replace out of the way (a placeholder no row can hold), then
// applies the rows again; if any row it touched still fails, everything it
// did is rolled back and the rows are held as before.

const swapSavepoint = "rowsync_swap"

// setFrom makes the batch apply rows as coming from peer id.
func (b *batch) setFrom(id string) error {
	if id == b.from && (id == "" || b.fromIdx != 0) {
		return nil
	}
	b.from, b.fromIdx = id, 0
	if id == "" {
		return nil
	}
	var err error
	b.fromIdx, err = b.d.index(id)
	return err
}

// retryFailed applies failed rows again while that makes progress (a later
// row of the batch may have made room for an earlier one).
func (b *batch) retryFailed() error {
	for len(b.failed) > 0 {
		failed := b.failed
		b.failed = nil
		for _, f := range failed {
			if err := b.setFrom(f.from); err != nil {
				return err
			}
			if err := b.apply(f.t, f.in); err != nil {
				return err
			}
		}
		if len(b.failed) == len(failed) {
			return nil
		}
	}
	return nil
}

func (b *batch) resolveSwaps() error {
	if len(b.failed) < 2 {
		return nil
	}
	if err := b.tx.Savepoint(swapSavepoint); err != nil {
		return err
	}
	saved := b.failed
	savedRes := *b.res
	savedApplied := map[*Table]int{}
	for t, ks := range b.applied {
		savedApplied[t] = len(ks)
	}
	b.orig = map[string][]Value{}
	moved, err := b.movePlaceholders()
	if err == nil && moved {
		failed := b.failed
		b.failed = nil
		for _, f := range failed {
			if err = b.setFrom(f.from); err != nil {
				break
			}
			if err = b.apply(f.t, f.in); err != nil {
				break
			}
		}
		if err == nil {
			err = b.retryFailed()
		}
	}
	stuck := !moved
	for _, f := range b.failed {
		if _, ok := b.orig[f.t.Name+"\x00"+keyString(f.in.Key)]; ok {
			stuck = true
		}
	}
	b.orig = nil
	if err != nil {
		return err
	}
	if !stuck {
		return b.tx.Release(swapSavepoint)
	}
	// Undo: the rows stay held as they were.
	if err := b.tx.RollbackTo(swapSavepoint); err != nil {
		return err
	}
	b.failed, *b.res = saved, savedRes
	for t, n := range savedApplied {
		b.applied[t] = b.applied[t][:n]
	}
	for t := range b.applied {
		if _, ok := savedApplied[t]; !ok {
			delete(b.applied, t)
		}
	}
	return b.tx.Release(swapSavepoint)
}

// movePlaceholders sets the cells each failed update of a live row would
// change to placeholders, remembering the original values for the merge.
// It reports whether it moved anything; a constraint failure on the way
// (a CHECK, a STRICT column) reports false.
// placeholder returns the k-th value no row is expected to hold, of a form
// a column of the class accepts on every engine (PostgreSQL text cannot
// hold NUL, jsonb needs JSON, numeric(p,s) has a range): what a
// placeholder needs is to be distinct, not unusable.
func placeholder(class TypeClass, k int) Value {
	switch class {
	case ClassInteger, ClassBoolean, ClassReal:
		return IntValue(math.MinInt64/2 - int64(k))
	case ClassDecimal:
		return IntValue(-7_000_000 - int64(k))
	case ClassDateTime:
		return TextValue(fmt.Sprintf("0001-01-01 %02d:%02d:%02d", k/3600%24, k/60%60, k%60))
	case ClassText, ClassJSON:
		return TextValue(fmt.Sprintf(`"rowsync swap %d"`, k))
	}
	return BlobValue([]byte(fmt.Sprintf("\x00rowsync-swap-%d", k)))
}

func (b *batch) movePlaceholders() (bool, error) {
	moved := false
	for n, f := range b.failed {
		s, err := b.tx.GetShadow(f.t, f.in.Key)
		if err != nil {
			return false, err
		}
		if s == nil || s.Deleted {
			continue
		}
		local, err := loadRow(b.tx, f.t, s, nil, b.d)
		if err != nil {
			return false, err
		}
		m := merge(f.t, local, f.in)
		if !m.changed || !m.out.Alive() {
			continue
		}
		var cols []int
		var vals []Value
		for i := range m.out.Cells {
			if !m.out.Cells[i].Value.Equal(local.Cells[i].Value) {
				cols = append(cols, f.t.Cols[i])
				vals = append(vals, placeholder(f.t.Columns[f.t.Cols[i]].Class, n*64+i))
			}
		}
		if len(cols) == 0 {
			continue
		}
		if err := b.tx.UpdateRow(f.t, f.in.Key, cols, vals); err != nil {
			if _, ok := errorsAsConstraint(err); ok {
				return false, nil
			}
			return false, err
		}
		b.orig[f.t.Name+"\x00"+keyString(f.in.Key)] = local.Values()
		moved = true
	}
	return moved, nil
}
