package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rowsync/rowsync"
	"github.com/spf13/cobra"
)

// parseSince reads --since: a cursor (an integer, as status prints it) or
// an RFC 3339 time.
func parseSince(s string) (seq int64, t time.Time, err error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return 0, time.Time{}, fmt.Errorf("export: --since %s: a cursor is not negative", s)
		}
		return n, time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return 0, t, nil
	}
	return 0, time.Time{}, fmt.Errorf("export: --since %q: give a cursor (the number `rowsync status` prints) or an RFC 3339 time such as 2024-05-01T08:00:00Z", s)
}

func (a *app) exportCmd() *cobra.Command {
	var db, out, forNode, since string
	var asJSON bool
	var batchRows int
	c := &cobra.Command{
		Use:   "export --db DB -o FILE [--for NODE | --since CURSOR|TIME]",
		Short: "Write this node's changes to a bundle file (for links that are a USB stick)",
		Long: `Write this node's changes to a bundle: a file that another node applies
with rowsync import, for links that are a USB stick.

With no option the bundle holds every row. --for NODE (a known peer's name,
id or id prefix) holds only what that peer has not acknowledged yet: a
peer acknowledges by importing this node's bundles and exporting one back,
or by a sync. --since CURSOR holds the rows changed after that cursor (the
"cursor" line of rowsync status); --since TIME (RFC 3339, such as
2024-05-01T08:00:00Z) the rows whose last write or delete is at or after
that time.

The file is written under a temporary name next to FILE and renamed when
complete, so a failed export leaves no bundle behind. -o - writes to
standard output (the summary then goes to standard error).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := needDB(db); err != nil {
				return err
			}
			if out == "" {
				return &exitError{code: 2, msg: "export: name the bundle file with -o FILE (or -o - for standard output)"}
			}
			if forNode != "" && since != "" {
				return &exitError{code: 2, msg: "export: --for and --since exclude each other"}
			}
			var opt rowsync.ExportOptions
			opt.For = forNode
			if since != "" {
				var err error
				if opt.Since, opt.SinceTime, err = parseSince(since); err != nil {
					return &exitError{code: 2, msg: err.Error()}
				}
			}
			ctx := cmd.Context()
			n, err := a.openNode(ctx, db)
			if err != nil {
				return err
			}
			defer n.DB().Close()
			if batchRows > 0 {
				n.BatchRows = batchRows
			}
			var res *rowsync.ExportResult
			summary := a.stdout
			if out == "-" {
				summary = a.stderr
				bw := bufio.NewWriterSize(a.stdout, 64<<10)
				if res, err = n.Export(ctx, bw, opt); err == nil {
					err = bw.Flush()
				}
			} else {
				res, err = exportFile(ctx, n, out, opt)
			}
			if err != nil {
				return fmt.Errorf("export to %s: %w", out, err)
			}
			if asJSON {
				enc := json.NewEncoder(summary)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			h := res.Header
			var what string
			switch {
			case h.For != nil:
				what = fmt.Sprintf("for %s: not yet acknowledged, after cursor %d up to %d", h.For.Name, startOf(h), h.UpTo)
			case h.SinceTime != nil:
				what = fmt.Sprintf("changed since %s, up to cursor %d", h.SinceTime.Format(time.RFC3339Nano), h.UpTo)
			case h.SinceSeq > 0:
				what = fmt.Sprintf("after cursor %d up to %d", h.SinceSeq, h.UpTo)
			default:
				what = fmt.Sprintf("everything up to cursor %d", h.UpTo)
			}
			dest := out
			if out == "-" {
				dest = "standard output"
			}
			fmt.Fprintf(summary, "exported %s of %s (%s) to %s\n", plural(res.Rows, "row"), n.Name(), what, dest)
			return nil
		},
	}
	dbFlag(c, &db)
	c.Flags().StringVarP(&out, "output", "o", "", "the bundle file to write (- for standard output)")
	c.Flags().StringVar(&forNode, "for", "", "only what this peer (name, id or id prefix) has not acknowledged")
	c.Flags().StringVar(&since, "since", "", "only rows changed after a cursor (from rowsync status) or since an RFC 3339 time")
	c.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	batchRowsFlag(c, &batchRows)
	return c
}

// startOf returns the cursor a bundle starts after.
func startOf(h rowsync.BundleHeader) int64 {
	if len(h.Cursors) == 0 {
		return 0
	}
	return h.Cursors[0].Seq
}

// exportFile writes a bundle to a temporary file next to path and renames
// it to path once complete.
func exportFile(ctx context.Context, n *rowsync.Node, path string, opt rowsync.ExportOptions) (res *rowsync.ExportResult, err error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return nil, fmt.Errorf("%s is a directory", path)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	bw := bufio.NewWriterSize(f, 256<<10)
	if res, err = n.Export(ctx, bw, opt); err != nil {
		return nil, err
	}
	if err = bw.Flush(); err != nil {
		return nil, err
	}
	if err = f.Sync(); err != nil {
		return nil, err
	}
	if err = f.Close(); err != nil {
		return nil, err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return nil, err
	}
	return res, nil
}

func (a *app) importCmd() *cobra.Command {
	var db string
	var asJSON bool
	c := &cobra.Command{
		Use:   "import --db DB FILE|-",
		Short: "Apply a bundle file written by rowsync export on another node",
		Long: `Apply a bundle written by rowsync export on another node. The schemas are
compared first: on a mismatch nothing changes. The bundle's changes are
merged as a sync merges them, batch by batch (one transaction each), so a
truncated or damaged bundle applies every complete batch before the damage
and then fails. Importing a bundle again changes nothing. The import also
records what the exporting node has received of this node's changes, for
rowsync export --for. FILE - reads the bundle from standard input.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := needDB(db); err != nil {
				return err
			}
			file := args[0]
			ctx := cmd.Context()
			in := cmd.InOrStdin()
			if file == "-" {
				file = "standard input"
			} else {
				f, err := os.Open(file)
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			}
			n, err := a.openNode(ctx, db)
			if err != nil {
				return err
			}
			defer n.DB().Close()
			res, err := n.Import(ctx, in)
			if err != nil {
				var be *rowsync.BundleError
				switch {
				case errors.Is(err, rowsync.ErrNotBundle):
					return fmt.Errorf("%s is not a rowsync bundle", file)
				case errors.As(err, &be):
					return fmt.Errorf("import %s: %w (run rowsync import again with a good copy; what is applied stays)", file, err)
				}
				return fmt.Errorf("import %s: %w", file, err)
			}
			if asJSON {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			h := res.Header
			fmt.Fprintf(a.stdout, "imported bundle of %s (up to its cursor %d, exported %s) into %s: received %s",
				h.Node.Name, h.UpTo, h.Created.Local().Format("2006-01-02 15:04:05"), n.Name(), plural(res.Rows, "row"))
			var parts []string
			if res.Skipped > 0 {
				parts = append(parts, fmt.Sprintf("%d already here", res.Skipped))
			}
			parts = append(parts, fmt.Sprintf("%d changed here", res.Changed))
			fmt.Fprintf(a.stdout, ", %s\n", strings.Join(parts, ", "))
			if res.Changed == 0 && res.NewConflicts == 0 {
				fmt.Fprintln(a.stdout, "nothing changed: this node already had everything in the bundle")
			}
			if res.NewConflicts > 0 {
				fmt.Fprintf(a.stdout, "%s recorded here; see: rowsync conflicts --db %s\n", plural(res.NewConflicts, "new conflict"), db)
			}
			if res.Held > 0 {
				fmt.Fprintf(a.stdout, "%s held back by a local constraint (retried on every sync and import)\n", plural(res.Held, "change"))
			}
			return nil
		},
	}
	dbFlag(c, &db)
	c.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return c
}
