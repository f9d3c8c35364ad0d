package http_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/rowsync/rowsync"
	rshttp "github.com/rowsync/rowsync/http"
	"github.com/rowsync/rowsync/rowsynctest"
	"github.com/rowsync/rowsync/sqlite"
)

// The schema of every node in these tests: a parent with an integer key, a
// child with a composite text/integer key and a foreign key.
const testSchema = `
CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT NOT NULL, n INTEGER, b BLOB);
CREATE TABLE c(a TEXT, k INTEGER, v REAL, tid INTEGER REFERENCES t(id), PRIMARY KEY(a, k));`

// injection is a name a hostile peer might put on the wire.
const injection = `x"; DROP TABLE t; --`

type testNode struct {
	db   *sqlite.DB
	node *rowsync.Node
}

// newNode creates a SQLite node with testSchema, runs seed on it and
// initializes tracking.
func newNode(tb testing.TB, dir, name, seed string) *testNode {
	tb.Helper()
	db, err := sqlite.Open(filepath.Join(dir, name+".db"), true)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	if _, err := db.SQL().Exec(testSchema + seed); err != nil {
		tb.Fatalf("create %s: %v", name, err)
	}
	n, err := rowsync.Init(context.Background(), db, rowsync.InitOptions{All: true, Name: name})
	if err != nil {
		tb.Fatalf("init %s: %v", name, err)
	}
	return &testNode{db: db, node: n}
}

const hubSeed = `
INSERT INTO t VALUES (1, 'one', 10, x'0001'), (2, 'two', NULL, NULL), (3, 'three', 30, x'');
INSERT INTO c VALUES ('a', 1, 0.5, 1), ('a', 2, NULL, 2), ('b', 1, -1.25, NULL);`

// startServer serves n on a free loopback port until the test ends.
func startServer(tb testing.TB, n *rowsync.Node) *rshttp.Server {
	tb.Helper()
	s := rshttp.NewServer(n, "127.0.0.1:0")
	if err := s.Open(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// snapshot renders every table of the database (user tables, rowsync's
// bookkeeping and the schema itself) and the node's digest, so that two
// snapshots are equal iff nothing changed.
func snapshot(tb testing.TB, n *testNode) string {
	tb.Helper()
	var sb strings.Builder
	ds, err := n.node.Digest(context.Background())
	if err != nil {
		tb.Fatalf("digest: %v", err)
	}
	for _, d := range ds {
		fmt.Fprintf(&sb, "digest %s %d %s\n", d.Table, d.Rows, d.Hash)
	}
	db := n.db.SQL()
	rows, err := db.Query(`SELECT type, name, coalesce(sql, '') FROM sqlite_schema ORDER BY type, name`)
	if err != nil {
		tb.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var typ, name, sql string
		if err := rows.Scan(&typ, &name, &sql); err != nil {
			tb.Fatal(err)
		}
		fmt.Fprintf(&sb, "schema %s %s %s\n", typ, name, sql)
		if typ == "table" {
			tables = append(tables, name)
		}
	}
	rows.Close()
	for _, name := range tables {
		for _, r := range dumpTable(tb, n.db, name) {
			fmt.Fprintf(&sb, "row %s %s\n", name, r)
		}
	}
	return sb.String()
}

// dumpTable returns the rows of a table, each rendered with its values'
// storage classes, sorted.
func dumpTable(tb testing.TB, db *sqlite.DB, table string) []string {
	tb.Helper()
	rows, err := rowsynctest.QueryAll(db.SQL(), `SELECT * FROM "`+strings.ReplaceAll(table, `"`, `""`)+`"`)
	if err != nil {
		tb.Fatalf("dump %s: %v", table, err)
	}
	var out []string
	for _, vals := range rows {
		out = append(out, fmt.Sprintf("%#v", vals))
	}
	slices.Sort(out)
	return out
}

func requireSame(tb testing.TB, before, after string) {
	tb.Helper()
	if before == after {
		return
	}
	b, a := strings.Split(before, "\n"), strings.Split(after, "\n")
	for _, l := range a {
		if !slices.Contains(b, l) {
			tb.Errorf("database changed: new line %s", l)
		}
	}
	for _, l := range b {
		if !slices.Contains(a, l) {
			tb.Errorf("database changed: lost line %s", l)
		}
	}
}

// post sends one request and returns the status and body.
func post(tb testing.TB, url, path string, h http.Header, body io.Reader) (int, http.Header, []byte) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+path, body)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header = h
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		tb.Fatalf("POST %s: read response: %v", path, err)
	}
	return resp.StatusCode, resp.Header, b
}

// headers returns the headers of a well-formed request from node id.
func headers(id, ctype string) http.Header {
	h := http.Header{}
	h.Set(rshttp.HeaderProtocol, fmt.Sprint(rowsync.ProtocolVersion))
	h.Set(rshttp.HeaderNode, id)
	h.Set("Content-Type", ctype)
	return h
}

// wantError checks an error response: its status, that its body is the
// JSON error document with the code and a message holding every substring.
func wantError(tb testing.TB, status int, h http.Header, body []byte, wantStatus int, code string, substrs ...string) {
	tb.Helper()
	if status != wantStatus {
		tb.Fatalf("status %d, want %d; body %s", status, wantStatus, body)
	}
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, rshttp.ContentJSON) {
		tb.Errorf("error Content-Type %q, want %s", ct, rshttp.ContentJSON)
	}
	var eb rshttp.ErrorBody
	if err := json.Unmarshal(body, &eb); err != nil {
		tb.Fatalf("error body is not JSON: %v: %q", err, body)
	}
	if eb.Error.Code != code {
		tb.Errorf("error code %q, want %q (message %q)", eb.Error.Code, code, eb.Error.Message)
	}
	if len(eb.Error.Message) < 10 || strings.Contains(eb.Error.Message, "\n") {
		tb.Errorf("error message %q is not a clear one-line message", eb.Error.Message)
	}
	for _, s := range substrs {
		if !strings.Contains(strings.ToLower(eb.Error.Message), strings.ToLower(s)) {
			tb.Errorf("error message %q does not mention %q", eb.Error.Message, s)
		}
	}
}

