package rowsync

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Version orders writes: a hybrid logical clock value and the id of the
// node that wrote. The zero Version means "never written".
//
// The HLC packs wall-clock milliseconds since the Unix epoch in its upper 48
// bits and a logical counter in its lower 16 bits, so comparing two HLCs as
// integers compares them as hybrid clocks.
type Version struct {
	HLC  int64
	Node string
}

// IsZero reports whether v is the zero version.
func (v Version) IsZero() bool { return v.HLC == 0 && v.Node == "" }

// Compare returns -1, 0 or +1 as v is older than, equal to or newer than o:
// by HLC, then by node id.
func (v Version) Compare(o Version) int {
	switch {
	case v.HLC < o.HLC:
		return -1
	case v.HLC > o.HLC:
		return 1
	case v.Node < o.Node:
		return -1
	case v.Node > o.Node:
		return 1
	}
	return 0
}

// After reports whether v is newer than o.
func (v Version) After(o Version) bool { return v.Compare(o) > 0 }

// Time is the wall-clock part of the version.
func (v Version) Time() time.Time { return time.UnixMilli(v.HLC >> 16).UTC() }

func (v Version) String() string {
	if v.IsZero() {
		return "-"
	}
	return fmt.Sprintf("%s.%d@%s", v.Time().Format("2006-01-02T15:04:05.000Z"), v.HLC&0xffff, shortID(v.Node))
}

func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// maxVersion returns the newer of a and b.
func maxVersion(a, b Version) Version {
	if b.After(a) {
		return b
	}
	return a
}

// Clock is a node's hybrid logical clock: never going backwards and always
// ahead of every version the node has seen.
type Clock struct {
	Last int64 // the last HLC issued or observed
}

// HLCFromWall is the HLC of a wall-clock time in milliseconds.
func HLCFromWall(ms int64) int64 { return ms << 16 }

// Next issues an HLC for a write made at wall-clock time ms.
func (c *Clock) Next(ms int64) int64 {
	h := HLCFromWall(ms)
	if h <= c.Last {
		h = c.Last + 1
	}
	c.Last = h
	return h
}

// Observe moves the clock past a version received from a peer.
func (c *Clock) Observe(hlc int64) {
	if hlc > c.Last {
		c.Last = hlc
	}
}

// Cell is one non-key column of a row: its value, the version that wrote it,
// and the version that write replaced (used to tell a concurrent overwrite
// from a causal one).
type Cell struct {
	Value Value
	V     Version
	Prev  Version
}

// Row is the full state of one row as rowsync ships and merges it: its key,
// its non-key cells, and its row-level versions. Live is the version of the
// insert that last brought the row into existence; Tomb the version of the
// newest delete, and TombPrev the newest column version that delete had
// seen. A row exists iff its newest version (Live or any cell's) is newer
// than Tomb.
type Row struct {
	Key      []Value
	Cells    []Cell
	Live     Version
	Tomb     Version
	TombPrev Version
}

// Newest returns the newest of the row's Live and cell versions.
func (r *Row) Newest() Version {
	n := r.Live
	for i := range r.Cells {
		n = maxVersion(n, r.Cells[i].V)
	}
	return n
}

// Alive reports whether the row exists.
func (r *Row) Alive() bool { return r.Newest().After(r.Tomb) }

// Values returns the cell values.
func (r *Row) Values() []Value {
	vs := make([]Value, len(r.Cells))
	for i := range r.Cells {
		vs[i] = r.Cells[i].Value
	}
	return vs
}

// sameVersions reports whether two rows carry the same versions everywhere.
func sameVersions(a, b *Row) bool {
	if a.Live != b.Live || a.Tomb != b.Tomb || a.TombPrev != b.TombPrev || len(a.Cells) != len(b.Cells) {
		return false
	}
	for i := range a.Cells {
		if a.Cells[i].V != b.Cells[i].V || a.Cells[i].Prev != b.Cells[i].Prev {
			return false
		}
	}
	return true
}

// nodeDict maps node ids to small local integers and back, for compact
// storage of versions.
type nodeDict interface {
	index(id string) (int64, error)
	id(idx int64) (string, error)
}

// encodeMeta encodes a row's versions for local storage (the shadow table's
// meta column). Node ids are stored as local indexes.
func encodeMeta(r *Row, d nodeDict) ([]byte, error) {
	b := make([]byte, 0, 16+len(r.Cells)*8)
	var err error
	put := func(v Version) {
		if err != nil {
			return
		}
		b = binary.AppendVarint(b, v.HLC)
		if v.Node == "" {
			b = append(b, 0)
			return
		}
		var idx int64
		idx, err = d.index(v.Node)
		b = binary.AppendUvarint(b, uint64(idx))
	}
	put(r.Live)
	put(r.Tomb)
	put(r.TombPrev)
	b = binary.AppendUvarint(b, uint64(len(r.Cells)))
	for i := range r.Cells {
		put(r.Cells[i].V)
		put(r.Cells[i].Prev)
	}
	return b, err
}

// decodeMeta decodes what encodeMeta wrote into r, whose Cells must already
// have the table's length; a shorter stored list (columns added since) leaves
// the remaining cells unversioned.
func decodeMeta(b []byte, r *Row, d nodeDict) error {
	rd := &reader{b: b}
	var err error
	get := func() Version {
		h := rd.varint("version")
		idx := rd.uvarint("version node")
		if rd.err != nil || idx == 0 {
			return Version{HLC: h}
		}
		id, e := d.id(int64(idx))
		if e != nil && err == nil {
			err = e
		}
		return Version{HLC: h, Node: id}
	}
	r.Live = get()
	r.Tomb = get()
	r.TombPrev = get()
	n := rd.uvarint("cell count")
	for i := 0; i < int(n) && rd.err == nil; i++ {
		v, p := get(), get()
		if i < len(r.Cells) {
			r.Cells[i].V, r.Cells[i].Prev = v, p
		}
	}
	if rd.err != nil {
		return rd.err
	}
	return err
}
