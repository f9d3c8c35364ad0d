package rowsync_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/rowsync/rowsync"
	"github.com/rowsync/rowsync/rowsynctest"
)

// Targeted lost-write scenarios: key changes, multi-hop chains, held
// changes, INSERT OR REPLACE through a UNIQUE column.

// loggedLoser reports whether some site's conflict log has v as a loser
// of table.
// notLostSilently checks that each value written to table is in a row of
// the first site (the sites have converged), or a loser in a site's
// conflict log, or that some site holds a change back (and lists it).
func notLostSilently(tb testing.TB, table string, vals []string, sites ...*site) {
	tb.Helper()
	all := strings.Join(sites[0].rows(tb, table), "|")
	held := 0
	for _, s := range sites {
		held += len(s.held(tb))
	}
	for _, v := range vals {
		if !strings.Contains(all, v) && !loggedLoser(tb, table, v, sites...) && held == 0 {
			tb.Errorf("%s lost silently: %q\n%s", v, sites[0].rows(tb, table), dumpConflicts(tb, sites...))
		}
	}
}

func loggedLoser(tb testing.TB, table, v string, sites ...*site) bool {
	tb.Helper()
	for _, s := range sites {
		for _, c := range s.conflicts(tb) {
			if c.Table == table && c.Loser.Equal(rowsync.TextValue(v)) {
				return true
			}
		}
	}
	return false
}

func dumpConflicts(tb testing.TB, sites ...*site) string {
	tb.Helper()
	var b strings.Builder
	for _, s := range sites {
		for _, c := range s.conflicts(tb) {
			b.WriteString(s.name + ": " + c.String() + "\n")
		}
		for _, h := range s.held(tb) {
			b.WriteString(s.name + ": held " + h.Table + " " + rowsync.FormatKey(h.Key) + " " + h.Error + "\n")
		}
	}
	return b.String()
}

// quiet syncs the chain pairs a few rounds.
func quiet(tb testing.TB, pairs ...[2]*site) {
	tb.Helper()
	for range 3 {
		for _, p := range pairs {
			syncSites(tb, p[0], p[1])
		}
	}
}

func noHeld(tb testing.TB, sites ...*site) {
	tb.Helper()
	for _, s := range sites {
		if hs := s.held(tb); len(hs) != 0 {
			tb.Errorf("%s holds %d changes:\n%s", s.name, len(hs), dumpConflicts(tb, s))
		}
	}
}

// 1. Primary-key updates.

func TestKeyUpdateRacingLaterEditOfOldKey(t *testing.T) {
	s := newSites(t, 2, mergeSchema)
	a, b := s[0], s[1]
	a.exec(t, `INSERT INTO item VALUES (1, 'a0', 'b0', 7)`)
	syncSites(t, a, b)
	a.exec(t, `UPDATE item SET id = 2 WHERE id = 1`)
	laterMilli(t)
	b.exec(t, `UPDATE item SET b = 'bnew' WHERE id = 1`)
	quiet(t, [2]*site{a, b})
	convergedExceptHeld(t, a, b)
	// b's edit is after a's delete of key 1: row 1 comes back whole; its
	// code 7 collides with row 2: one of them held, listed.
	t.Logf("a item %q\n%s", a.rows(t, "item"), dumpConflicts(t, a, b))
	if !strings.Contains(strings.Join(a.rows(t, "item"), "|"), "bnew") {
		held := len(a.held(t)) + len(b.held(t))
		if held == 0 && !loggedLoser(t, "item", "bnew", a, b) {
			t.Errorf("b's edit bnew is gone, neither held nor logged")
		}
	}
}

func TestKeyUpdateRacingEarlierEditOfOldKey(t *testing.T) {
	s := newSites(t, 2, mergeSchema)
	a, b := s[0], s[1]
	a.exec(t, `INSERT INTO item VALUES (1, 'a0', 'b0', NULL)`)
	syncSites(t, a, b)
	b.exec(t, `UPDATE item SET b = 'bnew' WHERE id = 1`)
	laterMilli(t)
	a.exec(t, `UPDATE item SET id = 2 WHERE id = 1`)
	quiet(t, [2]*site{a, b})
	convergedExceptHeld(t, a, b)
	t.Logf("a item %q\n%s", a.rows(t, "item"), dumpConflicts(t, a, b))
	if !strings.Contains(strings.Join(a.rows(t, "item"), "|"), "bnew") && !loggedLoser(t, "item", "bnew", a, b) {
		t.Errorf("b's edit bnew is gone and not logged")
	}
	noHeld(t, a, b)
}

func TestKeySwap(t *testing.T) {
	s := newSites(t, 2, mergeSchema)
	a, b := s[0], s[1]
	a.exec(t, `INSERT INTO item VALUES (1, 'one', 'x', 1), (2, 'two', 'y', 2)`)
	syncSites(t, a, b)
	a.exec(t, `UPDATE item SET id = 3 WHERE id = 1; UPDATE item SET id = 1 WHERE id = 2; UPDATE item SET id = 2 WHERE id = 3`)
	quiet(t, [2]*site{a, b})
	convergedExceptHeld(t, a, b)
	noHeld(t, a, b)
	t.Logf("%q", b.rows(t, "item"))
}

