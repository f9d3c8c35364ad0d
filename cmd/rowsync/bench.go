package main

import (
	"fmt"
	"os"

	"github.com/rowsync/rowsync/internal/bench"
	"github.com/spf13/cobra"
)

func (a *app) benchCmd() *cobra.Command {
	cfg := bench.Defaults()
	var jsonOut string
	var inProcess bool
	c := &cobra.Command{
		Use:   "bench [--rows N] [--json FILE]",
		Short: "Measure capture overhead, sync rate, incremental cost, memory and wire size",
		Long: `Creates its own SQLite databases in a temporary directory and measures, as
ratios against a baseline taken in the same run on the same machine:
capture overhead against untracked writes, the initial sync rate against
raw inserts, incremental sync cost against database size, a no-op sync,
peak memory of client and server, and wire size against gzip'd CSV.
docs/BENCHMARKS.md explains each figure.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := os.MkdirTemp("", "rowsync-bench-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			cfg.Dir = dir
			cfg.Log = a.stderr
			if !inProcess {
				if cfg.Binary, err = os.Executable(); err != nil {
					return err
				}
			}
			rep, err := bench.Run(cmd.Context(), cfg)
			if rep != nil {
				rep.Print(a.stdout)
			}
			if err != nil {
				return fmt.Errorf("bench: %w", err)
			}
			if jsonOut != "" {
				f, err := os.Create(jsonOut)
				if err != nil {
					return err
				}
				defer f.Close()
				return rep.WriteJSON(f)
			}
			return nil
		},
	}
	c.Flags().IntVar(&cfg.Rows, "rows", cfg.Rows, "rows of the bulk insert and of the initial sync")
	c.Flags().IntVar(&cfg.Updates, "updates", cfg.Updates, "updates of the capture workload")
	c.Flags().IntVar(&cfg.Deletes, "deletes", cfg.Deletes, "deletes of the capture workload")
	c.Flags().IntVar(&cfg.Changed, "changed", cfg.Changed, "changed rows of the incremental sync")
	c.Flags().IntVar(&cfg.Small, "small", cfg.Small, "rows of the small database of the incremental sync")
	c.Flags().IntVar(&cfg.Big, "big", 0, "rows of the big database of the incremental sync (default --rows)")
	c.Flags().StringVar(&cfg.CPUProfile, "cpuprofile", "", "write CPU profiles of the timed syncs to PREFIX.<sync>.pprof (use with --in-process to see both sides)")
	c.Flags().StringSliceVar(&cfg.Only, "only", nil, "run only these benchmarks: capture, initial, incremental, wire")
	c.Flags().StringVar(&jsonOut, "json", "", "also write the results as JSON to FILE")
	c.Flags().BoolVar(&inProcess, "in-process", false, "run server and client in this process (no memory figures)")
	return c
}
