package rowsync

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"sort"
	"time"
)

// encodeHeldRow encodes a row with node ids in full, for the held table.
func encodeHeldRow(r *Row) []byte {
	b := EncodeValues(r.Key)
	put := func(v Version) {
		b = binary.AppendVarint(b, v.HLC)
		b = appendString(b, v.Node)
	}
	put(r.Live)
	put(r.Tomb)
	put(r.TombPrev)
	b = binary.AppendUvarint(b, uint64(len(r.Cells)))
	for _, c := range r.Cells {
		b = AppendValue(b, c.Value)
		put(c.V)
		put(c.Prev)
	}
	return b
}

func decodeHeldRow(p []byte, ncells int) (*Row, error) {
	rd := &reader{b: p}
	n := rd.uvarint("key count")
	if n > uint64(len(p)) {
		return nil, fmt.Errorf("%w: held row key", ErrMalformed)
	}
	r := &Row{Key: make([]Value, n)}
	for i := range r.Key {
		r.Key[i] = rd.value()
	}
	get := func() Version { return Version{HLC: rd.varint("hlc"), Node: rd.string("node")} }
	r.Live, r.Tomb, r.TombPrev = get(), get(), get()
	nc := rd.uvarint("cell count")
	if rd.err == nil && int(nc) != ncells {
		return nil, fmt.Errorf("%w: held row has %d cells, table has %d", ErrMalformed, nc, ncells)
	}
	r.Cells = make([]Cell, ncells)
	for i := range r.Cells {
		r.Cells[i] = Cell{Value: rd.value(), V: get(), Prev: get()}
	}
	return r, rd.err
}

// TableDigest summarizes a table's rows for verify: how many, and a hash
// that does not depend on row or column order.
type TableDigest struct {
	Table string `json:"table"`
	Rows  int64  `json:"rows"`
	Hash  string `json:"hash"`
}

// Digest implements Peer: a digest of every tracked table's actual rows.
// Each row is hashed as its values (with their storage classes) in column
// name order, and the row hashes are summed, so the digest does not depend
// on row order, column order or rowsync's bookkeeping.
func (n *Node) Digest(ctx context.Context) ([]TableDigest, error) {
	tx, err := n.db.Begin(ctx, false)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	var out []TableDigest
	for _, t := range n.tables {
		order := make([]int, len(t.Columns))
		for i := range order {
			order[i] = i
		}
		sort.Slice(order, func(a, b int) bool { return t.Columns[order[a]].Name < t.Columns[order[b]].Name })
		var sum [4]uint64
		var rows int64
		buf := make([]byte, 0, 256)
		err := tx.ScanRows(t, func(row []Value) error {
			buf = buf[:0]
			for _, i := range order {
				buf = AppendValue(buf, Canonical(t.Columns[i].Class, row[i]))
			}
			h := sha256.Sum256(buf)
			for l := range sum {
				sum[l] += binary.LittleEndian.Uint64(h[l*8:])
			}
			rows++
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("digest %q: %w", t.Name, err)
		}
		var hb [32]byte
		for l := range sum {
			binary.LittleEndian.PutUint64(hb[l*8:], sum[l])
		}
		out = append(out, TableDigest{Table: t.Name, Rows: rows, Hash: hex.EncodeToString(hb[:])})
	}
	return out, nil
}

// TableDiff is one table that differs between two nodes.
type TableDiff struct {
	Table      string `json:"table"`
	LocalRows  int64  `json:"local_rows"`
	RemoteRows int64  `json:"remote_rows"`
}

// Verify compares this node's tracked rows with a peer's and returns the
// tables that differ (none if identical).
func (n *Node) Verify(ctx context.Context, p Peer) ([]TableDiff, error) {
	hello, err := p.Hello(ctx, &HelloRequest{Protocol: ProtocolVersion, Node: n.Info(), Tables: WithoutForeignKeys(n.Schema()), Verify: true})
	if err != nil {
		return nil, err
	}
	if err := CompareSchemas(n.Schema(), hello.Tables, "node "+hello.Node.Name); err != nil {
		return nil, err
	}
	local, err := n.Digest(ctx)
	if err != nil {
		return nil, err
	}
	remote, err := p.Digest(ctx)
	if err != nil {
		return nil, err
	}
	rm := map[string]TableDigest{}
	for _, d := range remote {
		rm[d.Table] = d
	}
	var diffs []TableDiff
	for _, l := range local {
		r, ok := rm[l.Table]
		if !ok || r.Hash != l.Hash || r.Rows != l.Rows {
			diffs = append(diffs, TableDiff{Table: l.Table, LocalRows: l.Rows, RemoteRows: r.Rows})
		}
	}
	return diffs, nil
}

// Status is what `rowsync status` shows.
type Status struct {
	Node      NodeInfo      `json:"node"`
	Database  string        `json:"database"`
	Seq       int64         `json:"seq"`
	Clock     string        `json:"clock"`
	Tables    []TableStatus `json:"tables"`
	Unfolded  int64         `json:"unfolded_writes"`
	Peers     []PeerStatus  `json:"peers"`
	Conflicts int           `json:"conflicts"`
	Held      int           `json:"held"`
}

// TableStatus is one tracked table in Status.
type TableStatus struct {
	Name    string   `json:"name"`
	Key     []string `json:"key"`
	Columns int      `json:"columns"`
}

// PeerStatus is one peer in Status.
type PeerStatus struct {
	PeerRecord
	// Pending is the number of rows changed here since the peer last
	// confirmed receiving this node's changes.
	Pending int64 `json:"pending"`
}

// Status reports the node's identity, tables, pending writes and peers.
func (n *Node) Status(ctx context.Context) (*Status, error) {
	tx, err := n.db.Begin(ctx, false)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	st, err := tx.LoadState()
	if err != nil {
		return nil, err
	}
	s := &Status{Node: n.Info(), Database: n.db.Address(), Seq: st.Seq, Peers: []PeerStatus{}, Tables: []TableStatus{}}
	if st.Clock != 0 {
		s.Clock = time.UnixMilli(st.Clock >> 16).UTC().Format(time.RFC3339Nano)
	}
	for _, t := range n.tables {
		s.Tables = append(s.Tables, TableStatus{Name: t.Name, Key: t.KeyNames(), Columns: len(t.Columns)})
		c, err := tx.LogCount(t)
		if err != nil {
			return nil, err
		}
		s.Unfolded += c
	}
	ps, err := tx.Peers()
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		ps := PeerStatus{PeerRecord: p}
		for _, t := range n.tables {
			c, err := tx.CountChanges(t, p.AckedSeq)
			if err != nil {
				return nil, err
			}
			ps.Pending += c
		}
		s.Peers = append(s.Peers, ps)
	}
	cs, err := tx.Conflicts()
	if err != nil {
		return nil, err
	}
	s.Conflicts = len(cs)
	hs, err := tx.HeldChanges()
	if err != nil {
		return nil, err
	}
	s.Held = len(hs)
	return s, nil
}

// Conflicts returns the conflict log, newest first.
func (n *Node) Conflicts(ctx context.Context) ([]Conflict, error) {
	tx, err := n.db.Begin(ctx, false)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	return tx.Conflicts()
}