func TestKeySwapRacingEdit(t *testing.T) {
	s := newSites(t, 2, mergeSchema)
	a, b := s[0], s[1]
	a.exec(t, `INSERT INTO item VALUES (1, 'one', 'x', 1), (2, 'two', 'y', 2)`)
	syncSites(t, a, b)
	b.exec(t, `UPDATE item SET b = 'bedit' WHERE id = 1`)
	laterMilli(t)
	a.exec(t, `UPDATE item SET id = 3 WHERE id = 1; UPDATE item SET id = 1 WHERE id = 2; UPDATE item SET id = 2 WHERE id = 3`)
	quiet(t, [2]*site{a, b})
	convergedExceptHeld(t, a, b)
	t.Logf("%q\n%s", b.rows(t, "item"), dumpConflicts(t, a, b))
	if !strings.Contains(strings.Join(a.rows(t, "item"), "|"), "bedit") && !loggedLoser(t, "item", "bedit", a, b) {
		t.Errorf("bedit lost silently")
	}
}

func TestKeyUpdatedTwiceBetweenSyncs(t *testing.T) {
	for _, q := range []string{
		`UPDATE item SET id = 2 WHERE id = 1; UPDATE item SET id = 3 WHERE id = 2`,
		`UPDATE item SET id = 2 WHERE id = 1; UPDATE item SET id = 1 WHERE id = 2`,
		`UPDATE item SET id = 2, a = 'm' WHERE id = 1; UPDATE item SET id = 1, b = 'n' WHERE id = 2`,
	} {
		t.Run(q, func(t *testing.T) {
			s := newSites(t, 3, mergeSchema)
			a, b, c := s[0], s[1], s[2]
			a.exec(t, `INSERT INTO item VALUES (1, 'one', 'x', 1)`)
			syncSites(t, a, b)
			syncSites(t, b, c)
			c.exec(t, `UPDATE item SET a = 'c-early' WHERE id = 1`)
			laterMilli(t)
			a.exec(t, q)
			laterMilli(t)
			b.exec(t, `UPDATE item SET b = 'b-late' WHERE id = 1`)
			quiet(t, [2]*site{a, b}, [2]*site{b, c})
			convergedExceptHeld(t, a, b, c)
			t.Logf("%q\n%s", b.rows(t, "item"), dumpConflicts(t, a, b, c))
			notLostSilently(t, "item", []string{"c-early", "b-late"}, a, b, c)
		})
	}
}

// 2. Multi-hop chains.

func TestChainDeleteVersusEdit(t *testing.T) {
	for _, editFirst := range []bool{false, true} {
		t.Run(map[bool]string{false: "edit later", true: "edit earlier"}[editFirst], func(t *testing.T) {
			s := newSites(t, 3, mergeSchema)
			a, b, c := s[0], s[1], s[2]
			a.exec(t, `INSERT INTO item VALUES (1, 'one', 'x', 1), (2, 'two', 'y', 2)`)
			syncSites(t, a, b)
			syncSites(t, b, c)
			if editFirst {
				c.exec(t, `UPDATE item SET a = 'cedit' WHERE id = 1`)
				laterMilli(t)
				a.exec(t, `DELETE FROM item WHERE id = 1`)
			} else {
				a.exec(t, `DELETE FROM item WHERE id = 1`)
				laterMilli(t)
				c.exec(t, `UPDATE item SET a = 'cedit' WHERE id = 1`)
			}
			// b edits another column in the middle, before seeing either.
			b.exec(t, `UPDATE item SET b = 'bmid' WHERE id = 1`)
			syncSites(t, b, c)
			syncSites(t, a, b)
			syncSites(t, b, c)
			syncSites(t, a, b)
			quiet(t, [2]*site{a, b}, [2]*site{b, c})
			convergedExceptHeld(t, a, b, c)
			t.Logf("%q\n%s", b.rows(t, "item"), dumpConflicts(t, a, b, c))
			row := a.row(t, "item", 1)
			if !editFirst {
				if row == "" {
					t.Errorf("edit after the delete did not bring the row back")
				} else if !strings.Contains(row, "'one'") && !strings.Contains(row, "cedit") {
					t.Errorf("row not back whole: %q", row)
				}
			} else if row == "" && !loggedLoser(t, "item", "cedit", a, b, c) {
				t.Errorf("cedit lost silently")
			}
			noHeld(t, a, b, c)
		})
	}
}

// 3. Held changes.

