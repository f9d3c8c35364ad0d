// Command rowsync keeps relational databases at several sites in sync.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rowsync/rowsync"
	"github.com/rowsync/rowsync/engines"
	rshttp "github.com/rowsync/rowsync/http"
	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// exitError carries an exit code other than 1.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// run executes the command line and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(stderr, "rowsync: "+ee.msg)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "rowsync: "+oneLine(err.Error()))
	if strings.Contains(err.Error(), "unknown flag") || strings.Contains(err.Error(), "accepts ") || strings.Contains(err.Error(), "unknown command") {
		return 2
	}
	return 1
}

func oneLine(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "\n", "; ") }

type app struct {
	stdout, stderr io.Writer
	verbose        bool
}

func (a *app) logger() *slog.Logger {
	level := slog.LevelWarn
	if a.verbose {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: level}))
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	a := &app{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "rowsync",
		Short: "Keep relational databases at several sites in sync, both ways, offline first",
		Long: `rowsync keeps SQLite databases at several sites in sync, both ways.
Each node writes to its own database; when a link exists, nodes exchange
what changed (per column, last writer wins, nothing lost silently) and
converge. Start with: rowsync demo`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().BoolVarP(&a.verbose, "verbose", "v", false, "log progress to stderr")
	root.AddCommand(a.initCmd(), a.cloneCmd(), a.serveCmd(), a.syncCmd(), a.exportCmd(), a.importCmd(), a.statusCmd(), a.conflictsCmd(), a.verifyCmd(), a.demoCmd(), a.benchCmd())
	return root
}

// dbFlag adds --db, defaulting to $ROWSYNC_DB.
func dbFlag(c *cobra.Command, p *string) {
	c.Flags().StringVar(p, "db", os.Getenv("ROWSYNC_DB"), "database address: a SQLite file path or sqlite:PATH (default $ROWSYNC_DB)")
}

func needDB(addr string) error {
	if addr == "" {
		return &exitError{code: 2, msg: "no database given: use --db ADDRESS or set ROWSYNC_DB"}
	}
	return nil
}

// openDatabase opens a database address.
func openDatabase(addr string, create bool) (rowsync.Database, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return engines.Open(ctx, addr, create)
}

// openNode opens an initialized node.
func (a *app) openNode(ctx context.Context, addr string) (*rowsync.Node, error) {
	db, err := openDatabase(addr, false)
	if err != nil {
		return nil, err
	}
	n := rowsync.NewNode(db)
	n.Logger = a.logger()
	if err := n.Open(ctx); err != nil {
		db.Close()
		if errors.Is(err, rowsync.ErrNotInitialized) {
			return nil, fmt.Errorf("%s is not initialized for rowsync: run rowsync init --db %s --all", addr, addr)
		}
		return nil, fmt.Errorf("open %s: %w", addr, err)
	}
	return n, nil
}

// openPeer returns a peer for an http(s) URL or a database address, and a
// function to release it.
func (a *app) openPeer(ctx context.Context, addr string) (rowsync.Peer, func(), error) {
	if strings.HasPrefix(addr, "http://") || strings.HasPrefix(addr, "https://") {
		return rshttp.NewClient(addr), func() {}, nil
	}
	n, err := a.openNode(ctx, addr)
	if err != nil {
		return nil, nil, fmt.Errorf("peer: %w", err)
	}
	return n, func() { n.DB().Close() }, nil
}
