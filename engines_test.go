package rowsync_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/rowsync/rowsync"
	"github.com/rowsync/rowsync/engines"
	"github.com/rowsync/rowsync/internal/testdb"
)

// openEngine opens a database address from testdb with its engine's
// adapter, closed when tb ends.
func openEngine(tb testing.TB, addr string) rowsync.Database {
	tb.Helper()
	db, err := engines.Open(tb.Context(), addr, true)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// The property test over server engines: all nodes PostgreSQL, all
// MySQL/MariaDB, and a mixed network where a SQLite node, a PostgreSQL hub
// and a MariaDB node (and a second SQLite node) write at random and sync in
// every direction and over several hops, ending identical value by value
// in the canonical encoding.

func propertySeeds() ([]uint64, int) {
	if testing.Short() {
		return []uint64{1, uint64(time.Now().UnixNano())}, 200
	}
	return []uint64{1, 2, uint64(time.Now().UnixNano())}, 600
}

func TestPropertyPostgres(t *testing.T) {
	seeds, steps := propertySeeds()
	runProperties(t, seeds, steps, "postgres", "postgres", "postgres")
}

func TestPropertyMySQL(t *testing.T) {
	seeds, steps := propertySeeds()
	runProperties(t, seeds, steps, "mysql", "mysql", "mysql")
}

func TestPropertyMixed(t *testing.T) {
	seeds, steps := propertySeeds()
	runProperties(t, seeds, steps, "sqlite", "postgres", "mysql", "sqlite")
}

// Two new rows that reference each other (a foreign-key cycle, here a
// couple whose partner keys point at each other, and a two-table cycle)
// can only be written together. They are held at first, then written
// together with the keys checked at commit where the engine can defer
// them: always on SQLite, for DEFERRABLE keys on PostgreSQL. Where it
// cannot (PostgreSQL's default NOT DEFERRABLE, MySQL/MariaDB, which have
// no deferred checks), they stay held as constraint conflicts. An orphan
// held in a table outside any cycle does not keep the cycle from being
// written.
func TestForeignKeyCycle(t *testing.T) {
	schema := func(engine, deferrable string) string {
		if engine == "sqlite" {
			return `CREATE TABLE person(id INTEGER PRIMARY KEY, name TEXT, partner INTEGER REFERENCES person(id));
				CREATE TABLE dept(id INTEGER PRIMARY KEY, head INTEGER REFERENCES staff(id));
				CREATE TABLE staff(id INTEGER PRIMARY KEY, dept INTEGER NOT NULL REFERENCES dept(id));
				CREATE TABLE note(id INTEGER PRIMARY KEY, person INTEGER NOT NULL REFERENCES person(id), "text" TEXT)`
		}
		txt := map[string]string{"postgres": "text", "mysql": "varchar(50)"}[engine]
		return fmt.Sprintf(`CREATE TABLE person(id bigint PRIMARY KEY, name %[1]s, partner bigint, FOREIGN KEY (partner) REFERENCES person(id) %[2]s);
			CREATE TABLE dept(id bigint PRIMARY KEY, head bigint);
			CREATE TABLE staff(id bigint PRIMARY KEY, dept bigint NOT NULL, FOREIGN KEY (dept) REFERENCES dept(id) %[2]s);
			ALTER TABLE dept ADD CONSTRAINT dept_head FOREIGN KEY (head) REFERENCES staff(id) %[2]s;
			CREATE TABLE note(id bigint PRIMARY KEY, person bigint NOT NULL, %[3]s %[1]s, FOREIGN KEY (person) REFERENCES person(id))`,
			txt, deferrable, testdb.Quote(engine, "text"))
	}
	// The couple arrives in one chunk, written by one statement: SQLite
	// and PostgreSQL check a key at the end of the statement, so it is
	// written even where keys cannot be deferred; MySQL checks each row.
	for _, tc := range []struct {
		name, engine, deferrable string
		couple, dept             bool // written
	}{
		{"sqlite", "sqlite", "", true, true},
		{"postgres deferrable", "postgres", "DEFERRABLE", true, true},
		{"postgres not deferrable", "postgres", "", true, false},
		{"mysql", "mysql", "", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newEngineSite(t, "a", "sqlite", schema("sqlite", ""))
			b := newEngineSite(t, "b", tc.engine, schema(tc.engine, tc.deferrable))
			a.site.exec(t, `INSERT INTO person VALUES (3, 'cy', NULL)`)
			syncSites(t, a.site, b.site)
			b.site.exec(t, testdb.Rebind(tc.engine, `DELETE FROM person WHERE id = 3`)) // note 5's parent, gone on b
			a.site.exec(t, `PRAGMA foreign_keys = OFF`)                                 // a writes the cycles in several statements
			a.site.exec(t, `INSERT INTO person VALUES (1, 'ann', 2), (2, 'bob', 1)`)
			a.site.exec(t, `INSERT INTO dept VALUES (10, 20)`)
			a.site.exec(t, `INSERT INTO staff VALUES (20, 10)`)
			a.site.exec(t, `INSERT INTO note VALUES (5, 3, 'orphan on b'), (6, 1, 'fine')`)
			a.site.exec(t, `PRAGMA foreign_keys = ON`)

			res, err := b.node.Sync(t.Context(), a.node, rowsync.SyncOptions{PullOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			var held []string
			for _, h := range b.held(t) {
				held = append(held, h.Table+" "+rowsync.FormatKey(h.Key))
			}
			slices.Sort(held)
			want := []string{"note 5"}
			wantRows := map[string]int64{"person": 2, "dept": 1, "staff": 1, "note": 1}
			if !tc.couple {
				want = append(want, "note 6", "person 1", "person 2")
				wantRows["person"], wantRows["note"] = 0, 0
			}
			if !tc.dept {
				want = append(want, "dept 10", "staff 20")
				wantRows["dept"], wantRows["staff"] = 0, 0
			}
			slices.Sort(want)
			if !slices.Equal(held, want) || res.Pulled.Held != int64(len(want)) {
				t.Errorf("b holds %q (reported %d), want %q", held, res.Pulled.Held, want)
			}
			count := func(table string) int64 {
				var n int64
				if err := b.app.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n
			}
			for table, n := range wantRows {
				if got := count(table); got != n {
					t.Errorf("b has %d rows in %s, want %d", got, table, n)
				}
			}
			for _, c := range b.conflicts(t) {
				if c.Kind != rowsync.ConflictConstraint {
					continue
				}
				if isHeld := slices.Contains(want, c.Table+" "+rowsync.FormatKey(c.Key)); c.Resolved == isHeld {
					t.Errorf("conflict %s: resolved %v while held %v", c.String(), c.Resolved, isHeld)
				}
			}
			// The next sync changes nothing: what was written stays, what is
			// held stays held.
			res, err = b.node.Sync(t.Context(), a.node, rowsync.SyncOptions{PullOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			if res.Pulled.Held != int64(len(want)) {
				t.Errorf("second sync: %d held, want %d", res.Pulled.Held, len(want))
			}
		})
	}
}

// TestMySQLCascadesCaptured checks the rows that MySQL's foreign-key
// actions change without firing triggers: a delete that cascades two
// levels down and sets another child's key to NULL, and a key change that
// cascades into a child's foreign key and into another child's primary
// key. The MySQL node's changes reach a SQLite node, which ends identical
// without running any cascade of its own (its keys do not cascade).
func TestMySQLCascadesCaptured(t *testing.T) {
	m := newEngineSite(t, "m", "mysql", `CREATE TABLE p(id BIGINT PRIMARY KEY, name VARCHAR(20));
		CREATE TABLE c(id BIGINT PRIMARY KEY, pid BIGINT, note VARCHAR(20), FOREIGN KEY (pid) REFERENCES p(id) ON DELETE CASCADE ON UPDATE CASCADE);
		CREATE TABLE g(id BIGINT PRIMARY KEY, cid BIGINT, FOREIGN KEY (cid) REFERENCES c(id) ON DELETE CASCADE);
		CREATE TABLE s(id BIGINT PRIMARY KEY, pid BIGINT, FOREIGN KEY (pid) REFERENCES p(id) ON DELETE SET NULL ON UPDATE SET NULL);
		CREATE TABLE k(pid BIGINT, line BIGINT, qty BIGINT, PRIMARY KEY (pid, line), FOREIGN KEY (pid) REFERENCES p(id) ON UPDATE CASCADE ON DELETE CASCADE)`)
	q := newEngineSite(t, "q", "sqlite", `CREATE TABLE p(id INTEGER PRIMARY KEY, name TEXT);
		CREATE TABLE c(id INTEGER PRIMARY KEY, pid INTEGER, note TEXT);
		CREATE TABLE g(id INTEGER PRIMARY KEY, cid INTEGER);
		CREATE TABLE s(id INTEGER PRIMARY KEY, pid INTEGER);
		CREATE TABLE k(pid INTEGER, line INTEGER, qty INTEGER, PRIMARY KEY (pid, line))`)
	ws, err := m.db.(interface {
		CascadeWarnings(context.Context) ([]string, error)
	}).CascadeWarnings(t.Context())
	if err != nil || len(ws) != 0 {
		t.Fatalf("cascade warnings %q, %v: want none, every action is captured", ws, err)
	}
	m.site.exec(t, `INSERT INTO p VALUES (1, 'one'), (2, 'two'), (3, 'three')`)
	m.site.exec(t, `INSERT INTO c VALUES (10, 1, 'a'), (11, 1, 'b'), (12, 2, 'c'), (13, 3, 'd')`)
	m.site.exec(t, `INSERT INTO g VALUES (100, 10), (101, 11), (102, 12)`)
	m.site.exec(t, `INSERT INTO s VALUES (200, 1), (201, 2)`)
	m.site.exec(t, `INSERT INTO k VALUES (1, 1, 5), (2, 1, 6), (2, 2, 7)`)
	syncSites(t, q.site, m.site)

	m.site.exec(t, `DELETE FROM p WHERE id = 1`)        // c 10, 11 and g 100, 101 go; s 200 gets NULL; k (1,1) goes
	m.site.exec(t, `UPDATE p SET id = 20 WHERE id = 2`) // c 12 follows; s 201 gets NULL; k (2,1), (2,2) become (20,1), (20,2)
	syncSites(t, q.site, m.site)

	want := map[string][]string{
		"p": {"2", "3"}, "c": {"12", "13"}, "g": {"102"}, "s": {"200", "201"}, "k": {"(20, 1)", "(20, 2)"},
	}
	ms, qs := readSnapshot(t, m), readSnapshot(t, q)
	for table, keys := range want {
		var got []string
		for k := range qs[table] {
			got = append(got, k)
		}
		slices.Sort(got)
		var mk []string
		for k := range ms[table] {
			mk = append(mk, k)
		}
		slices.Sort(mk)
		if table == "p" {
			keys = []string{"20", "3"}
		}
		if !slices.Equal(mk, keys) {
			t.Errorf("%s on the MySQL node: keys %q, want %q", table, mk, keys)
		}
		if !slices.Equal(got, mk) {
			t.Errorf("%s on the SQLite node: keys %q, MySQL node has %q", table, got, mk)
		}
		for k, row := range ms[table] {
			if !slices.EqualFunc(row, qs[table][k], rowsync.Value.Equal) {
				t.Errorf("%s %s: SQLite node has %v, MySQL node %v", table, k, qs[table][k], row)
			}
		}
	}
}

// TestCascadeBeforeRetriedUpdate (merge_test.go) on PostgreSQL and
// MariaDB: an update retried after a cascade of the same batch deleted its
// row is held, not applied to nothing, and the nodes converge.
func TestCascadeBeforeRetriedUpdateServers(t *testing.T) {
	ddl := map[string]string{
		"postgres": `CREATE TABLE parent(id bigint PRIMARY KEY, name text);
CREATE TABLE tag(id bigint PRIMARY KEY, pid bigint REFERENCES parent(id) ON DELETE CASCADE, label text UNIQUE);`,
		"mysql": `CREATE TABLE parent(id BIGINT PRIMARY KEY, name TEXT);
CREATE TABLE tag(id BIGINT PRIMARY KEY, pid BIGINT, label VARCHAR(20) UNIQUE, FOREIGN KEY (pid) REFERENCES parent(id) ON DELETE CASCADE);`,
	}
	for _, eng := range []string{"postgres", "mysql"} {
		t.Run(eng, func(t *testing.T) {
			a, b := newEngineSite(t, "a", eng, ddl[eng]), newEngineSite(t, "b", eng, ddl[eng])
			for _, q := range []string{`INSERT INTO parent VALUES (1, 'p'), (2, 'q')`, `INSERT INTO tag VALUES (10, 1, 't'), (11, 1, 'L')`} {
				if _, err := a.app.Exec(q); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := a.node.Sync(t.Context(), b.node, rowsync.SyncOptions{}); err != nil {
				t.Fatal(err)
			}
			for _, q := range []string{`UPDATE tag SET pid = 2 WHERE id = 10`, `DELETE FROM parent WHERE id = 1`, `UPDATE tag SET label = 'L' WHERE id = 10`} {
				if _, err := b.app.Exec(q); err != nil {
					t.Fatal(err)
				}
			}
			for range 2 {
				if _, err := a.node.Sync(t.Context(), b.node, rowsync.SyncOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			var n [2]int
			for i, s := range []*psite{a, b} {
				if err := s.app.QueryRow(`SELECT count(*) FROM tag`).Scan(&n[i]); err != nil {
					t.Fatal(err)
				}
			}
			if n[0] != n[1] {
				t.Errorf("tag rows: a has %d, b %d", n[0], n[1])
			}
		})
	}
}

// A delete received from a peer that cascades removes children the
// deleting node never saw: one inserted here since, one edited here since,
// and one the batch itself wrote before the cascade hit it (moved here to
// the deleted parent; the sender, where it has another parent, edited it).
// The nodes converge, and the node where the rows were lost lists their
// values in its conflict log. Before, the cascade of a row written earlier
// in the batch was dropped as an echo on PostgreSQL and MariaDB: the row
// was gone here and alive on the sender. See also
// TestCascadeOfReceivedDeleteRemovesConcurrentChild.
func TestCascadeOfReceivedDelete(t *testing.T) {
	pg := `CREATE TABLE parent(id bigint PRIMARY KEY, name text);
CREATE TABLE child(id bigint PRIMARY KEY, pid bigint REFERENCES parent(id) ON DELETE CASCADE, note text);
CREATE TABLE grandchild(id bigint PRIMARY KEY, cid bigint REFERENCES child(id) ON DELETE CASCADE, note text);`
	ddl := map[string]string{
		"sqlite":   pg,
		"postgres": pg,
		"mysql": `CREATE TABLE parent(id BIGINT PRIMARY KEY, name TEXT);
CREATE TABLE child(id BIGINT PRIMARY KEY, pid BIGINT, note TEXT, FOREIGN KEY (pid) REFERENCES parent(id) ON DELETE CASCADE);
CREATE TABLE grandchild(id BIGINT PRIMARY KEY, cid BIGINT, note TEXT, FOREIGN KEY (cid) REFERENCES child(id) ON DELETE CASCADE);`,
	}
	for _, eng := range []string{"sqlite", "postgres", "mysql"} {
		t.Run(eng, func(t *testing.T) {
			a, b := newEngineSite(t, "a", eng, ddl[eng]), newEngineSite(t, "b", eng, ddl[eng])
			exec := func(s *psite, qs ...string) {
				t.Helper()
				for _, q := range qs {
					if _, err := s.app.Exec(q); err != nil {
						t.Fatal(err)
					}
				}
			}
			sync := func() {
				t.Helper()
				for range 2 {
					if _, err := a.node.Sync(t.Context(), b.node, rowsync.SyncOptions{}); err != nil {
						t.Fatal(err)
					}
				}
			}
			exec(a, `INSERT INTO parent VALUES (1, 'p'), (2, 'q')`, `INSERT INTO child VALUES (10, 1, 'n'), (11, 2, 'm')`)
			sync()
			exec(b, `UPDATE child SET pid = 1 WHERE id = 11`)
			time.Sleep(2 * time.Millisecond)
			exec(a, `UPDATE child SET note = 'a edit' WHERE id = 11`, `DELETE FROM parent WHERE id = 1`)
			time.Sleep(2 * time.Millisecond)
			exec(b, `INSERT INTO child VALUES (12, 1, 'b new')`, `UPDATE child SET note = 'b note' WHERE id = 10`,
				`INSERT INTO grandchild VALUES (20, 12, 'b grand')`)
			sync()
			for _, s := range []*psite{a, b} {
				var n int
				if err := s.app.QueryRow(`SELECT count(*) FROM child`).Scan(&n); err != nil {
					t.Fatal(err)
				}
				if n != 0 {
					t.Errorf("%s has %d children of the deleted parent", s.name, n)
				}
			}
			for _, v := range []string{"b new", "b note", "b grand", "a edit"} {
				if !loggedLoser(t, "child", v, b.site) && !loggedLoser(t, "grandchild", v, b.site) {
					t.Errorf("%q is gone and in no conflict entry of b:\n%s", v, dumpConflicts(t, b.site))
				}
			}
		})
	}
}