func TestHeldUniqueBlockerDeleted(t *testing.T) {
	s := newSites(t, 2, mergeSchema)
	a, b := s[0], s[1]
	a.exec(t, `INSERT INTO item VALUES (1, 'from a', NULL, 5)`)
	b.exec(t, `INSERT INTO item VALUES (2, 'from b', NULL, 5)`)
	syncSites(t, a, b)
	t.Logf("after first\n%s", dumpConflicts(t, a, b))
	// The held row is edited again on its sender before the retry.
	a.exec(t, `UPDATE item SET a = 'a again' WHERE id = 1`)
	b.exec(t, `DELETE FROM item WHERE id = 2`)
	quiet(t, [2]*site{a, b})
	convergedExceptHeld(t, a, b)
	noHeld(t, a, b)
	if got := b.row(t, "item", 1); !strings.Contains(got, "a again") {
		t.Errorf("b: item 1 = %q", got)
	}
}

func TestHeldUniqueBlockerChanged(t *testing.T) {
	s := newSites(t, 2, mergeSchema)
	a, b := s[0], s[1]
	a.exec(t, `INSERT INTO item VALUES (1, 'from a', NULL, 5)`)
	b.exec(t, `INSERT INTO item VALUES (2, 'from b', NULL, 5)`)
	syncSites(t, a, b)
	b.exec(t, `UPDATE item SET code = 6 WHERE id = 2`)
	syncSites(t, b, a)
	a.exec(t, `UPDATE item SET b = 'later' WHERE id = 1`)
	quiet(t, [2]*site{a, b})
	convergedExceptHeld(t, a, b)
	noHeld(t, a, b)
	t.Logf("%q\n%s", b.rows(t, "item"), dumpConflicts(t, a, b))
}

func TestHeldRowThenDeletedOnSender(t *testing.T) {
	s := newSites(t, 2, mergeSchema)
	a, b := s[0], s[1]
	a.exec(t, `INSERT INTO item VALUES (1, 'from a', NULL, 5)`)
	b.exec(t, `INSERT INTO item VALUES (2, 'from b', NULL, 5)`)
	syncSites(t, a, b)
	a.exec(t, `DELETE FROM item WHERE id = 1`)
	quiet(t, [2]*site{a, b})
	convergedExceptHeld(t, a, b)
	noHeld(t, a, b)
	t.Logf("%q\n%s", b.rows(t, "item"), dumpConflicts(t, a, b))
}

func TestHeldChildThreeNodes(t *testing.T) {
	s := newSites(t, 3, mergeSchema)
	a, b, c := s[0], s[1], s[2]
	a.exec(t, `INSERT INTO parent VALUES (1, 'p')`)
	quiet(t, [2]*site{a, b}, [2]*site{b, c})
	a.exec(t, `DELETE FROM parent WHERE id = 1`)
	c.exec(t, `INSERT INTO child VALUES (10, 1, 'c child')`)
	syncSites(t, a, b)
	syncSites(t, b, c) // b holds the child; c holds parent delete
	c.exec(t, `UPDATE child SET note = 'c again' WHERE id = 10`)
	quiet(t, [2]*site{a, b}, [2]*site{b, c})
	convergedExceptHeld(t, a, b, c)
	t.Logf("%s", dumpConflicts(t, a, b, c))
	if b.row(t, "child", 10) == "" {
		if len(b.held(t)) == 0 {
			t.Errorf("b has no child 10 and holds nothing")
		}
	}
}

// 4. INSERT OR REPLACE through a UNIQUE column.

func TestReplaceThroughUniqueRacingEdit(t *testing.T) {
	for _, editLater := range []bool{false, true} {
		t.Run(map[bool]string{false: "edit earlier", true: "edit later"}[editLater], func(t *testing.T) {
			s := newSites(t, 2, mergeSchema)
			a, b := s[0], s[1]
			a.exec(t, `INSERT INTO item VALUES (1, 'one', 'x', 5)`)
			syncSites(t, a, b)
			if editLater {
				a.exec(t, `INSERT OR REPLACE INTO item VALUES (3, 'three', 'z', 5)`)
				laterMilli(t)
				b.exec(t, `UPDATE item SET b = 'bedit' WHERE id = 1`)
			} else {
				b.exec(t, `UPDATE item SET b = 'bedit' WHERE id = 1`)
				laterMilli(t)
				a.exec(t, `INSERT OR REPLACE INTO item VALUES (3, 'three', 'z', 5)`)
			}
			quiet(t, [2]*site{a, b})
			t.Logf("a %q\nb %q\n%s", a.rows(t, "item"), b.rows(t, "item"), dumpConflicts(t, a, b))
			convergedExceptHeld(t, a, b)
			notLostSilently(t, "item", []string{"bedit"}, a, b)
		})
	}
}