// requireAlive checks that the server still answers a well-formed request
// with the node's current digest.
func requireAlive(tb testing.TB, s *rshttp.Server, n *testNode) {
	tb.Helper()
	status, _, body := post(tb, s.URL(), "/v1/digest", headers("alive-check", rshttp.ContentJSON), strings.NewReader("{}"))
	if status != http.StatusOK {
		tb.Fatalf("server not alive after the request: digest answered %d %s", status, body)
	}
	var got []rowsync.TableDigest
	if err := json.Unmarshal(body, &got); err != nil {
		tb.Fatalf("digest response: %v", err)
	}
	want, err := n.node.Digest(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		tb.Fatalf("digest over HTTP %v, node says %v", got, want)
	}
}

// hub is a served node with some rows.
type hub struct {
	*testNode
	srv *rshttp.Server
	dir string
}

func newHub(tb testing.TB) *hub {
	tb.Helper()
	dir := tb.TempDir()
	n := newNode(tb, dir, "hub", hubSeed)
	return &hub{testNode: n, srv: startServer(tb, n.node), dir: dir}
}

// check sends a request and checks the error, that the server is still
// alive and that nothing changed in the hub's database.
func (h *hub) check(tb testing.TB, path string, hd http.Header, body io.Reader, wantStatus int, code string, substrs ...string) {
	tb.Helper()
	before := snapshot(tb, h.testNode)
	status, rh, b := post(tb, h.srv.URL(), path, hd, body)
	wantError(tb, status, rh, b, wantStatus, code, substrs...)
	requireAlive(tb, h.srv, h.testNode)
	requireSame(tb, before, snapshot(tb, h.testNode))
}

const peerID = "0123456789abcdef0123456789abcdef"

func helloBody(id string, tables []rowsync.TableSchema) string {
	b, _ := json.Marshal(rowsync.HelloRequest{Protocol: rowsync.ProtocolVersion, Node: rowsync.NodeInfo{ID: id, Name: "peer"}, Tables: tables})
	return string(b)
}

