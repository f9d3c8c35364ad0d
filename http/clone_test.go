package http_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/rowsync/rowsync"
	rshttp "github.com/rowsync/rowsync/http"
	"github.com/rowsync/rowsync/sqlite"
)

func get(tb testing.TB, url string, h http.Header) (int, http.Header, []byte) {
	tb.Helper()
	req, err := http.NewRequestWithContext(tb.Context(), http.MethodGet, url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header = h
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// TestServerSchema: GET /v1/schema answers the node's tracked tables with
// their foreign keys, without a node id (the caller has none yet) and
// without recording anything; hello still carries no foreign keys, so an
// older server's strict decoder accepts what a newer node sends.
func TestServerSchema(t *testing.T) {
	h := newHub(t)
	before := snapshot(t, h.testNode)
	hd := http.Header{}
	hd.Set(rshttp.HeaderProtocol, fmt.Sprint(rowsync.ProtocolVersion))
	status, rh, body := get(t, h.srv.URL()+"/v1/schema", hd)
	if status != http.StatusOK || !strings.HasPrefix(rh.Get("Content-Type"), rshttp.ContentJSON) {
		t.Fatalf("GET /v1/schema: %d %s", status, body)
	}
	var got rowsync.SchemaResponse
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	want := rowsync.SchemaResponse{Protocol: rowsync.ProtocolVersion, Node: h.node.Info(), Engine: "sqlite", Tables: h.node.Schema()}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("schema\n got %+v\nwant %+v", got, want)
	}
	fk := []rowsync.ForeignKey{{Columns: []string{"tid"}, Parent: "t", ParentColumns: []string{"id"}, OnDelete: rowsync.FKNoAction, OnUpdate: rowsync.FKNoAction}}
	if len(got.Tables) != 2 || got.Tables[0].Name != "t" || !reflect.DeepEqual(got.Tables[1].ForeignKeys, fk) {
		t.Errorf("tables (parents first, with the foreign key of c): %+v", got.Tables)
	}
	requireSame(t, before, snapshot(t, h.testNode))

	// The client.
	c := rshttp.NewClient(h.srv.URL())
	s, err := c.PeerSchema(t.Context())
	if err != nil || !reflect.DeepEqual(*s, want) {
		t.Errorf("Client.PeerSchema = %+v, %v", s, err)
	}

	// Faults.
	status, rh, body = get(t, h.srv.URL()+"/v1/schema", http.Header{})
	wantError(t, status, rh, body, http.StatusBadRequest, "protocol", rshttp.HeaderProtocol)
	bad := hd.Clone()
	bad.Set(rshttp.HeaderNode, "no spaces allowed")
	status, rh, body = get(t, h.srv.URL()+"/v1/schema", bad)
	wantError(t, status, rh, body, http.StatusBadRequest, "protocol", rshttp.HeaderNode)
	status, rh, body = post(t, h.srv.URL(), "/v1/schema", headers(peerID, rshttp.ContentJSON), strings.NewReader("{}"))
	wantError(t, status, rh, body, http.StatusMethodNotAllowed, "method_not_allowed", "GET")
	if a := rh.Get("Allow"); !strings.Contains(a, "GET") {
		t.Errorf("Allow: %q", a)
	}

	// Hello, both ways, carries no foreign keys.
	status, _, body = post(t, h.srv.URL(), "/v1/hello", headers(peerID, rshttp.ContentJSON), strings.NewReader(helloBody(peerID, rowsync.WithoutForeignKeys(h.node.Schema()))))
	if status != http.StatusOK || strings.Contains(string(body), "foreign_keys") {
		t.Errorf("hello response %d %s: want 200 without foreign_keys", status, body)
	}
	var seen string
	spy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		seen = string(b)
		w.WriteHeader(http.StatusTeapot)
	}))
	defer spy.Close()
	other := newNode(t, t.TempDir(), "other", "")
	other.node.Sync(t.Context(), rshttp.NewClient(spy.URL), rowsync.SyncOptions{})
	if !strings.Contains(seen, `"tables"`) || strings.Contains(seen, "foreign_keys") {
		t.Errorf("hello request %s: want tables without foreign_keys", seen)
	}
}