// convergedExceptHeld is converged leaving out the keys some site holds
// a change of.
func convergedExceptHeld(tb testing.TB, sites ...*site) {
	tb.Helper()
	excluded := map[string]map[string]bool{}
	for _, s := range sites {
		for _, h := range s.held(tb) {
			if excluded[h.Table] == nil {
				excluded[h.Table] = map[string]bool{}
			}
			excluded[h.Table][rowsync.FormatKey(h.Key)] = true
		}
	}
	for _, t := range sites[0].node.Tables() {
		skip := func(key string) bool { return excluded[t.Name][key] }
		want := selectRows(tb, sites[0].app, t, skip)
		for _, s := range sites[1:] {
			if got := selectRows(tb, s.app, t, skip); !slices.Equal(got, want) {
				tb.Errorf("table %s: %s has\n%q\n%s has\n%q", t.Name, s.name, got, sites[0].name, want)
			}
		}
	}
}

// 5. A sync cut mid-way with local writes on both sides before it
// resumes.
func TestInterruptedSyncWithWritesBetween(t *testing.T) {
	const batch = 3
	fill := `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20) INSERT INTO item SELECT i, 'a' || i, NULL, NULL FROM n`
	x := newSites(t, 2, mergeSchema)
	x[0].node.BatchRows = batch
	x[0].exec(t, fill)
	syncSites(t, x[0], x[1])
	x[0].exec(t, `UPDATE item SET a = a || '!'; DELETE FROM item WHERE id % 4 = 0`)
	size := int64(len(streamOf(t, x[0], x[1])))
	for _, dir := range []string{"pull", "push"} {
		for cut := int64(1); cut < size; cut += size / 13 {
			t.Run(fmt.Sprintf("%s cut at %d of %d", dir, cut, size), func(t *testing.T) {
				s := newSites(t, 2, mergeSchema)
				a, b := s[0], s[1]
				a.node.BatchRows = batch
				b.node.BatchRows = batch
				a.exec(t, fill)
				syncSites(t, a, b)
				a.exec(t, `UPDATE item SET a = a || '!'; DELETE FROM item WHERE id % 4 = 0`)
				laterMilli(t)
				b.exec(t, `UPDATE item SET b = 'b' || id WHERE id % 3 = 0`)
				var err error
				if dir == "pull" {
					_, err = b.node.Sync(t.Context(), &rowsynctest.CutPeer{Peer: a.node, PullAfter: cut}, rowsync.SyncOptions{PullOnly: true})
				} else {
					_, err = a.node.Sync(t.Context(), &rowsynctest.CutPeer{Peer: b.node, PushAfter: cut}, rowsync.SyncOptions{PushOnly: true})
				}
				if err == nil {
					t.Log("the cut came after the end: the sync succeeded")
				}
				laterMilli(t)
				a.exec(t, `UPDATE item SET b = 'a' || id WHERE id % 5 = 0; INSERT OR REPLACE INTO item VALUES (8, 'a8 back', NULL, NULL)`)
				b.exec(t, `UPDATE item SET a = 'bb' || id WHERE id % 7 = 0; DELETE FROM item WHERE id = 1`)
				syncSites(t, b, a)
				syncSites(t, a, b)
				convergedExceptHeld(t, a, b)
				noHeld(t, a, b)
				// Every last write by its clock is there.
				want := map[int64]string{5: "'a5!'", 8: "'a8 back'", 7: "'bb7'", 14: "'bb14'", 15: "'a15'", 12: "'b12'"}
				for id, v := range want {
					if got := a.row(t, "item", id); !strings.Contains(got, v) {
						t.Errorf("item %d = %q, want %s in it", id, got, v)
					}
				}
				if got := a.row(t, "item", 1); got != "" {
					t.Errorf("item 1 = %q after b deleted it", got)
				}
				// 20 rows: 1 deleted by b, 3 of 5 deleted by a (8 put back
				// by a, 12 brought back by b's later edit).
				if got := len(a.rows(t, "item")); got != 20-1-3 {
					t.Errorf("%d rows, want %d\n%s", got, 16, dumpConflicts(t, a, b))
				}
			})
		}
	}
}

func TestKeyUpdateOntoConcurrentlyInsertedKey(t *testing.T) {
	s := newSites(t, 2, mergeSchema)
	a, b := s[0], s[1]
	a.exec(t, `INSERT INTO item VALUES (1, 'one', 'x', NULL)`)
	syncSites(t, a, b)
	a.exec(t, `UPDATE item SET id = 5 WHERE id = 1`)
	b.exec(t, `INSERT INTO item VALUES (5, 'five from b', 'y', NULL)`)
	b.exec(t, `UPDATE item SET b = 'b edit' WHERE id = 1`)
	quiet(t, [2]*site{a, b})
	convergedExceptHeld(t, a, b)
	noHeld(t, a, b)
	t.Logf("%q\n%s", a.rows(t, "item"), dumpConflicts(t, a, b))
	notLostSilently(t, "item", []string{"five from b", "b edit", "y"}, a, b)
}

