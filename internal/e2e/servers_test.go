package e2e_test

import (
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rowsync/rowsync/internal/testdb"
)

// TestServerEnginesCLI drives the binary against PostgreSQL and MariaDB as
// a user would: init with an id range, serve the server database over
// HTTP, sync a SQLite laptop with it, read status and conflicts, verify.
func TestServerEnginesCLI(t *testing.T) {
	ddl := map[string]string{
		"postgres": `CREATE TABLE item(id serial PRIMARY KEY, name varchar(40) NOT NULL, price numeric(10,2), seen timestamp)`,
		"mysql":    "CREATE TABLE item(id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(40) NOT NULL, price DECIMAL(10,2), seen DATETIME)",
	}
	for _, engine := range []string{"postgres", "mysql"} {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			hub := testdb.New(t, engine)
			app := testdb.App(t, hub)
			if _, err := app.Exec(ddl[engine]); err != nil {
				t.Fatal(err)
			}
			if _, err := app.Exec(`INSERT INTO item(name, price, seen) VALUES ('hammer', 12.50, '2024-05-01 10:00:00'), ('saw', 20, NULL)`); err != nil {
				t.Fatal(err)
			}
			r := ok(t, "init", "--db", hub, "--all", "--name", "office", "--id-range", "1000000")
			if !strings.Contains(r.stdout, "id range: ") {
				t.Errorf("init --id-range did not say what it moved:\n%s", r.stdout)
			}
			srv := serve(t, hub)

			laptop := filepath.Join(t.TempDir(), "laptop.db")
			execSQL(t, laptop, `CREATE TABLE item(id INTEGER PRIMARY KEY, name VARCHAR(40) NOT NULL, price NUMERIC(10,2), seen DATETIME)`)
			ok(t, "init", "--db", laptop, "--all", "--name", "laptop")
			ok(t, "sync", "--db", laptop, srv.url)
			db := open(t, laptop, false)
			if got := queryString(t, db, `SELECT name || ' ' || price || ' ' || seen FROM item WHERE id = 1`); got != "hammer 12.5 2024-05-01 10:00:00" {
				t.Errorf("laptop row 1: %q", got)
			}
			// The office inserts with its moved sequence; the laptop inserts
			// and edits; both ways.
			if _, err := app.Exec(`INSERT INTO item(name, price) VALUES ('drill', 99.99)`); err != nil {
				t.Fatal(err)
			}
			execSQL(t, laptop, `INSERT INTO item(id, name, price) VALUES (5, 'chisel', 4)`, `UPDATE item SET price = 13.75 WHERE id = 1`)
			ok(t, "sync", "--db", laptop, srv.url)
			if got := queryInt(t, db, `SELECT id FROM item WHERE name = 'drill'`); got != 1000000 {
				t.Errorf("the office's new row has id %d, want 1000000 (the moved sequence)", got)
			}
			var price string
			priceSQL := map[string]string{"postgres": `SELECT price::text FROM item WHERE id = $1`, "mysql": `SELECT CAST(price AS CHAR) FROM item WHERE id = ?`}
			if err := app.QueryRow(priceSQL[engine], 1).Scan(&price); err != nil {
				t.Fatal(err)
			}
			if price != "13.75" {
				t.Errorf("office price of item 1: %s, want 13.75", price)
			}
			r = ok(t, "verify", "--db", laptop, srv.url)
			if !strings.Contains(r.stdout, "identical") {
				t.Errorf("verify: %s", r)
			}
			r = ok(t, "status", "--db", hub)
			if !strings.Contains(r.stdout, "laptop") || strings.Contains(r.stdout, "@") && strings.Contains(r.stdout, ":secret") {
				t.Errorf("status of the hub:\n%s", r.stdout)
			}
			// A value the laptop holds but the office cannot: held there,
			// reported, and the sync still exits 0.
			execSQL(t, laptop, `INSERT INTO item(id, name) VALUES (6, 'a name far longer than the forty characters of the column')`)
			r = ok(t, "sync", "--db", laptop, srv.url)
			if !strings.Contains(r.stdout, "conflict") {
				t.Errorf("sync did not report the held row:\n%s", r.stdout)
			}
			r = ok(t, "conflicts", "--db", hub)
			if !strings.Contains(r.stdout, "constraint") {
				t.Errorf("conflicts on the hub:\n%s", r.stdout)
			}
		})
	}
}

// TestTwoServeProcessesOnePostgres runs two `rowsync serve` processes on
// the same PostgreSQL database, as a hub scaled past one machine, and has
// several SQLite nodes sync with both at once: nothing is lost, nothing
// corrupts, everyone converges.
func TestTwoServeProcessesOnePostgres(t *testing.T) {
	hub := testdb.New(t, "postgres")
	app := testdb.App(t, hub)
	if _, err := app.Exec(`CREATE TABLE note(id bigint PRIMARY KEY, body text, who text)`); err != nil {
		t.Fatal(err)
	}
	ok(t, "init", "--db", hub, "--all", "--name", "hub")
	servers := []*server{serve(t, hub), serve(t, hub)}
	const nodes = 4
	paths := make([]string, nodes)
	for i := range paths {
		paths[i] = filepath.Join(t.TempDir(), "node.db")
		execSQL(t, paths[i], `CREATE TABLE note(id INTEGER PRIMARY KEY, body TEXT, who TEXT)`)
		for j := range 50 {
			execSQL(t, paths[i], `INSERT INTO note VALUES (`+itoa(i*1000+j)+`, 'body', 'node `+itoa(i)+`')`)
		}
		ok(t, "init", "--db", paths[i], "--all", "--name", "n"+itoa(i))
	}
	for round := range 3 {
		var wg sync.WaitGroup
		errs := make(chan string, nodes)
		for i := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				execSQL(t, paths[i], `UPDATE note SET body = 'round `+itoa(round)+`' WHERE id % 7 = `+itoa(round))
				if r := rs(t, "sync", "--db", paths[i], servers[(i+round)%2].url); r.code != 0 {
					errs <- r.String()
				}
			}()
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Errorf("round %d: %s", round, e)
		}
	}
	for i := range nodes {
		ok(t, "sync", "--db", paths[i], servers[0].url)
	}
	for i := range nodes {
		r := ok(t, "verify", "--db", paths[i], servers[i%2].url)
		if !strings.Contains(r.stdout, "identical") {
			t.Errorf("node %d: %s", i, r)
		}
	}
	var n int64
	if err := app.QueryRow(`SELECT count(*) FROM note`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != nodes*50 {
		t.Errorf("hub has %d notes, want %d", n, nodes*50)
	}
}

func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}
