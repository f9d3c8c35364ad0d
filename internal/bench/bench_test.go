package bench_test

import (
	"context"
	"testing"

	"github.com/rowsync/rowsync/internal/bench"
)

// TestSmoke runs every benchmark at a tiny size, in process, to prove the
// harness still works. It checks that each figure was measured, not how
// fast anything is.
func TestSmoke(t *testing.T) {
	cfg := bench.Config{Dir: t.TempDir(), Rows: 3000, Updates: 300, Deletes: 300, Changed: 200, Small: 1000, Batch: 500}
	rep, err := bench.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"capture: bulk insert", "capture: updates", "capture: deletes", "capture: whole mix",
		"initial sync rate (hub -> empty node, HTTP)", "no-op sync round trip (3000 identical rows)",
		"incremental sync: 200 changes in 3000 rows", "wire size per changed row (pull, zstd)"}
	got := map[string]bench.Result{}
	for _, r := range rep.Results {
		got[r.Name] = r
	}
	for _, name := range want {
		r, ok := got[name]
		if !ok {
			t.Errorf("missing result %q", name)
			continue
		}
		if r.Value <= 0 {
			t.Errorf("%s: value %v", name, r.Value)
		}
	}
}