func TestUpdateOrReplaceThroughUniqueRacingEdit(t *testing.T) {
	s := newSites(t, 3, mergeSchema)
	a, b, c := s[0], s[1], s[2]
	a.exec(t, `INSERT INTO item VALUES (1, 'one', 'x', 5), (2, 'two', 'y', 6)`)
	quiet(t, [2]*site{a, b}, [2]*site{b, c})
	c.exec(t, `UPDATE item SET b = 'c early' WHERE id = 1`)
	laterMilli(t)
	a.exec(t, `UPDATE OR REPLACE item SET code = 5 WHERE id = 2`)
	laterMilli(t)
	b.exec(t, `UPDATE item SET a = 'b late' WHERE id = 2`)
	quiet(t, [2]*site{a, b}, [2]*site{b, c})
	convergedExceptHeld(t, a, b, c)
	noHeld(t, a, b, c)
	t.Logf("%q\n%s", a.rows(t, "item"), dumpConflicts(t, a, b, c))
	notLostSilently(t, "item", []string{"c early", "b late"}, a, b, c)
}

func TestHeldFromTwoPeersSwap(t *testing.T) {
	// x's swap of codes reaches c in two halves, from a and from b.
	s := newSites(t, 4, mergeSchema)
	x, a, b, c := s[0], s[1], s[2], s[3]
	x.exec(t, `INSERT INTO item VALUES (1, 'one', NULL, 1), (2, 'two', NULL, 2)`)
	quiet(t, [2]*site{x, a}, [2]*site{x, b}, [2]*site{x, c})
	x.exec(t, `UPDATE item SET code = 3 WHERE id = 1; UPDATE item SET code = 1 WHERE id = 2; UPDATE item SET code = 2 WHERE id = 1`)
	syncSites(t, x, a)
	syncSites(t, x, b)
	laterMilli(t)
	a.exec(t, `UPDATE item SET a = 'a edit' WHERE id = 2`)
	b.exec(t, `UPDATE item SET b = 'b edit' WHERE id = 1`)
	syncSites(t, a, c)
	t.Logf("after a-c: %s", dumpConflicts(t, c))
	syncSites(t, b, c)
	quiet(t, [2]*site{x, a}, [2]*site{x, b}, [2]*site{a, c}, [2]*site{b, c})
	convergedExceptHeld(t, x, a, b, c)
	noHeld(t, x, a, b, c)
	t.Logf("%q\n%s", c.rows(t, "item"), dumpConflicts(t, x, a, b, c))
}

func TestChainHeldThenResolvedElsewhere(t *testing.T) {
	// a–b–c: b holds a's row (unique clash with b's own); c, which
	// never talks to a, changes b's row out of the way.
	s := newSites(t, 3, mergeSchema)
	a, b, c := s[0], s[1], s[2]
	b.exec(t, `INSERT INTO item VALUES (2, 'from b', NULL, 5)`)
	syncSites(t, b, c)
	a.exec(t, `INSERT INTO item VALUES (1, 'from a', NULL, 5)`)
	syncSites(t, a, b)
	if len(b.held(t)) == 0 {
		t.Fatalf("b holds nothing")
	}
	laterMilli(t)
	c.exec(t, `UPDATE item SET code = 6 WHERE id = 2`)
	quiet(t, [2]*site{a, b}, [2]*site{b, c})
	convergedExceptHeld(t, a, b, c)
	noHeld(t, a, b, c)
	if got := c.row(t, "item", 1); got == "" {
		t.Errorf("a's row never reached c")
	}
}

// A delete received for a parent whose ON DELETE CASCADE removes, on the
// receiver, a child the deleter never saw (inserted, or edited after the
// delete by its clock, on the receiver or on a node behind it): the
// cascade is a local write of the receiver, so the child is gone on every
// node, and the receiver logs its values as delete-wins conflicts. The
// same foreign key without the cascade holds the delete and lists it
// (TestChildOfConcurrentlyDeletedParentIsHeld). A key change of the parent
// is a delete and an insert, so ON UPDATE CASCADE children racing it go
// the same way. Before, no conflict named them (the values were lost
// silently).
func TestParentKeyUpdateCascadesRacingChildEdit(t *testing.T) {
	const schema = `CREATE TABLE parent(id INTEGER PRIMARY KEY, name TEXT);
		CREATE TABLE child(id INTEGER PRIMARY KEY, pid INTEGER REFERENCES parent(id) ON UPDATE CASCADE ON DELETE CASCADE, note TEXT);`
	for _, later := range []bool{false, true} {
		t.Run(fmt.Sprint("edit later ", later), func(t *testing.T) {
			s := newSites(t, 3, schema)
			a, b, c := s[0], s[1], s[2]
			a.exec(t, `INSERT INTO parent VALUES (1, 'p'); INSERT INTO child VALUES (10, 1, 'n'), (11, 1, 'm')`)
			quiet(t, [2]*site{a, b}, [2]*site{b, c})
			if later {
				a.exec(t, `UPDATE parent SET id = 2 WHERE id = 1`)
				laterMilli(t)
				c.exec(t, `UPDATE child SET note = 'c note' WHERE id = 10; INSERT INTO child VALUES (12, 1, 'c new')`)
			} else {
				c.exec(t, `UPDATE child SET note = 'c note' WHERE id = 10; INSERT INTO child VALUES (12, 1, 'c new')`)
				laterMilli(t)
				a.exec(t, `UPDATE parent SET id = 2 WHERE id = 1`)
			}
			quiet(t, [2]*site{a, b}, [2]*site{b, c})
			convergedExceptHeld(t, a, b, c)
			t.Logf("parent %q child %q\n%s", a.rows(t, "parent"), a.rows(t, "child"), dumpConflicts(t, a, b, c))
			notLostSilently(t, "child", []string{"c note", "c new"}, a, b, c)
		})
	}
}

