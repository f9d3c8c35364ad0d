package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/rowsync/rowsync"
	"github.com/rowsync/rowsync/engines"
	"github.com/rowsync/rowsync/sqlite"
	"github.com/spf13/cobra"
)

func (a *app) cloneCmd() *cobra.Command {
	var db, name string
	c := &cobra.Command{
		Use:   "clone PEER --db DB [--name NAME]",
		Short: "Make a new node from a peer's data (pulled only)",
		Long: `Make DB a new rowsync node, with an id of its own, holding PEER's data.
PEER is an http(s):// URL of a rowsync serve, or the address of another
initialized database. Nothing is sent to PEER.

Into a new SQLite file (or one without tables) clone first creates the
tables PEER tracks, from PEER's schema: columns, primary keys and foreign
keys (with their ON DELETE/ON UPDATE actions). UNIQUE constraints, CHECKs,
NOT NULL, defaults, indexes, views and triggers are not copied: add them
yourself if the application needs them. Declared types are PEER's when
PEER is SQLite, otherwise SQLite types of the same type class.

Into an existing database (any engine) clone creates nothing: every table
PEER tracks must exist already, with the same columns, keys and type
classes, and should be empty.

If the clone fails, a SQLite file it created is removed again.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := needDB(db); err != nil {
				return err
			}
			return a.clone(cmd.Context(), db, args[0], name)
		},
	}
	dbFlag(c, &db)
	c.Flags().StringVar(&name, "name", "", "the new node's name (default node-XXXXXX)")
	return c
}

// fileState is what a SQLite file was before the clone, to undo it.
type fileState int

const (
	notSQLite fileState = iota
	fileNew             // did not exist: removed on failure
	fileEmpty           // existed with 0 bytes: emptied again on failure
	fileThere           // existed with content
)

func (a *app) clone(ctx context.Context, db, peerAddr, name string) error {
	engine, err := engines.Engine(db)
	if err != nil {
		return fmt.Errorf("clone: --db: %w", err)
	}
	state, path := notSQLite, ""
	if engine == "sqlite" {
		path = strings.TrimPrefix(db, "sqlite:")
		switch fi, err := os.Stat(path); {
		case errors.Is(err, os.ErrNotExist):
			state = fileNew
		case err != nil:
			return fmt.Errorf("clone: %w", err)
		case fi.Size() == 0:
			state = fileEmpty
		default:
			state = fileThere
		}
	}
	peer, release, err := a.openPeer(ctx, peerAddr)
	if err != nil {
		return fmt.Errorf("clone: %w", err)
	}
	defer release()
	d, err := openDatabase(db, state == fileNew || state == fileEmpty)
	if err != nil {
		return fmt.Errorf("clone: %w", err)
	}
	opt := rowsync.CloneOptions{Name: name, Logger: a.logger()}
	if strings.HasPrefix(peerAddr, "http://") || strings.HasPrefix(peerAddr, "https://") {
		opt.URL = peerAddr
	}
	res, err := rowsync.Clone(ctx, d, peer, opt)
	if err != nil {
		left := a.undoClone(d, state, path, res) // closes d
		if errors.Is(err, rowsync.ErrAlreadyNode) {
			return fmt.Errorf("clone: %s is already a rowsync node; use rowsync sync --db %s %s", db, db, peerAddr)
		}
		if left != "" {
			return fmt.Errorf("clone from %s: %w; %s", peerAddr, err, left)
		}
		return fmt.Errorf("clone from %s: %w", peerAddr, err)
	}
	defer d.Close()
	n := res.Node
	fmt.Fprintf(a.stdout, "cloned node %s (id %s) from %s into %s\n", n.Name(), n.ID(), res.Peer.Name, d.Address())
	var names []string
	for _, t := range n.Tables() {
		names = append(names, t.Name)
	}
	if len(res.Created) > 0 {
		fmt.Fprintf(a.stdout, "created %s: %s\n", plural(int64(len(res.Created)), "table"), strings.Join(res.Created, ", "))
		for _, sk := range res.Skipped {
			fmt.Fprintf(a.stdout, "not created: the foreign key %s\n", sk)
		}
	} else {
		fmt.Fprintf(a.stdout, "tracking %s that were there: %s\n", plural(int64(len(names)), "table"), strings.Join(names, ", "))
	}
	var rows, held, conflicts int64
	if res.Sync != nil && res.Sync.Pulled != nil {
		rows, held, conflicts = res.Sync.Pulled.Rows, res.Sync.Pulled.Held, res.Sync.Pulled.NewConflicts
	}
	fmt.Fprintf(a.stdout, "received %s\n", plural(rows, "row"))
	if conflicts > 0 {
		fmt.Fprintf(a.stdout, "%s recorded here; see: rowsync conflicts --db %s\n", plural(conflicts, "new conflict"), db)
	}
	if held > 0 {
		fmt.Fprintf(a.stdout, "%s held back by a local constraint (retried on every sync)\n", plural(held, "change"))
	}
	fmt.Fprintf(a.stdout, "next: rowsync sync --db %s %s\n", db, peerAddr)
	return nil
}

// undoClone removes what a failed clone made, as far as it can, closes d
// and returns what is left, for the error message ("" if nothing).
func (a *app) undoClone(d rowsync.Database, state fileState, path string, res *rowsync.CloneResult) string {
	defer d.Close()
	switch state {
	case fileNew, fileEmpty:
		d.Close()
		var failed []string
		for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				failed = append(failed, p)
			}
		}
		if state == fileEmpty && len(failed) == 0 {
			if err := os.WriteFile(path, nil, 0o644); err != nil {
				return fmt.Sprintf("%s was removed (it was empty)", path)
			}
		}
		if len(failed) > 0 {
			return fmt.Sprintf("could not remove %s: delete it before trying again", strings.Join(failed, ", "))
		}
		if state == fileNew {
			return fmt.Sprintf("removed the new file %s", path)
		}
		return fmt.Sprintf("%s is empty again", path)
	}
	if len(res.Created) > 0 {
		// A SQLite file that existed without tables: drop what clone made.
		if sd, ok := d.(*sqlite.DB); ok {
			if err := dropCloned(sd, res.Created); err != nil {
				return fmt.Sprintf("could not drop the tables clone created in %s (%v): delete them, and every _rowsync_ table, before trying again", path, err)
			}
			return fmt.Sprintf("dropped the tables clone created in %s", path)
		}
	}
	if res.Node != nil {
		return fmt.Sprintf("%s is now rowsync node %s tracking %s's tables, without all of its data: fix the cause, then run rowsync sync --db %s PEER --pull-only",
			d.Address(), res.Node.Name(), res.Peer.Name, d.Address())
	}
	return ""
}

// dropCloned drops the tables a failed clone created in a SQLite file that
// had no tables before, and rowsync's bookkeeping.
func dropCloned(d *sqlite.DB, created []string) error {
	ctx := context.Background()
	conn, err := d.SQL().Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "PRAGMA foreign_keys = OFF"); err != nil {
		return err
	}
	defer conn.ExecContext(ctx, "PRAGMA foreign_keys = ON")
	rows, err := conn.QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'table' AND name LIKE '\_rowsync\_%' ESCAPE '\'`)
	if err != nil {
		return err
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return err
		}
		names = append(names, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	names = append(names, created...)
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return err
	}
	for _, n := range names {
		if _, err := conn.ExecContext(ctx, `DROP TABLE IF EXISTS "`+strings.ReplaceAll(n, `"`, `""`)+`"`); err != nil {
			conn.ExecContext(ctx, "ROLLBACK")
			return err
		}
	}
	_, err = conn.ExecContext(ctx, "COMMIT")
	return err
}