func TestServerBadRequests(t *testing.T) {
	h := newHub(t)
	good := helloBody(peerID, h.node.Schema())
	jsonH := func() http.Header { return headers(peerID, rshttp.ContentJSON) }
	without := func(name string) http.Header { hd := jsonH(); hd.Del(name); return hd }
	with := func(name, value string) http.Header { hd := jsonH(); hd.Set(name, value); return hd }

	// A well-formed hello works, so the cases below fail for their own reason.
	if status, _, b := post(t, h.srv.URL(), "/v1/hello", jsonH(), strings.NewReader(good)); status != http.StatusOK {
		t.Fatalf("good hello: %d %s", status, b)
	}

	oversized := `{"protocol":1,"node":{"id":"` + peerID + `","name":"` + strings.Repeat("a", rshttp.MaxJSONBody) + `"},"tables":[]}`
	wrongSchema := h.node.Schema()
	wrongSchema[0].Columns = append(slices.Clone(wrongSchema[0].Columns), rowsync.Column{Name: "extra", Class: rowsync.ClassText})
	injected := h.node.Schema()
	injected = append(injected, rowsync.TableSchema{Name: injection, Key: []string{injection}, Columns: []rowsync.Column{{Name: injection, Class: rowsync.ClassInteger}}})

	cases := []struct {
		name    string
		path    string
		h       http.Header
		body    string
		status  int
		code    string
		substrs []string
	}{
		{"no node header", "/v1/hello", without(rshttp.HeaderNode), good, 400, "protocol", []string{rshttp.HeaderNode}},
		{"invalid node header", "/v1/hello", with(rshttp.HeaderNode, `a b"; DROP TABLE t; --`), good, 400, "protocol", []string{rshttp.HeaderNode}},
		{"too long node header", "/v1/hello", with(rshttp.HeaderNode, strings.Repeat("a", 500)), good, 400, "protocol", []string{rshttp.HeaderNode}},
		{"no protocol header", "/v1/hello", without(rshttp.HeaderProtocol), good, 400, "protocol", []string{rshttp.HeaderProtocol}},
		{"unsupported protocol", "/v1/hello", with(rshttp.HeaderProtocol, "99"), good, 400, "protocol", []string{rshttp.HeaderProtocol, "99"}},
		{"garbage protocol", "/v1/pull", with(rshttp.HeaderProtocol, "one"), `{}`, 400, "protocol", []string{rshttp.HeaderProtocol}},
		{"no headers on push", "/v1/push", http.Header{"Content-Type": {rshttp.ContentStream}}, string(magic), 400, "protocol", nil},
		{"no content type", "/v1/hello", without("Content-Type"), good, 415, "content_type", []string{"Content-Type"}},
		{"text content type", "/v1/hello", with("Content-Type", "text/plain"), good, 415, "content_type", []string{"Content-Type", "text/plain"}},
		{"stream content type on hello", "/v1/pull", with("Content-Type", rshttp.ContentStream), `{}`, 415, "content_type", nil},
		{"json content type on push", "/v1/push", jsonH(), string(magic), 415, "content_type", []string{rshttp.ContentStream}},
		{"malformed json", "/v1/hello", jsonH(), `{"protocol":1,"node":`, 400, "malformed", []string{"JSON"}},
		{"not json", "/v1/hello", jsonH(), string(magic) + "\x00", 400, "malformed", []string{"JSON"}},
		{"empty json body", "/v1/hello", jsonH(), ``, 400, "malformed", []string{"JSON"}},
		{"json of the wrong shape", "/v1/hello", jsonH(), `[1,2,3]`, 400, "malformed", []string{"JSON"}},
		{"wrong field type", "/v1/hello", jsonH(), `{"protocol":"one"}`, 400, "malformed", []string{"protocol"}},
		{"trailing data", "/v1/hello", jsonH(), good + good, 400, "malformed", []string{"trailing"}},
		{"oversized json", "/v1/hello", jsonH(), oversized, 413, "too_large", nil},
		{"unknown field", "/v1/hello", jsonH(), `{"protocol":1,"node":{"id":"` + peerID + `"},"tables":[],"drop":"t"}`, 400, "malformed", []string{"unknown field", "drop"}},
		{"unknown nested field", "/v1/pull", jsonH(), `{"node":{"id":"` + peerID + `","evil":1},"cursors":[]}`, 400, "malformed", []string{"unknown field", "evil"}},
		{"body and header ids differ", "/v1/hello", jsonH(), helloBody("someone-else", h.node.Schema()), 400, "protocol", []string{"differ"}},
		{"hello claiming the server's id", "/v1/hello", with(rshttp.HeaderNode, h.node.ID()), helloBody(h.node.ID(), h.node.Schema()), 400, "protocol", []string{"itself"}},
		{"hello of another protocol", "/v1/hello", jsonH(), strings.Replace(good, fmt.Sprintf(`"protocol":%d`, rowsync.ProtocolVersion), `"protocol":7`, 1), 400, "protocol", []string{"7"}},
		{"schema mismatch", "/v1/hello", jsonH(), helloBody(peerID, wrongSchema), 409, "schema_mismatch", []string{`"t"`, `"extra"`}},
		{"schema with an injected table", "/v1/hello", jsonH(), helloBody(peerID, injected), 409, "schema_mismatch", []string{"DROP TABLE"}},
		{"pull of an unknown table", "/v1/pull", jsonH(), `{"node":{"id":"` + peerID + `"},"cursors":[{"table":"nosuch","kind":0,"seq":0}]}`, 400, "unknown_table", []string{"nosuch"}},
		{"pull of an injected table", "/v1/pull", jsonH(), `{"node":{"id":"` + peerID + `"},"cursors":[{"table":` + jsonString(injection) + `,"kind":0,"seq":0}]}`, 400, "unknown_table", []string{"DROP TABLE"}},
		{"pull with a bad cursor kind", "/v1/pull", jsonH(), `{"node":{"id":"` + peerID + `"},"cursors":[{"table":"t","kind":9,"seq":0}]}`, 400, "unknown_table", []string{"cursor"}},
		{"pull with a negative cursor", "/v1/pull", jsonH(), `{"node":{"id":"` + peerID + `"},"cursors":[{"table":"t","kind":0,"seq":-5}]}`, 400, "unknown_table", []string{"cursor"}},
		{"pull with body and header ids differing", "/v1/pull", jsonH(), `{"node":{"id":"other"},"cursors":[]}`, 400, "protocol", []string{"differ"}},
		{"unknown endpoint", "/v1/drop", jsonH(), `{}`, 404, "not_found", []string{"/v1/drop"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h.check(t, c.path, c.h, strings.NewReader(c.body), c.status, c.code, c.substrs...)
		})
	}
	t.Run("wrong method", func(t *testing.T) {
		before := snapshot(t, h.testNode)
		resp, err := http.Get(h.srv.URL() + "/v1/hello")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		wantError(t, resp.StatusCode, resp.Header, b, http.StatusMethodNotAllowed, "method_not_allowed", []string{"POST"}...)
		if got := resp.Header.Get("Allow"); got != http.MethodPost {
			t.Errorf("Allow %q, want POST", got)
		}
		requireAlive(t, h.srv, h.testNode)
		requireSame(t, before, snapshot(t, h.testNode))
	})
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Raw stream building, for streams the Encoder refuses to write.

func frame(typ byte, payload []byte) []byte {
	b := []byte{typ}
	b = binary.AppendUvarint(b, uint64(len(payload)))
	return append(b, payload...)
}

func str(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func beginFrame(id string) []byte {
	p := binary.AppendUvarint(nil, rowsync.ProtocolVersion)
	p = str(p, id)
	p = str(p, "evil")
	p = binary.AppendUvarint(p, 1)
	return frame(rowsync.FrameBegin, p)
}

// tHeader is the header of table t as the hub has it.
func tHeader() []byte {
	p := str(nil, "t")
	p = binary.AppendUvarint(p, uint64(rowsync.KindLive))
	cols := [][2]string{{"id", "integer"}, {"name", "text"}, {"n", "integer"}, {"b", "blob"}}
	p = binary.AppendUvarint(p, uint64(len(cols)))
	for _, c := range cols {
		p = str(str(p, c[0]), c[1])
	}
	p = binary.AppendUvarint(p, 1)
	return frame(rowsync.FrameTable, str(p, "id"))
}

// magic opens a change stream of this build's version.
var magic = []byte{'R', 'S', 'Y', 'N', rowsync.ProtocolVersion}

// ints1 is an integer column of one value, as a varint (layout 0).
func ints1(x int64) []byte { return binary.AppendVarint([]byte{0}, x) }

// tVersions is the start of a rows frame of one row of table t: seq 1,
// a version table of one version (node index 1).
func tVersions() []byte {
	return slices.Concat(binary.AppendUvarint(nil, 1), ints1(1), ints1(1), ints1(rowsync.HLCFromWall(1e12)), ints1(1))
}

// tRefs are the version indexes of a row of t whose cells were all written
// by its one version: live, tomb, tomb prev, each cell's v, each cell's prev.
func tRefs() []byte {
	return slices.Concat(ints1(1), ints1(0), ints1(0), ints1(1), ints1(1), ints1(1), ints1(0), ints1(0), ints1(0))
}

// tRow is a rows frame of one row of table t (three cells) with one
// version for all of it; key and cells are value columns of one value
// each (val).
func tRow(key col, cells ...col) []byte {
	return frame(rowsync.FrameRow, slices.Concat(tVersions(), tRefs(), cols(append([]col{key}, cells...)...)))
}

// col is a value column of a rows frame: what it has among the columns,
// and the bytes of its texts and blobs, which follow all the columns.
type col struct{ meta, data []byte }

// cols are the values part of a rows frame of these columns.
func cols(cs ...col) []byte {
	var b []byte
	for _, c := range cs {
		b = append(b, c.meta...)
	}
	for _, c := range cs {
		b = append(b, c.data...)
	}
	return b
}

// val is a value column of one value.
func val(v rowsync.Value) col {
	switch v.Kind {
	case rowsync.Integer:
		return col{meta: slices.Concat(ints1(1), ints1(v.Int))}
	case rowsync.Real:
		return col{meta: binary.LittleEndian.AppendUint64(ints1(2), math.Float64bits(v.Float))}
	case rowsync.Text, rowsync.Blob:
		// No shared prefix or suffix, the length; the bytes.
		return col{meta: slices.Concat(ints1(int64(v.Kind)), []byte{0, 0}, ints1(int64(len(v.Str)))), data: []byte(v.Str)}
	}
	return col{meta: ints1(0)}
}

func checkpointFrame(table string, seq uint64) []byte {
	p := binary.AppendUvarint(nil, 1)
	p = str(p, table)
	p = binary.AppendUvarint(p, 0)
	return frame(rowsync.FrameCheckpoint, binary.AppendUvarint(p, seq))
}

func endFrame(rows uint64) []byte { return frame(rowsync.FrameEnd, binary.AppendUvarint(nil, rows)) }

func rawStream(frames ...[]byte) []byte {
	return slices.Concat(append([][]byte{magic}, frames...)...)
}

// encodedStream writes a stream from node id with the Encoder: a begin
// frame, then fn's frames, then a checkpoint and the end frame.
func encodedStream(tb testing.TB, id string, rows int64, fn func(e *rowsync.Encoder) error) []byte {
	tb.Helper()
	var buf bytes.Buffer
	e := rowsync.NewEncoder(&buf)
	if err := e.Begin(rowsync.BeginFrame{Protocol: rowsync.ProtocolVersion, NodeID: id, Name: "evil", UpTo: 1}); err != nil {
		tb.Fatal(err)
	}
	if err := fn(e); err != nil {
		tb.Fatal(err)
	}
	if err := e.Checkpoint(nil); err != nil {
		tb.Fatal(err)
	}
	if err := e.End(rows); err != nil {
		tb.Fatal(err)
	}
	if err := e.Flush(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// oneRow encodes one row of a table with the given header columns.
func oneRow(tb testing.TB, id, table string, cols []rowsync.Column, key []string, row *rowsync.Row) []byte {
	tb.Helper()
	tt, err := rowsync.NewTable(1, table, cols, key, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return encodedStream(tb, id, 1, func(e *rowsync.Encoder) error {
		if err := e.Table(tt, rowsync.KindLive); err != nil {
			return err
		}
		return e.Row(1, row)
	})
}

func tCols() []rowsync.Column {
	return []rowsync.Column{{Name: "id", Class: rowsync.ClassInteger}, {Name: "name", Class: rowsync.ClassText},
		{Name: "n", Class: rowsync.ClassInteger}, {Name: "b", Class: rowsync.ClassBlob}}
}

func newRow(id string, key []rowsync.Value, vals ...rowsync.Value) *rowsync.Row {
	v := rowsync.Version{HLC: rowsync.HLCFromWall(time.Now().UnixMilli()), Node: id}
	r := &rowsync.Row{Key: key, Live: v}
	for _, x := range vals {
		r.Cells = append(r.Cells, rowsync.Cell{Value: x, V: v})
	}
	return r
}

func TestServerBadPushBodies(t *testing.T) {
	h := newHub(t)
	pushH := headers(peerID, rshttp.ContentStream)
	goodRow := newRow(peerID, []rowsync.Value{rowsync.IntValue(100)}, rowsync.TextValue("hundred"), rowsync.IntValue(1), rowsync.NullValue())

	// The good stream is accepted by another hub: what the cases below
	// break is what makes them fail.
	t.Run("control", func(t *testing.T) {
		other := newHub(t)
		status, _, b := post(t, other.srv.URL(), "/v1/push", pushH, bytes.NewReader(oneRow(t, peerID, "t", tCols(), []string{"id"}, goodRow)))
		if status != http.StatusOK {
			t.Fatalf("good push: %d %s", status, b)
		}
		if got := dumpTable(t, other.db, "t"); len(got) != 4 {
			t.Fatalf("good push: t has %d rows, want 4", len(got))
		}
		// The same row hand-built with the raw helpers is accepted too.
		raw := rawStream(beginFrame(peerID), frame(rowsync.FrameNode, str(nil, peerID)), tHeader(),
			tRow(val(rowsync.IntValue(101)), val(rowsync.TextValue("x")), val(rowsync.IntValue(1)), val(rowsync.NullValue())),
			checkpointFrame("t", 1), endFrame(1))
		if status, _, b := post(t, other.srv.URL(), "/v1/push", pushH, bytes.NewReader(raw)); status != http.StatusOK {
			t.Fatalf("good raw push: %d %s", status, b)
		}
	})

	nodeFrame := frame(rowsync.FrameNode, str(nil, peerID))
	withCols := func(f func(cs []rowsync.Column) []rowsync.Column) []rowsync.Column { return f(tCols()) }
	hugeLen := append(slices.Clone(magic), rowsync.FrameBegin)
	hugeLen = binary.AppendUvarint(hugeLen, 1<<62)
	maxLen := append(slices.Clone(magic), rowsync.FrameBegin)
	maxLen = binary.AppendUvarint(maxLen, rowsync.MaxFrameSize)
	maxLen = append(maxLen, "only a few bytes follow"...)

	// A stream of table t with one rows frame: the row's parts as given.
	rows := func(parts ...[]byte) []byte {
		return rawStream(beginFrame(peerID), nodeFrame, tHeader(), frame(rowsync.FrameRow, slices.Concat(parts...)), checkpointFrame("t", 1), endFrame(1))
	}
	key := val(rowsync.IntValue(100))
	goodCells := []col{val(rowsync.TextValue("x")), val(rowsync.IntValue(1)), val(rowsync.NullValue())}
	textCol := func(pre, suf string, length int64, data string) col {
		return col{meta: slices.Concat(ints1(3), str(str(nil, pre), suf), ints1(length)), data: []byte(data)}
	}

	cases := []struct {
		name    string
		h       http.Header
		body    []byte
		status  int
		code    string
		substrs []string
	}{
		{"empty", pushH, nil, 400, "malformed", []string{"empty"}},
		{"rows frame of no rows", pushH, rows(binary.AppendUvarint(nil, 0)), 400, "malformed", []string{"0 rows"}},
		{"rows frame of too many rows", pushH, rows(binary.AppendUvarint(nil, rowsync.MaxBlockRows+1)), 400, "malformed", []string{"rows frame of 4097 rows"}},
		{"rows frame of too many cells", pushH, rows(binary.AppendUvarint(nil, rowsync.MaxBlockCells/4+1)), 400, "malformed", []string{"cells"}},
		{"integer column of an unknown layout", pushH, rows(binary.AppendUvarint(nil, 1), []byte{7, 1}), 400, "malformed", []string{"seq", "layout"}},
		{"bit-packed column of 65-bit values", pushH, rows(binary.AppendUvarint(nil, 1), []byte{2, 0, 65}, make([]byte, 9)), 400, "malformed", []string{"bit width"}},
		{"bit-packed column cut short", pushH, rows(binary.AppendUvarint(nil, 1), []byte{2, 0, 64, 1, 2, 3}), 400, "malformed", []string{"seq"}},
		{"row with too many versions", pushH, rows(binary.AppendUvarint(nil, 1), ints1(1), ints1(10)), 400, "malformed", []string{"10 versions"}},
		{"row with a negative version count", pushH, rows(binary.AppendUvarint(nil, 1), ints1(1), ints1(-1)), 400, "malformed", []string{"-1 versions"}},
		{"unknown hlc layout", pushH, rows(binary.AppendUvarint(nil, 1), ints1(1), ints1(2), ints1(5), []byte{9}), 400, "malformed", []string{"hlc layout"}},
		{"node index 0", pushH, rows(binary.AppendUvarint(nil, 1), ints1(1), ints1(1), ints1(5), ints1(0)), 400, "malformed", []string{"unknown node 0"}},
		{"version index beyond the row's versions", pushH, rows(tVersions(), ints1(2)), 400, "malformed", []string{"version index 2 of 1"}},
		{"negative version index", pushH, rows(tVersions(), ints1(1), ints1(-1)), 400, "malformed", []string{"version index -1"}},
		{"decimal exponent over 15", pushH, rows(tVersions(), tRefs(), cols(key, goodCells[0], goodCells[1], col{meta: slices.Concat(ints1(5), []byte{16}, ints1(1))})), 400, "malformed", []string{"decimal exponent 16"}},
		{"decimal mantissa of 2^53", pushH, rows(tVersions(), tRefs(), cols(col{meta: slices.Concat(ints1(5), []byte{0}, ints1(1<<53))}, goodCells[0], goodCells[1], goodCells[2])), 400, "malformed", []string{"mantissa"}},
		{"text prefix over 64 bytes", pushH, rows(tVersions(), tRefs(), cols(key, textCol(strings.Repeat("p", 65), "", 0, ""), goodCells[1], goodCells[2])), 400, "malformed", []string{"prefix"}},
		{"negative text length", pushH, rows(tVersions(), tRefs(), cols(key, textCol("", "", -1, ""), goodCells[1], goodCells[2])), 400, "malformed", []string{"text or blob of -1 bytes"}},
		{"text column cut short", pushH, rows(tVersions(), tRefs(), cols(key, textCol("item-", "", 3, "ab"), goodCells[1], goodCells[2])), 400, "malformed", []string{"text"}},
		{"rows frame with a column too many", pushH, rows(tVersions(), tRefs(), cols(key, goodCells[0], goodCells[1], goodCells[2], val(rowsync.IntValue(5)))), 400, "malformed", []string{"trailing"}},
		{"not a change stream", pushH, []byte("hello, I am not a change stream at all"), 400, "malformed", []string{"not a rowsync change stream"}},
		{"json instead of a stream", pushH, []byte(`{"rows":[]}`), 400, "malformed", nil},
		{"future stream version", pushH, []byte("RSYN\x09"), 400, "malformed", []string{"version"}},
		{"magic only", pushH, magic, 400, "malformed", []string{"end"}},
		{"huge declared length", pushH, hugeLen, 400, "malformed", []string{"exceeds"}},
		{"unknown frame type", pushH, rawStream(beginFrame(peerID), frame('Z', nil)), 400, "malformed", []string{"frame type"}},
		{"row before the begin frame", pushH, rawStream(tHeader()), 400, "malformed", []string{"begin"}},
		{"second begin", pushH, rawStream(beginFrame(peerID), beginFrame(peerID)), 400, "malformed", []string{"begin"}},
		{"row before a table header", pushH, rawStream(beginFrame(peerID), nodeFrame, tRow(val(rowsync.IntValue(100)))), 400, "malformed", []string{"table header"}},
		{"row naming an unknown node", pushH, rawStream(beginFrame(peerID), tHeader(),
			tRow(val(rowsync.IntValue(100)), val(rowsync.TextValue("x")), val(rowsync.IntValue(1)), val(rowsync.NullValue())), checkpointFrame("t", 1), endFrame(1)),
			400, "malformed", []string{"unknown node"}},
		{"row with too few cells", pushH, rawStream(beginFrame(peerID), nodeFrame, tHeader(),
			tRow(val(rowsync.IntValue(100)), val(rowsync.TextValue("x"))), checkpointFrame("t", 1), endFrame(1)), 400, "malformed", nil},
		{"row with trailing bytes", pushH, rawStream(beginFrame(peerID), nodeFrame, tHeader(),
			tRow(val(rowsync.IntValue(100)), val(rowsync.TextValue("x")), val(rowsync.IntValue(1)), val(rowsync.NullValue()), val(rowsync.NullValue())), checkpointFrame("t", 1), endFrame(1)),
			400, "malformed", []string{"trailing"}},
		{"value with an unknown tag", pushH, rawStream(beginFrame(peerID), nodeFrame, tHeader(),
			tRow(val(rowsync.IntValue(100)), col{meta: slices.Concat(ints1(9), []byte{1, 2, 3})}, val(rowsync.IntValue(1)), val(rowsync.NullValue())), checkpointFrame("t", 1), endFrame(1)),
			400, "malformed", []string{"value tag"}},
		{"text value longer than its frame", pushH, rawStream(beginFrame(peerID), nodeFrame, tHeader(),
			tRow(val(rowsync.IntValue(100)), col{meta: slices.Concat(ints1(3), []byte{0, 0}, ints1(1<<16)), data: []byte("x")}, val(rowsync.IntValue(1)), val(rowsync.NullValue())), checkpointFrame("t", 1), endFrame(1)),
			400, "malformed", []string{"text"}},
		{"key of the wrong type", pushH, oneRow(t, peerID, "t", tCols(), []string{"id"},
			newRow(peerID, []rowsync.Value{rowsync.TextValue("not a number")}, rowsync.TextValue("x"), rowsync.IntValue(1), rowsync.NullValue())),
			400, "malformed", []string{"type"}},
		{"real key in an integer primary key", pushH, oneRow(t, peerID, "t", tCols(), []string{"id"},
			newRow(peerID, []rowsync.Value{rowsync.RealValue(1.5)}, rowsync.TextValue("x"), rowsync.IntValue(1), rowsync.NullValue())),
			400, "malformed", []string{"type"}},
		{"null key", pushH, oneRow(t, peerID, "t", tCols(), []string{"id"},
			newRow(peerID, []rowsync.Value{rowsync.NullValue()}, rowsync.TextValue("x"), rowsync.IntValue(1), rowsync.NullValue())),
			400, "malformed", []string{"NULL"}},
		{"null key in a composite key", pushH, oneRow(t, peerID, "c",
			[]rowsync.Column{{Name: "a", Class: rowsync.ClassText}, {Name: "k", Class: rowsync.ClassInteger}, {Name: "v", Class: rowsync.ClassReal}, {Name: "tid", Class: rowsync.ClassInteger}},
			[]string{"a", "k"}, newRow(peerID, []rowsync.Value{rowsync.NullValue(), rowsync.IntValue(1)}, rowsync.RealValue(1), rowsync.NullValue())),
			400, "malformed", []string{"NULL"}},
		{"row of an unknown table", pushH, oneRow(t, peerID, "nosuch", tCols(), []string{"id"}, goodRow), 400, "unknown_table", []string{"nosuch"}},
		{"row of an injected table name", pushH, oneRow(t, peerID, injection, tCols(), []string{"id"}, goodRow), 400, "unknown_table", []string{"DROP TABLE"}},
		{"header with an unknown column", pushH, oneRow(t, peerID, "t", withCols(func(cs []rowsync.Column) []rowsync.Column {
			cs[3].Name = "bogus"
			return cs
		}), []string{"id"}, goodRow), 409, "schema_mismatch", []string{`"t"`, `"bogus"`}},
		{"header with an injected column", pushH, oneRow(t, peerID, "t", withCols(func(cs []rowsync.Column) []rowsync.Column {
			cs[3].Name = injection
			return cs
		}), []string{"id"}, goodRow), 409, "schema_mismatch", []string{`"t"`, "DROP TABLE"}},
		{"header with an injected key", pushH, oneRow(t, peerID, "t", withCols(func(cs []rowsync.Column) []rowsync.Column {
			cs[0].Name = injection
			return cs
		}), []string{injection}, goodRow), 409, "schema_mismatch", []string{`"t"`}},
		{"header with an extra column", pushH, oneRow(t, peerID, "t", withCols(func(cs []rowsync.Column) []rowsync.Column {
			return append(cs, rowsync.Column{Name: "extra", Class: rowsync.ClassText})
		}), []string{"id"}, newRow(peerID, []rowsync.Value{rowsync.IntValue(100)}, rowsync.TextValue("x"), rowsync.IntValue(1), rowsync.NullValue(), rowsync.TextValue("e"))),
			409, "schema_mismatch", []string{`"t"`, `"extra"`}},
		{"header with a wrong type class", pushH, oneRow(t, peerID, "t", withCols(func(cs []rowsync.Column) []rowsync.Column {
			cs[1].Class = rowsync.ClassInteger
			return cs
		}), []string{"id"}, goodRow), 409, "schema_mismatch", []string{`"t"`, `"name"`, "class"}},
		{"header with a wrong key", pushH, oneRow(t, peerID, "t", tCols(), []string{"name"}, newRow(peerID, []rowsync.Value{rowsync.TextValue("x")}, rowsync.IntValue(100), rowsync.IntValue(1), rowsync.NullValue())),
			409, "schema_mismatch", []string{`"t"`, "key"}},
		{"checkpoint naming an injected table", pushH, rawStream(beginFrame(peerID), nodeFrame, tHeader(),
			tRow(val(rowsync.IntValue(100)), val(rowsync.TextValue("x")), val(rowsync.IntValue(1)), val(rowsync.NullValue())), checkpointFrame(injection, 1), endFrame(1)),
			400, "unknown_table", []string{"DROP TABLE"}},
		{"stream from the server's own id", headers(h.node.ID(), rshttp.ContentStream), oneRow(t, h.node.ID(), "t", tCols(), []string{"id"}, newRow(h.node.ID(), []rowsync.Value{rowsync.IntValue(100)}, rowsync.TextValue("x"), rowsync.IntValue(1), rowsync.NullValue())),
			400, "protocol", []string{"itself"}},
		{"begin id differs from the header", pushH, oneRow(t, "someone-else", "t", tCols(), []string{"id"}, newRow("someone-else", []rowsync.Value{rowsync.IntValue(100)}, rowsync.TextValue("x"), rowsync.IntValue(1), rowsync.NullValue())),
			400, "protocol", []string{"someone-else"}},
		{"sender reports its failure", pushH, rawStream(beginFrame(peerID), frame(rowsync.FrameError, str(nil, "disk on fire"))), 400, "sender_failed", []string{"disk on fire"}},
		{"unknown content encoding", func() http.Header {
			hd := headers(peerID, rshttp.ContentStream)
			hd.Set("Content-Encoding", "br")
			return hd
		}(),
			magic, 415, "content_encoding", []string{"br"}},
		{"zstd header on a plain body", func() http.Header {
			hd := headers(peerID, rshttp.ContentStream)
			hd.Set("Content-Encoding", "zstd")
			return hd
		}(),
			oneRow(t, peerID, "t", tCols(), []string{"id"}, goodRow), 400, "malformed", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h.check(t, "/v1/push", c.h, bytes.NewReader(c.body), c.status, c.code, c.substrs...)
		})
	}

	t.Run("declared length beyond what is sent allocates little", func(t *testing.T) {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		h.check(t, "/v1/push", pushH, bytes.NewReader(maxLen), 400, "malformed", "truncated")
		runtime.ReadMemStats(&after)
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
			t.Errorf("a %d-byte body declaring a %d-byte frame made the server allocate %d MiB", len(maxLen), rowsync.MaxFrameSize, grew>>20)
		}
	})
}

// zstdOf compresses what gen writes, streaming: only the compressed bytes
// are held.
func zstdOf(tb testing.TB, gen func(w io.Writer) error) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	if err != nil {
		tb.Fatal(err)
	}
	if err := gen(zw); err != nil {
		tb.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// repeat writes pattern until n bytes are written.
func repeat(w io.Writer, pattern []byte, n int64) error {
	buf := bytes.Repeat(pattern, max(1, (64<<10)/len(pattern)))
	for n > 0 {
		m := min(int64(len(buf)), n)
		if _, err := w.Write(buf[:m]); err != nil {
			return err
		}
		n -= m
	}
	return nil
}

func TestServerDecompressionBombs(t *testing.T) {
	h := newHub(t)
	zstdH := func() http.Header {
		hd := headers(peerID, rshttp.ContentStream)
		hd.Set("Content-Encoding", "zstd")
		return hd
	}
	// 2 GiB of zeros compress to a few hundred KiB. Concatenated zstd
	// frames decompress to the concatenation of their contents, so a
	// compressed prefix can be put before it.
	zeroBomb := zstdOf(t, func(w io.Writer) error {
		_, err := io.CopyN(w, zeros{}, 2<<30)
		return err
	})
	prefixed := func(prefix []byte) []byte {
		return slices.Concat(zstdOf(t, func(w io.Writer) error {
			_, err := w.Write(prefix)
			return err
		}), zeroBomb)
	}
	// bomb checks that a compressed body is refused within a few seconds,
	// the process allocating at most maxAlloc bytes meanwhile.
	bomb := func(t *testing.T, maxAlloc uint64, body []byte, code string, substrs ...string) {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		start := time.Now()
		h.check(t, "/v1/push", zstdH(), bytes.NewReader(body), 400, code, substrs...)
		runtime.ReadMemStats(&after)
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("the bomb took %s to reject", d)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > maxAlloc {
			t.Errorf("the bomb made this process allocate %d MiB", grew>>20)
		}
	}
	t.Run("2 GiB of zeros", func(t *testing.T) {
		bomb(t, 64<<20, zeroBomb, "malformed", "not a rowsync change stream")
	})
	t.Run("a valid start, then 2 GiB of zeros", func(t *testing.T) {
		bomb(t, 64<<20, prefixed(rawStream(beginFrame(peerID))), "malformed")
	})
	t.Run("a frame declaring 256 MiB, then 2 GiB of zeros", func(t *testing.T) {
		b := rawStream(beginFrame(peerID))
		b = append(b, rowsync.FrameTable)
		b = binary.AppendUvarint(b, rowsync.MaxFrameSize)
		// One frame may be as large as MaxFrameSize, so reading it may take
		// that much (twice, as the buffer doubles) but no more.
		bomb(t, 2*rowsync.MaxFrameSize+64<<20, prefixed(b), "malformed")
	})
	t.Run("512 MiB of node frames", func(t *testing.T) {
		body := zstdOf(t, func(w io.Writer) error {
			if _, err := w.Write(rawStream(beginFrame(peerID))); err != nil {
				return err
			}
			return repeat(w, frame(rowsync.FrameNode, str(nil, "n1")), 512<<20)
		})
		bomb(t, 64<<20, body, "malformed", "node")
	})
	t.Run("not zstd at all", func(t *testing.T) {
		h.check(t, "/v1/push", zstdH(), strings.NewReader(string(magic)+" definitely not zstd"), 400, "malformed", "zstd")
	})
}

// TestServerTruncatedStreams pushes a real node's stream cut at several
// offsets: each is refused, and what the hub keeps is exactly the batches
// whose checkpoint arrived, nothing of the batch that was cut.
func TestServerTruncatedStreams(t *testing.T) {
	dir := t.TempDir()
	var seed strings.Builder
	for i := range 10 {
		fmt.Fprintf(&seed, "INSERT INTO t VALUES (%d, 'row %d', %d, x'%02x');\n", 100+i, i, i*i, i)
	}
	seed.WriteString("INSERT INTO c VALUES ('z', 1, 2.5, 100), ('z', 2, 1e300, 101);")
	src := newNode(t, dir, "src", seed.String())
	src.node.BatchRows = 3
	var buf bytes.Buffer
	if _, err := src.node.Send(context.Background(), &buf, rowsync.NodeInfo{ID: "hub"}, nil); err != nil {
		t.Fatal(err)
	}
	full := buf.Bytes()

	// Frame boundaries, and the rows committed by the checkpoints that end
	// before each one.
	type boundary struct {
		off       int
		typ       byte
		committed int // rows whose checkpoint ends at or before off
	}
	var bounds []boundary
	rows, pending := 0, 0
	for off := 5; off < len(full); {
		typ := full[off]
		n, k := binary.Uvarint(full[off+1:])
		end := off + 1 + k + int(n)
		switch typ {
		case rowsync.FrameRow:
			nrows, _ := binary.Uvarint(full[off+1+k:]) // a rows frame starts with its row count
			pending += int(nrows)
		case rowsync.FrameCheckpoint:
			rows += pending
			pending = 0
		}
		bounds = append(bounds, boundary{off: end, typ: typ, committed: rows})
		off = end
	}
	if bounds[len(bounds)-1].off != len(full) || rows != 12 {
		t.Fatalf("could not parse the stream: %d rows", rows)
	}
	committedAt := func(cut int) int {
		c := 0
		for _, b := range bounds {
			if b.off <= cut {
				c = b.committed
			}
		}
		return c
	}
	cuts := []int{1, 4, 5, 6, 7}
	firstCheckpoint := -1
	for i, b := range bounds {
		if b.typ == rowsync.FrameCheckpoint && firstCheckpoint < 0 {
			firstCheckpoint = b.off
		}
		if i == 2 || i == 4 || b.typ == rowsync.FrameCheckpoint {
			cuts = append(cuts, b.off-1, b.off, b.off+1)
		}
	}
	cuts = append(cuts, len(full)-1)
	slices.Sort(cuts)
	cuts = slices.Compact(cuts)
	cuts = slices.DeleteFunc(cuts, func(c int) bool { return c >= len(full) })
	if firstCheckpoint < 0 {
		t.Fatal("no checkpoint in the stream")
	}
	for _, cut := range cuts {
		t.Run(fmt.Sprintf("cut at %d of %d", cut, len(full)), func(t *testing.T) {
			h := newHub(t)
			before := snapshot(t, h.testNode)
			status, rh, b := post(t, h.srv.URL(), "/v1/push", headers(src.node.ID(), rshttp.ContentStream), bytes.NewReader(full[:cut]))
			wantError(t, status, rh, b, 400, "malformed")
			requireAlive(t, h.srv, h.testNode)
			want := committedAt(cut)
			got := len(dumpTable(t, h.db, "t")) - 3 + len(dumpTable(t, h.db, "c")) - 3
			if got != want {
				t.Fatalf("hub holds %d of the pushed rows, want %d (the batches checkpointed before the cut)", got, want)
			}
			if want == 0 {
				requireSame(t, before, snapshot(t, h.testNode))
			}
			checkIntegrity(t, h.db)
			// The rest arrives with the next, whole push.
			status, _, b = post(t, h.srv.URL(), "/v1/push", headers(src.node.ID(), rshttp.ContentStream), bytes.NewReader(full))
			if status != http.StatusOK {
				t.Fatalf("whole push after the cut one: %d %s", status, b)
			}
			if got := len(dumpTable(t, h.db, "t")) + len(dumpTable(t, h.db, "c")); got != 18 {
				t.Fatalf("after the whole push the hub holds %d rows, want 18", got)
			}
		})
	}
}

func checkIntegrity(tb testing.TB, db *sqlite.DB) {
	tb.Helper()
	var ok string
	if err := db.SQL().QueryRow(`PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		tb.Fatalf("integrity_check: %q %v", ok, err)
	}
	rows, err := db.SQL().Query(`PRAGMA foreign_key_check`)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	if rows.Next() {
		tb.Fatal("foreign_key_check reports violations")
	}
}

// TestServerSync checks the happy path over the same server: a real client
// syncs both ways and the nodes converge.
func TestServerSync(t *testing.T) {
	h := newHub(t)
	n := newNode(t, h.dir, "shop", `INSERT INTO t VALUES (50, 'shop row', 5, NULL);`)
	ctx := context.Background()
	c := rshttp.NewClient(h.srv.URL())
	res, err := n.node.Sync(ctx, c, rowsync.SyncOptions{URL: h.srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	if res.Pushed == nil || res.Pushed.Rows != 1 || res.Pulled == nil || res.Pulled.Rows != 6 {
		t.Fatalf("sync result %+v %+v", res.Pushed, res.Pulled)
	}
	diffs, err := n.node.Verify(ctx, rshttp.NewClient(h.srv.URL()))
	if err != nil || len(diffs) != 0 {
		t.Fatalf("verify: %v %v", diffs, err)
	}
}
