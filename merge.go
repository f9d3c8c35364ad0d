package rowsync

// mergeResult is the outcome of merging an incoming row into the local one.
type mergeResult struct {
	out       *Row
	changed   bool // out's versions differ from local's
	conflicts []Conflict
}

func cloneRow(r *Row) *Row {
	c := *r
	c.Key = append([]Value(nil), r.Key...)
	c.Cells = append([]Cell(nil), r.Cells...)
	return &c
}

// merge applies the rules of SPEC §2 to one row: per cell, the newer
// version wins; the row's tombstone is the newer of the two; the row exists
// iff its newest version is newer than its tombstone. local may be nil (the
// row was never seen here). Conflicts are reported for values that lose to
// a write that had not seen them; merge is idempotent, commutative and
// associative in its outcome.
func merge(t *Table, local, in *Row) mergeResult {
	if local == nil {
		return mergeResult{out: cloneRow(in), changed: true}
	}
	out := cloneRow(local)
	var cs []Conflict
	conflict := func(kind string, col int, w, l Cell, detail string) {
		c := Conflict{Table: t.Name, Key: in.Key, Kind: kind, Winner: w.Value, WinnerV: w.V, Loser: l.Value, LoserV: l.V, Detail: detail}
		if col >= 0 {
			c.Column = t.Columns[t.Cols[col]].Name
		}
		cs = append(cs, c)
	}
	localAlive, inAlive := local.Alive(), in.Alive()
	// seen reports whether the writer of a delete (tomb) had seen cell c:
	// the deleting node wrote c itself, or its own cell for that column (d)
	// holds c's version or overwrote it, or holds the same value. TombPrev
	// alone is not enough: a concurrent write can be older by its clock
	// than a write the deleter had seen, and yet unseen by it.
	seen := func(c, d Cell, tomb, tombPrev Version) bool {
		return !c.V.After(tombPrev) && (c.V.Node == tomb.Node || c.V == d.V || c.V == d.Prev || c.Value.Equal(d.Value))
	}

	out.Live = maxVersion(local.Live, in.Live)
	if in.Tomb.After(local.Tomb) {
		out.Tomb, out.TombPrev = in.Tomb, in.TombPrev
	}
	for i := range out.Cells {
		if in.Cells[i].V.After(local.Cells[i].V) {
			out.Cells[i] = in.Cells[i]
		}
	}
	outAlive := out.Alive()
	// A value overwritten by a concurrent one is a conflict whenever the
	// row lives on, even if the newer value comes from (or the older goes
	// to) a deleted row's last state: the row comes back whole.
	for i := range out.Cells {
		l, r := local.Cells[i], in.Cells[i]
		switch r.V.Compare(l.V) {
		case 1:
			if concurrent(r, l) && outAlive {
				conflict(ConflictUpdate, i, r, l, "")
			}
		case -1:
			if concurrent(l, r) && outAlive {
				conflict(ConflictUpdate, i, l, r, "")
			}
		}
	}

	switch {
	case localAlive && !inAlive && !outAlive:
		// An incoming delete removed the row: local edits its writer had
		// not seen are lost with it.
		for i, l := range local.Cells {
			if !l.V.IsZero() && !seen(l, in.Cells[i], in.Tomb, in.TombPrev) && !l.V.After(in.Tomb) {
				conflict(ConflictDeleteWins, i, Cell{V: in.Tomb}, l, "row deleted by a concurrent delete")
			}
		}
	case !localAlive && inAlive && !outAlive:
		// An incoming update lost to a local delete that had not seen it.
		for i, r := range in.Cells {
			if !r.V.IsZero() && !seen(r, local.Cells[i], local.Tomb, local.TombPrev) && !r.V.After(local.Tomb) {
				conflict(ConflictDeleteWins, i, Cell{V: local.Tomb}, r, "update arrived after a concurrent delete")
			}
		}
	case !localAlive && !local.Tomb.IsZero() && outAlive && in.Tomb.Compare(local.Tomb) < 0:
		conflict(ConflictUpdateWins, -1, Cell{V: in.Newest()}, Cell{V: local.Tomb}, "row deleted here was brought back by a concurrent update")
	case !inAlive && !in.Tomb.IsZero() && outAlive && local.Tomb.Compare(in.Tomb) < 0 && localAlive:
		conflict(ConflictUpdateWins, -1, Cell{V: local.Newest()}, Cell{V: in.Tomb}, "concurrent delete lost to an update made here")
	}

	// Two rows created independently under one key.
	if localAlive && inAlive && !local.Live.IsZero() && !in.Live.IsZero() && local.Live != in.Live &&
		in.Tomb.Compare(local.Live) < 0 && local.Tomb.Compare(in.Live) < 0 {
		differ := false
		for i := range local.Cells {
			if !local.Cells[i].Value.Equal(in.Cells[i].Value) {
				differ = true
				break
			}
		}
		if differ {
			w, l := Cell{V: out.Live}, Cell{V: local.Live}
			if out.Live == local.Live {
				l.V = in.Live
			}
			conflict(ConflictKeyCollision, -1, w, l, "rows created independently on two nodes under the same key were merged column by column")
		}
	}
	return mergeResult{out: out, changed: !sameVersions(out, local), conflicts: cs}
}

// concurrent reports whether the write of cell w overwrote cell l without
// having seen it, with a different value: a conflict. A node sees its own
// earlier writes, and Prev names the other node's write the winner's chain
// of writes replaced.
func concurrent(w, l Cell) bool {
	return !l.V.IsZero() && w.V.Node != l.V.Node && w.Prev != l.V && !w.Value.Equal(l.Value)
}