// oldServer serves n as a server from before GET /v1/schema does: that
// path is not found.
func oldServer(tb testing.TB, n *rowsync.Node) string {
	tb.Helper()
	h := rshttp.NewServer(n, "").Handler()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/schema" {
			r.URL.Path = "/v1/no-such-thing"
		}
		h.ServeHTTP(w, r)
	}))
	tb.Cleanup(s.Close)
	return s.URL
}

// TestCloneOverHTTP: rowsync.Clone into a new SQLite file from a served
// hub creates the hub's tables (with the foreign key), pulls every row
// (verify: identical), gives the clone an id of its own, and a write on
// the clone then syncs back to the hub.
func TestCloneOverHTTP(t *testing.T) {
	h := newHub(t)
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "clone.db"), true)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c := rshttp.NewClient(h.srv.URL())
	res, err := rowsync.Clone(t.Context(), db, c, rowsync.CloneOptions{Name: "laptop", URL: h.srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.Created, []string{"t", "c"}) || res.Peer.ID != h.node.ID() {
		t.Errorf("created %q from %v", res.Created, res.Peer)
	}
	n := res.Node
	if n.Name() != "laptop" || n.ID() == h.node.ID() || n.ID() == "" {
		t.Errorf("clone is node %s (%s), hub %s", n.Name(), n.ID(), h.node.ID())
	}
	if res.Sync.Pushed != nil || res.Sync.Pulled == nil || res.Sync.Pulled.Rows != 6 {
		t.Errorf("sync %+v: want 6 rows pulled, nothing pushed", res.Sync)
	}
	diffs, err := n.Verify(t.Context(), c)
	if err != nil || len(diffs) != 0 {
		t.Fatalf("verify: %v %v", diffs, err)
	}
	var fks int
	if err := db.SQL().QueryRow(`SELECT count(*) FROM pragma_foreign_key_list('c') WHERE "table" = 't' AND "from" = 'tid' AND "to" = 'id'`).Scan(&fks); err != nil || fks != 1 {
		t.Errorf("foreign key c(tid) -> t(id) in the clone: %d, %v", fks, err)
	}
	if _, err := db.SQL().Exec(`INSERT INTO t VALUES (4, 'four', 40, NULL); UPDATE c SET v = 9 WHERE a = 'a' AND k = 1`); err != nil {
		t.Fatal(err)
	}
	sr, err := n.Sync(t.Context(), c, rowsync.SyncOptions{})
	if err != nil || sr.Pushed.Changed != 2 {
		t.Fatalf("sync back: %+v %v", sr, err)
	}
	if diffs, err := n.Verify(t.Context(), c); err != nil || len(diffs) != 0 {
		t.Fatalf("verify after the sync back: %v %v", diffs, err)
	}
	if got := dumpTable(t, h.db, "t"); len(got) != 4 {
		t.Errorf("hub's t after the sync back: %q", got)
	}

	// Again into the same database: refused, it is a node now.
	if _, err := rowsync.Clone(t.Context(), db, c, rowsync.CloneOptions{}); !errors.Is(err, rowsync.ErrAlreadyNode) {
		t.Errorf("clone into a node: %v, want ErrAlreadyNode", err)
	}
}

// TestCloneFromOldServer: a server without GET /v1/schema is reported as
// too old, and nothing is created.
func TestCloneFromOldServer(t *testing.T) {
	h := newHub(t)
	url := oldServer(t, h.node)
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "clone.db"), true)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := rowsync.Clone(context.Background(), db, rshttp.NewClient(url), rowsync.CloneOptions{})
	if !errors.Is(err, rowsync.ErrPeerTooOld) || !strings.Contains(err.Error(), "too old to clone from") {
		t.Fatalf("clone from an old server: %v, want ErrPeerTooOld", err)
	}
	if ts, _ := db.UserTables(t.Context()); len(ts) != 0 || res.Created != nil || res.Node != nil {
		t.Errorf("the failed clone left tables %q (%+v)", ts, res)
	}
	// The old server still syncs as before.
	other := newNode(t, t.TempDir(), "other", "")
	if _, err := other.node.Sync(t.Context(), rshttp.NewClient(url), rowsync.SyncOptions{}); err != nil {
		t.Errorf("sync with the old server: %v", err)
	}
}