// See TestParentKeyUpdateCascadesRacingChildEdit.
func TestCascadeOfReceivedDeleteRemovesConcurrentChild(t *testing.T) {
	const schema = `CREATE TABLE parent(id INTEGER PRIMARY KEY, name TEXT);
		CREATE TABLE child(id INTEGER PRIMARY KEY, pid INTEGER REFERENCES parent(id) ON DELETE CASCADE, note TEXT);`
	for _, n := range []int{2, 3} {
		t.Run(fmt.Sprint(n, " nodes"), func(t *testing.T) {
			s := newSites(t, n, schema)
			a, z := s[0], s[n-1]
			var pairs [][2]*site
			for i := 0; i+1 < n; i++ {
				pairs = append(pairs, [2]*site{s[i], s[i+1]})
			}
			a.exec(t, `INSERT INTO parent VALUES (1, 'p'); INSERT INTO child VALUES (10, 1, 'n')`)
			quiet(t, pairs...)
			a.exec(t, `DELETE FROM parent WHERE id = 1`)
			laterMilli(t)
			z.exec(t, `INSERT INTO child VALUES (12, 1, 'z new'); UPDATE child SET note = 'z note' WHERE id = 10`)
			quiet(t, pairs...)
			convergedExceptHeld(t, s...)
			t.Logf("parent %q child %q\n%s", a.rows(t, "parent"), a.rows(t, "child"), dumpConflicts(t, s...))
			all := strings.Join(a.rows(t, "child"), "|")
			for _, v := range []string{"z note", "z new"} {
				if !strings.Contains(all, v) && !loggedLoser(t, "child", v, s...) {
					t.Errorf("%s: gone everywhere, in no conflict log", v)
				}
			}
		})
	}
}

func TestSQLiteConflictClausesRacingEdits(t *testing.T) {
	for _, q := range []string{
		`UPDATE OR REPLACE item SET id = 2 WHERE id = 1`,
		`UPDATE OR REPLACE item SET code = 2 WHERE id = 1`,
		`INSERT OR IGNORE INTO item VALUES (3, 'ign', NULL, 2)`,
		`INSERT INTO item VALUES (3, 'up', NULL, 2) ON CONFLICT(code) DO UPDATE SET a = excluded.a`,
		`INSERT INTO item VALUES (3, 'up', NULL, 2) ON CONFLICT(code) DO UPDATE SET id = 4`,
		`INSERT OR REPLACE INTO item VALUES (2, 'rep', NULL, 1)`,
		`INSERT OR IGNORE INTO item VALUES (3, 'ign', NULL, 2); INSERT OR REPLACE INTO item VALUES (2, 'rep', NULL, NULL)`,
		`REPLACE INTO item VALUES (3, 'r3', NULL, 1); REPLACE INTO item VALUES (1, 'r1', NULL, 3)`,
	} {
		for _, later := range []bool{false, true} {
			t.Run(fmt.Sprint(q, " edit later ", later), func(t *testing.T) {
				s := newSites(t, 3, mergeSchema)
				a, b, c := s[0], s[1], s[2]
				a.exec(t, `INSERT INTO item VALUES (1, 'one', 'x', 1), (2, 'two', 'y', 2)`)
				quiet(t, [2]*site{a, b}, [2]*site{b, c})
				if !later {
					c.exec(t, `UPDATE item SET b = 'c1' WHERE id = 1; UPDATE item SET b = 'c2' WHERE id = 2`)
					laterMilli(t)
				}
				a.exec(t, q)
				if later {
					laterMilli(t)
					c.exec(t, `UPDATE item SET b = 'c1' WHERE id = 1; UPDATE item SET b = 'c2' WHERE id = 2`)
				}
				quiet(t, [2]*site{a, b}, [2]*site{b, c})
				convergedExceptHeld(t, a, b, c)
				t.Logf("%q\n%s", a.rows(t, "item"), dumpConflicts(t, a, b, c))
				notLostSilently(t, "item", []string{"c1", "c2"}, a, b, c)
			})
		}
	}
}

