package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rowsync/rowsync"
	"github.com/rowsync/rowsync/engines"
	rshttp "github.com/rowsync/rowsync/http"
	"github.com/spf13/cobra"
)

func (a *app) initCmd() *cobra.Command {
	var db, tables, name string
	var all bool
	var idRange int64
	c := &cobra.Command{
		Use:   "init --db DB [--tables a,b | --all] [--name NAME] [--id-range START]",
		Short: "Install change tracking on a database (idempotent)",
		Long: `Install rowsync's bookkeeping and change-capture triggers on the listed
tables. Re-running is safe and adds newly listed tables. Rows already in a
table become tracked with an initial version. Every tracked table needs a
primary key. A new SQLite file is created if it does not exist.

--id-range START moves the id generator of every tracked table (PostgreSQL
sequences and identity columns, MySQL/MariaDB AUTO_INCREMENT) to START, so
that rows this node creates get ids from its own block and never collide
with another node's: give each node a block of its own (node 1: 1000000000,
node 2: 2000000000, ...). Generators are never moved backwards.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := needDB(db); err != nil {
				return err
			}
			var list []string
			for _, t := range strings.Split(tables, ",") {
				if t = strings.TrimSpace(t); t != "" {
					list = append(list, t)
				}
			}
			if len(list) == 0 && !all {
				return &exitError{code: 2, msg: "init: name the tables to track with --tables a,b or use --all"}
			}
			d, err := openDatabase(db, true)
			if err != nil {
				return err
			}
			defer d.Close()
			n, err := rowsync.Init(cmd.Context(), d, rowsync.InitOptions{Tables: list, All: all, Name: name})
			if err != nil {
				return fmt.Errorf("init %s: %w", db, err)
			}
			var names []string
			for _, t := range n.Tables() {
				names = append(names, t.Name)
			}
			fmt.Fprintf(a.stdout, "initialized node %s (id %s) on %s\ntracking %d tables: %s\n", n.Name(), n.ID(), d.Address(), len(names), strings.Join(names, ", "))
			if cmd.Flags().Changed("id-range") {
				r, ok := d.(engines.IDRanger)
				if !ok {
					return fmt.Errorf("init %s: --id-range: this engine has no id generators to move; SQLite assigns max(id)+1, so give each node's application its own id block instead (see docs/OPERATIONS.md)", db)
				}
				moved, err := r.SetIDRange(cmd.Context(), idRange)
				if err != nil {
					return fmt.Errorf("init %s: --id-range: %w", db, err)
				}
				for _, m := range moved {
					fmt.Fprintf(a.stdout, "id range: %s\n", m)
				}
				if len(moved) == 0 {
					fmt.Fprintf(a.stdout, "id range: every id generator was already at or past %d\n", idRange)
				}
			}
			return nil
		},
	}
	dbFlag(c, &db)
	c.Flags().StringVar(&tables, "tables", "", "comma-separated tables to track")
	c.Flags().BoolVar(&all, "all", false, "track every table")
	c.Flags().StringVar(&name, "name", "", "this node's name (kept if already set)")
	c.Flags().Int64Var(&idRange, "id-range", 0, "move every tracked table's id generator to START (PostgreSQL, MySQL)")
	return c
}

func (a *app) serveCmd() *cobra.Command {
	var db, listen string
	var batchRows int
	c := &cobra.Command{
		Use:   "serve --db DB --listen ADDR",
		Short: "Serve this node to peers over HTTP",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := needDB(db); err != nil {
				return err
			}
			n, err := a.openNode(cmd.Context(), db)
			if err != nil {
				return err
			}
			defer n.DB().Close()
			if batchRows > 0 {
				n.BatchRows = batchRows
			}
			s := rshttp.NewServer(n, listen)
			s.Logger = a.logger()
			if err := s.Listen(); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "serving node %s (id %s) on %s\n", n.Name(), n.ID(), s.URL())
			errc := make(chan error, 1)
			go func() { errc <- s.Serve() }()
			select {
			case err := <-errc:
				return err
			case <-cmd.Context().Done():
				fmt.Fprintln(a.stdout, "shutting down")
				return s.Close()
			}
		},
	}
	dbFlag(c, &db)
	c.Flags().StringVar(&listen, "listen", "127.0.0.1:7400", "address to listen on")
	batchRowsFlag(c, &batchRows)
	return c
}

// batchRowsFlag adds the hidden --batch-rows: the rows per batch this node
// sends (one transaction on the receiver). For tests of interrupted syncs.
func batchRowsFlag(c *cobra.Command, p *int) {
	c.Flags().IntVar(p, "batch-rows", 0, "rows per batch sent (default 1000)")
	c.Flags().MarkHidden("batch-rows")
}

func plural(n int64, word string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func (a *app) syncCmd() *cobra.Command {
	var db string
	var pushOnly, pullOnly, asJSON bool
	var batchRows int
	c := &cobra.Command{
		Use:   "sync --db DB PEER [--pull-only | --push-only]",
		Short: "Run one sync session with a peer (an http:// URL or another database)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := needDB(db); err != nil {
				return err
			}
			if pushOnly && pullOnly {
				return &exitError{code: 2, msg: "sync: --push-only and --pull-only exclude each other"}
			}
			ctx := cmd.Context()
			n, err := a.openNode(ctx, db)
			if err != nil {
				return err
			}
			defer n.DB().Close()
			peer, release, err := a.openPeer(ctx, args[0])
			if err != nil {
				return err
			}
			defer release()
			if batchRows > 0 {
				n.BatchRows = batchRows
				if pn, ok := peer.(*rowsync.Node); ok {
					pn.BatchRows = batchRows
				}
			}
			opt := rowsync.SyncOptions{PushOnly: pushOnly, PullOnly: pullOnly}
			if strings.HasPrefix(args[0], "http") {
				opt.URL = args[0]
			}
			start := time.Now()
			res, err := n.Sync(ctx, peer, opt)
			if err != nil {
				return fmt.Errorf("sync with %s: %w", args[0], err)
			}
			if asJSON {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			var parts []string
			var conflicts, held int64
			if res.Pushed != nil {
				parts = append(parts, "sent "+plural(res.Pushed.Rows, "row"))
			}
			if res.Pulled != nil {
				parts = append(parts, "received "+plural(res.Pulled.Rows, "row"))
				conflicts, held = res.Pulled.NewConflicts, res.Pulled.Held
			}
			fmt.Fprintf(a.stdout, "synced %s with %s in %s: %s\n", n.Name(), res.Peer.Name, time.Since(start).Round(time.Millisecond), strings.Join(parts, ", "))
			if conflicts > 0 {
				fmt.Fprintf(a.stdout, "%s recorded here; see: rowsync conflicts --db %s\n", plural(conflicts, "new conflict"), db)
			}
			if held > 0 {
				fmt.Fprintf(a.stdout, "%s held back by a local constraint (retried on every sync)\n", plural(held, "change"))
			}
			if res.Pushed != nil && res.Pushed.NewConflicts > 0 {
				fmt.Fprintf(a.stdout, "%s recorded on %s\n", plural(res.Pushed.NewConflicts, "new conflict"), res.Peer.Name)
			}
			return nil
		},
	}
	dbFlag(c, &db)
	c.Flags().BoolVar(&pushOnly, "push-only", false, "only send this node's changes")
	c.Flags().BoolVar(&pullOnly, "pull-only", false, "only receive the peer's changes")
	c.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	batchRowsFlag(c, &batchRows)
	return c
}

func (a *app) statusCmd() *cobra.Command {
	var db string
	var asJSON bool
	c := &cobra.Command{
		Use:   "status --db DB [--json]",
		Short: "Show this node: id, tracked tables, pending changes, peers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := needDB(db); err != nil {
				return err
			}
			n, err := a.openNode(cmd.Context(), db)
			if err != nil {
				return err
			}
			defer n.DB().Close()
			st, err := n.Status(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "node\t%s (id %s)\n", st.Node.Name, st.Node.ID)
			fmt.Fprintf(w, "database\t%s\n", st.Database)
			fmt.Fprintf(w, "cursor\t%d\n", st.Seq)
			var names []string
			for _, t := range st.Tables {
				names = append(names, t.Name)
			}
			fmt.Fprintf(w, "tables\t%d tracked: %s\n", len(st.Tables), strings.Join(names, ", "))
			fmt.Fprintf(w, "local writes\t%d not yet stamped (stamped at the next sync)\n", st.Unfolded)
			fmt.Fprintf(w, "conflicts\t%d (%s held by a constraint)\n", st.Conflicts, plural(int64(st.Held), "change"))
			w.Flush()
			if len(st.Peers) == 0 {
				fmt.Fprintln(a.stdout, "peers: none yet")
				return nil
			}
			fmt.Fprintln(a.stdout, "peers:")
			w = tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "  NAME\tID\tLAST SYNC\tSYNCS\tRECEIVED\tSENT\tPENDING")
			for _, p := range st.Peers {
				last := "never"
				if !p.LastSync.IsZero() {
					last = p.LastSync.Local().Format("2006-01-02 15:04:05")
				}
				fmt.Fprintf(w, "  %s\t%s\t%s\t%d\t%d\t%d\t%d\n", p.Name, p.ID[:min(8, len(p.ID))], last, p.SyncCount, p.RowsIn, p.RowsOut, p.Pending)
			}
			w.Flush()
			for _, p := range st.Peers {
				if p.LastError != "" {
					fmt.Fprintf(a.stdout, "last sync with %s failed: %s\n", p.Name, oneLine(p.LastError))
				}
			}
			return nil
		},
	}
	dbFlag(c, &db)
	c.Flags().BoolVar(&asJSON, "json", false, "print one JSON document")
	return c
}

// conflictJSON is one entry of `conflicts --json`.
type conflictJSON struct {
	ID       int64       `json:"id"`
	At       time.Time   `json:"at"`
	Table    string      `json:"table"`
	Key      []any       `json:"key"`
	Column   string      `json:"column,omitempty"`
	Kind     string      `json:"kind"`
	Winner   versionJSON `json:"winner"`
	Loser    versionJSON `json:"loser"`
	Peer     string      `json:"peer,omitempty"`
	Detail   string      `json:"detail,omitempty"`
	Resolved bool        `json:"resolved"`
}

type versionJSON struct {
	Value any    `json:"value"`
	HLC   int64  `json:"hlc"`
	Node  string `json:"node"`
	Time  string `json:"time,omitempty"`
}

func toVersionJSON(v rowsync.Value, ver rowsync.Version) versionJSON {
	j := versionJSON{Value: v.JSON(), HLC: ver.HLC, Node: ver.Node}
	if ver.HLC != 0 {
		j.Time = ver.Time().Format(time.RFC3339Nano)
	}
	return j
}

func (a *app) conflictsCmd() *cobra.Command {
	var db string
	var asJSON bool
	c := &cobra.Command{
		Use:   "conflicts --db DB [--json]",
		Short: "List every conflict this node knows of",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := needDB(db); err != nil {
				return err
			}
			n, err := a.openNode(cmd.Context(), db)
			if err != nil {
				return err
			}
			defer n.DB().Close()
			cs, err := n.Conflicts(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				out := make([]conflictJSON, 0, len(cs))
				for _, c := range cs {
					key := make([]any, len(c.Key))
					for i, k := range c.Key {
						key[i] = k.JSON()
					}
					out = append(out, conflictJSON{ID: c.ID, At: c.At, Table: c.Table, Key: key, Column: c.Column, Kind: c.Kind,
						Winner: toVersionJSON(c.Winner, c.WinnerV), Loser: toVersionJSON(c.Loser, c.LoserV), Peer: c.Peer, Detail: c.Detail, Resolved: c.Resolved})
				}
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			if len(cs) == 0 {
				fmt.Fprintln(a.stdout, "no conflicts")
				return nil
			}
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tKIND\tTABLE\tKEY\tCOLUMN\tWINNER\tLOSER\tSTATE")
			for _, c := range cs {
				state := "recorded"
				if c.Kind == rowsync.ConflictConstraint {
					state = "held"
					if c.Resolved {
						state = "resolved"
					}
				}
				col := c.Column
				if col == "" {
					col = "-"
				}
				fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, c.Kind, c.Table, rowsync.FormatKey(c.Key), col,
					describe(c.Kind, c.Winner, c.WinnerV, true), describe(c.Kind, c.Loser, c.LoserV, false), state)
			}
			w.Flush()
			for _, c := range cs {
				if c.Detail != "" && c.Kind == rowsync.ConflictConstraint && !c.Resolved {
					fmt.Fprintf(a.stdout, "conflict %d: %s\n", c.ID, c.Detail)
				}
			}
			return nil
		},
	}
	dbFlag(c, &db)
	c.Flags().BoolVar(&asJSON, "json", false, "print one JSON document")
	return c
}

func describe(kind string, v rowsync.Value, ver rowsync.Version, winner bool) string {
	switch {
	case kind == rowsync.ConflictDeleteWins && winner, kind == rowsync.ConflictUpdateWins && !winner:
		return "(deleted) " + ver.String()
	case kind == rowsync.ConflictUpdateWins, kind == rowsync.ConflictKeyCollision:
		return "(row) " + ver.String()
	case kind == rowsync.ConflictConstraint && winner:
		return "-"
	case kind == rowsync.ConflictConstraint:
		return "(incoming change) " + ver.String()
	}
	return v.String() + " " + ver.String()
}

func (a *app) verifyCmd() *cobra.Command {
	var db string
	c := &cobra.Command{
		Use:   "verify --db DB PEER",
		Short: "Compare the tracked tables of two nodes row by row; exit 0 iff identical",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := needDB(db); err != nil {
				return err
			}
			ctx := cmd.Context()
			n, err := a.openNode(ctx, db)
			if err != nil {
				return err
			}
			defer n.DB().Close()
			peer, release, err := a.openPeer(ctx, args[0])
			if err != nil {
				return err
			}
			defer release()
			diffs, err := n.Verify(ctx, peer)
			if err != nil {
				return fmt.Errorf("verify against %s: %w", args[0], err)
			}
			if len(diffs) == 0 {
				fmt.Fprintf(a.stdout, "identical: %d tables\n", len(n.Tables()))
				return nil
			}
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "TABLE\tROWS HERE\tROWS THERE")
			for _, d := range diffs {
				fmt.Fprintf(w, "%s\t%d\t%d\n", d.Table, d.LocalRows, d.RemoteRows)
			}
			w.Flush()
			verb := "differ"
			if len(diffs) == 1 {
				verb = "differs"
			}
			return &exitError{code: 1, msg: fmt.Sprintf("%s %s", plural(int64(len(diffs)), "table"), verb)}
		},
	}
	dbFlag(c, &db)
	return c
}
