package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rowsync/rowsync"
	rshttp "github.com/rowsync/rowsync/http"
	"github.com/rowsync/rowsync/sqlite"
	"github.com/spf13/cobra"
)

func (a *app) demoCmd() *cobra.Command {
	var keep bool
	var dir string
	c := &cobra.Command{
		Use:   "demo",
		Short: "Show rowsync at work: an office and two shops syncing over HTTP",
		Long: `Creates three SQLite nodes in a temporary directory (an office hub and two
shops), writes to them while they are apart, including a conflicting edit
and a delete, syncs the shops with the office over HTTP on loopback, and
prints what happened and the converged result.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				d, err := os.MkdirTemp("", "rowsync-demo-")
				if err != nil {
					return err
				}
				dir = d
				if !keep {
					defer os.RemoveAll(dir)
				}
			} else if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			return a.demo(cmd.Context(), dir, keep)
		},
	}
	c.Flags().BoolVar(&keep, "keep", false, "keep the demo databases afterwards")
	c.Flags().StringVar(&dir, "dir", "", "directory for the demo databases (default: a new temporary one)")
	return c
}

type demoNode struct {
	name string
	db   *sqlite.DB
	node *rowsync.Node
}

func (d *demoNode) exec(q string, args ...any) error {
	_, err := d.db.SQL().Exec(q, args...)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", d.name, q, err)
	}
	return nil
}

const demoSchema = `
CREATE TABLE product(id INTEGER PRIMARY KEY, name TEXT NOT NULL, price NUMERIC NOT NULL);
CREATE TABLE sale(id TEXT PRIMARY KEY, product_id INTEGER NOT NULL REFERENCES product(id), qty INTEGER NOT NULL, shop TEXT NOT NULL);`

func (a *app) demo(ctx context.Context, dir string, keep bool) error {
	out := a.stdout
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	step := 0
	title := func(s string) { step++; say("\n%d. %s", step, s) }

	say("rowsync demo: an office and two shops, each with its own SQLite database.")
	say("Databases are in %s", dir)

	var nodes []*demoNode
	for _, name := range []string{"office", "shop-1", "shop-2"} {
		db, err := sqlite.Open(filepath.Join(dir, name+".db"), true)
		if err != nil {
			return err
		}
		defer db.Close()
		if _, err := db.SQL().Exec(demoSchema); err != nil {
			return fmt.Errorf("%s: create schema: %w", name, err)
		}
		nodes = append(nodes, &demoNode{name: name, db: db})
	}
	office, shop1, shop2 := nodes[0], nodes[1], nodes[2]

	title("The office has a price list; every node gets `rowsync init --all`.")
	for _, p := range [][]any{{1, "coffee", "2.50"}, {2, "tea", "1.80"}, {3, "cake", "3.20"}} {
		if err := office.exec(`INSERT INTO product VALUES (?, ?, ?)`, p...); err != nil {
			return err
		}
	}
	for _, n := range nodes {
		node, err := rowsync.Init(ctx, n.db, rowsync.InitOptions{All: true, Name: n.name})
		if err != nil {
			return err
		}
		n.node = node
	}
	srv := rshttp.NewServer(office.node, "127.0.0.1:0")
	if err := srv.Open(); err != nil {
		return err
	}
	defer srv.Close()
	say("   office serves on %s (rowsync serve --db office.db --listen ...)", srv.URL())

	sync := func(n *demoNode) error {
		res, err := n.node.Sync(ctx, rshttp.NewClient(srv.URL()), rowsync.SyncOptions{URL: srv.URL()})
		if err != nil {
			return fmt.Errorf("%s: sync: %w", n.name, err)
		}
		line := fmt.Sprintf("   %s <-> office: sent %s, received %s", n.name, plural(res.Pushed.Rows, "row"), plural(res.Pulled.Rows, "row"))
		if res.Pulled.NewConflicts > 0 {
			line += fmt.Sprintf(", %s recorded on %s", plural(res.Pulled.NewConflicts, "conflict"), n.name)
		}
		if res.Pushed.NewConflicts > 0 {
			line += fmt.Sprintf(", %s recorded on office", plural(res.Pushed.NewConflicts, "conflict"))
		}
		say("%s", line)
		return nil
	}

	title("The shops sync with the office and receive the price list; shop-1 has sold a tea.")
	for _, n := range []*demoNode{shop1, shop2} {
		if err := sync(n); err != nil {
			return err
		}
	}
	if err := shop1.exec(`INSERT INTO sale VALUES ('s1-0', 2, 1, 'shop-1')`); err != nil {
		return err
	}
	if err := sync(shop1); err != nil {
		return err
	}

	title("The link goes down. Everyone keeps working on their own database:")
	steps := []struct {
		n    *demoNode
		what string
		q    string
	}{
		{shop1, "shop-1 sells 2 coffees", `INSERT INTO sale VALUES ('s1-1', 1, 2, 'shop-1')`},
		{shop2, "shop-2 sells a cake", `INSERT INTO sale VALUES ('s2-1', 3, 1, 'shop-2')`},
		{shop1, "shop-1 sets the price of coffee to 2.60", `UPDATE product SET price = '2.60' WHERE id = 1`},
		{office, "the office sets the price of coffee to 2.75 (a moment later: a conflict)", `UPDATE product SET price = '2.75' WHERE id = 1`},
		{shop2, "shop-2 renames tea to 'green tea'", `UPDATE product SET name = 'green tea' WHERE id = 2`},
		{office, "the office raises the price of tea to 1.90 (another column: both survive)", `UPDATE product SET price = '1.90' WHERE id = 2`},
		{office, "the office adds muffins", `INSERT INTO product VALUES (4, 'muffin', '2.20')`},
		{shop1, "shop-1 refunds its tea sale s1-0 (a delete)", `DELETE FROM sale WHERE id = 's1-0'`},
	}
	for _, s := range steps {
		time.Sleep(5 * time.Millisecond) // distinct clock readings, for a readable story
		if err := s.n.exec(s.q); err != nil {
			return err
		}
		say("   - %s", s.what)
	}

	title("The link is back. Each shop syncs with the office (shop-1 twice, to get shop-2's sale):")
	for _, n := range []*demoNode{shop1, shop2, shop1} {
		if err := sync(n); err != nil {
			return err
		}
	}

	title("The conflict log on shop-1 (rowsync conflicts --db shop-1.db): nothing is lost silently.")
	cs, err := shop1.node.Conflicts(ctx)
	if err != nil {
		return err
	}
	for _, c := range cs {
		say("   %s %s key %s column %s: %s (by %s) won over %s (by %s)", c.Kind, c.Table, rowsync.FormatKey(c.Key), c.Column,
			c.Winner, nameOf(nodes, c.WinnerV.Node), c.Loser, nameOf(nodes, c.LoserV.Node))
	}

	title("Every node now holds the same data:")
	for _, n := range nodes {
		say("   %s:", n.name)
		if err := printTable(out, n.db.SQL(), `SELECT id, name, price FROM product ORDER BY id`); err != nil {
			return err
		}
		if err := printTable(out, n.db.SQL(), `SELECT id, product_id, qty, shop FROM sale ORDER BY id`); err != nil {
			return err
		}
	}

	title("rowsync verify compares the actual rows:")
	for _, n := range []*demoNode{shop1, shop2} {
		diffs, err := n.node.Verify(ctx, rshttp.NewClient(srv.URL()))
		if err != nil {
			return err
		}
		if len(diffs) != 0 {
			return fmt.Errorf("demo: %s and office differ in %d tables", n.name, len(diffs))
		}
		say("   %s and office: identical", n.name)
	}
	if keep {
		say("\nThe databases are kept in %s: try rowsync status --db %s", dir, filepath.Join(dir, "shop-1.db"))
	}
	say("\nNext: the five-minute tutorial in README.md.")
	return nil
}

func nameOf(nodes []*demoNode, id string) string {
	for _, n := range nodes {
		if n.node.ID() == id {
			return n.name
		}
	}
	return id
}

func printTable(out interface{ Write([]byte) (int, error) }, db *sql.DB, q string) error {
	rows, err := db.Query(q)
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "     %s\n", strings.Join(cols, "\t"))
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			parts[i] = fmt.Sprint(v)
		}
		fmt.Fprintf(w, "     %s\n", strings.Join(parts, "\t"))
	}
	w.Flush()
	return rows.Err()
}