func TestSetNullCascadeAndMultiColumnUnique(t *testing.T) {
	const schema = `CREATE TABLE parent(id INTEGER PRIMARY KEY, name TEXT);
		CREATE TABLE tag(id INTEGER PRIMARY KEY, pid INTEGER REFERENCES parent(id) ON DELETE SET NULL, label TEXT, grp TEXT, UNIQUE(label, grp));`
	s := newSites(t, 3, schema)
	a, b, c := s[0], s[1], s[2]
	pairs := [][2]*site{{a, b}, {b, c}}
	a.exec(t, `INSERT INTO parent VALUES (1, 'p'), (2, 'q'); INSERT INTO tag VALUES (10, 1, 'L', 'g'), (11, 2, 'M', 'g'), (12, 1, 'N', NULL)`)
	quiet(t, pairs...)
	a.exec(t, `DELETE FROM parent WHERE id = 1; UPDATE tag SET label = 'M', grp = NULL WHERE id = 10`)
	laterMilli(t)
	c.exec(t, `UPDATE tag SET pid = 2 WHERE id = 12; INSERT OR REPLACE INTO tag VALUES (13, 1, 'M', 'g'); UPDATE tag SET label = 'N' WHERE id = 10`)
	quiet(t, pairs...)
	convergedExceptHeld(t, a, b, c)
	t.Logf("%q\n%q\n%s", a.rows(t, "parent"), a.rows(t, "tag"), dumpConflicts(t, s...))
}

// A stream cut after a batch that held a row whose blocker goes away in a
// later batch, with local writes of both rows before the sync resumes.
func TestCutAfterHeldBatch(t *testing.T) {
	x := newSites(t, 2, mergeSchema)
	setup := func(a, b *site) {
		a.node.BatchRows = 2
		a.exec(t, `INSERT INTO item VALUES (1, 'one', NULL, 1), (2, 'two', NULL, 2), (3, 'three', NULL, 3), (4, 'four', NULL, 4)`)
		syncSites(t, a, b)
		// a moves code 4 to row 1 and deletes row 4: row 1's update is
		// refused on b until the delete of row 4 arrives, at the end.
		a.exec(t, `DELETE FROM item WHERE id = 4; UPDATE item SET code = 4 WHERE id = 1; UPDATE item SET a = 'two!' WHERE id = 2; UPDATE item SET a = 'three!' WHERE id = 3`)
	}
	setup(x[0], x[1])
	size := int64(len(streamOf(t, x[0], x[1])))
	for cut := int64(1); cut < size; cut += 7 {
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			s := newSites(t, 2, mergeSchema)
			a, b := s[0], s[1]
			setup(a, b)
			if _, err := b.node.Sync(t.Context(), &rowsynctest.CutPeer{Peer: a.node, PullAfter: cut}, rowsync.SyncOptions{PullOnly: true}); err == nil {
				t.Log("not cut")
			}
			laterMilli(t)
			had4 := b.row(t, "item", 4) != "" // not if the cut came after the delete
			b.exec(t, `UPDATE item SET b = 'b1' WHERE id = 1; UPDATE item SET b = 'b4' WHERE id = 4`)
			a.exec(t, `UPDATE item SET b = 'a1' WHERE id = 1`)
			quiet(t, [2]*site{b, a})
			convergedExceptHeld(t, a, b)
			// b's later edit of row 4 brings it back, and its code
			// clashes with row 1's: held, listed on both sides.
			vals := []string{"a1"}
			if had4 {
				vals = append(vals, "b4")
			}
			notLostSilently(t, "item", vals, a, b)
		})
	}
}

func TestReplaceThroughUniqueRacingMoveAway(t *testing.T) {
	for _, later := range []bool{false, true} {
		t.Run(fmt.Sprint("edit later ", later), func(t *testing.T) {
			s := newSites(t, 3, mergeSchema)
			a, b, c := s[0], s[1], s[2]
			pairs := [][2]*site{{a, b}, {b, c}}
			a.exec(t, `INSERT INTO item VALUES (1, 'one', 'x', 5)`)
			quiet(t, pairs...)
			if !later {
				c.exec(t, `UPDATE item SET code = 9, b = 'moved' WHERE id = 1`)
				laterMilli(t)
			}
			a.exec(t, `INSERT OR REPLACE INTO item VALUES (3, 'three', 'z', 5)`)
			if later {
				laterMilli(t)
				c.exec(t, `UPDATE item SET code = 9, b = 'moved' WHERE id = 1`)
			}
			quiet(t, pairs...)
			convergedExceptHeld(t, a, b, c)
			noHeld(t, a, b, c)
			t.Logf("%q\n%s", a.rows(t, "item"), dumpConflicts(t, s...))
			all := strings.Join(a.rows(t, "item"), "|")
			if later && !strings.Contains(all, "moved") {
				t.Errorf("the later edit did not bring row 1 back")
			}
			if !strings.Contains(all, "moved") && !loggedLoser(t, "item", "moved", s...) {
				t.Errorf("moved lost silently")
			}
		})
	}
}

// A UNIQUE column declared with a conflict clause (ON CONFLICT REPLACE,
// IGNORE, FAIL, ROLLBACK) applies it to the engine's own writes too,
// unless they name their own: an incoming row that takes another row's
// value removed that row (REPLACE; in a table no cascade or trigger writes,
// EndApply then emptied its log, so the removal was never captured), or
// was dropped with no error (IGNORE), or rolled the whole batch back
// (ROLLBACK). Either way a row was gone silently, or the nodes diverged.
// The engine's writes say OR ABORT: refused, the row is held and listed.
func TestUniqueColumnWithConflictClause(t *testing.T) {
	for _, clause := range []string{"REPLACE", "IGNORE", "FAIL", "ROLLBACK", "ABORT"} {
		t.Run(clause, func(t *testing.T) {
			schema := `CREATE TABLE item(id INTEGER PRIMARY KEY, code INTEGER UNIQUE ON CONFLICT ` + clause + `, a TEXT);`
			s := newSites(t, 3, schema)
			a, b, c := s[0], s[1], s[2]
			a.exec(t, `INSERT INTO item VALUES (1, 5, 'from a'), (3, 6, 'three')`)
			b.exec(t, `INSERT INTO item VALUES (2, 5, 'from b'), (4, 7, 'four')`)
			for _, x := range s {
				for _, y := range s {
					if x != y {
						if _, err := x.node.Sync(t.Context(), y.node, rowsync.SyncOptions{}); err != nil {
							t.Fatalf("sync %s with %s: %v", x.name, y.name, err)
						}
					}
				}
			}
			quiet(t, [2]*site{a, b}, [2]*site{b, c})
			convergedExceptHeld(t, a, b, c)
			for _, x := range s {
				for _, id := range []int64{3, 4} {
					if x.row(t, "item", id) == "" {
						t.Errorf("%s: item %d missing", x.name, id)
					}
				}
				for _, id := range []int64{1, 2} {
					if x.row(t, "item", id) == "" && len(x.held(t)) == 0 {
						t.Errorf("%s: item %d missing, and nothing held:\n%s", x.name, id, dumpConflicts(t, s...))
					}
				}
			}
		})
	}
}

// A node that edits a row and then deletes it, between two syncs, loses
// nothing of anyone's: its peers must not log its own earlier value (which
// they had from it) as lost to the delete. A value another node wrote
// that the deleter never saw still is.
func TestEditThenDeleteOfOwnRow(t *testing.T) {
	s := newSites(t, 3, mergeSchema)
	a, b, c := s[0], s[1], s[2]
	pairs := [][2]*site{{a, b}, {b, c}}
	a.exec(t, `INSERT INTO item VALUES (1, 'a0', 'b0', NULL), (2, 'x0', 'y0', NULL)`)
	quiet(t, pairs...)
	laterMilli(t)
	a.exec(t, `UPDATE item SET a = 'a1' WHERE id = 1; UPDATE item SET a = 'x1' WHERE id = 2`)
	laterMilli(t)
	c.exec(t, `UPDATE item SET b = 'y-c' WHERE id = 2`)
	laterMilli(t)
	a.exec(t, `DELETE FROM item`)
	quiet(t, pairs...)
	convergedExceptHeld(t, a, b, c)
	var got []string
	for _, x := range s {
		for _, cf := range x.conflicts(t) {
			got = append(got, x.name+": "+cf.String()+" loser "+cf.Loser.String())
		}
	}
	want := []string{`c: delete-wins item key 2 column b loser "y-c"`}
	if !slices.Equal(got, want) {
		t.Errorf("conflicts:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A write is stamped with the time it was made, whatever else the fold
// stamps with it: here a's edit of item 1 comes before b's delete of it,
// and a writes other tables after the delete, before it syncs. Stamped
// with one clock through all tables, the edit took the time of the later
// writes of a table folded before item's, won over the delete and brought
// the row back everywhere.
func TestFoldStampsWritesAtTheirTime(t *testing.T) {
	s := newSites(t, 2, mergeSchema)
	a, b := s[0], s[1]
	a.exec(t, `INSERT INTO item VALUES (1, 'one', 'x', NULL); INSERT INTO parent VALUES (1, 'p'); INSERT INTO child VALUES (1, 1, 'c')`)
	quiet(t, [2]*site{a, b})
	a.exec(t, `UPDATE item SET b = 'edited' WHERE id = 1`)
	laterMilli(t)
	b.exec(t, `DELETE FROM item WHERE id = 1`)
	laterMilli(t)
	a.exec(t, `UPDATE parent SET name = 'later' WHERE id = 1; UPDATE child SET note = 'later' WHERE id = 1; INSERT INTO item VALUES (2, 'two', 'later', NULL)`)
	quiet(t, [2]*site{a, b})
	convergedExceptHeld(t, a, b)
	if got := a.row(t, "item", 1); got != "" {
		t.Errorf("item 1 = %s, want it deleted: the delete was made after the edit\n%s", got, dumpConflicts(t, a, b))
	}
	if !loggedLoser(t, "item", "edited", a, b) {
		t.Errorf("the edit the delete overrode is in no conflict log\n%s", dumpConflicts(t, a, b))
	}
}
