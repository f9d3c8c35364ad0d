// Package bookkeeping holds what the SQL adapters (sqlite, mysql,
// postgres) share about rowsync's own tables: the columns each read of
// them selects and how a row of each is scanned. The tables have the same
// columns on every engine; only the statements that write them differ
// (INSERT OR REPLACE, ON DUPLICATE KEY UPDATE, ON CONFLICT) and stay in the
// adapters, as do the queries themselves (placeholders differ).
package bookkeeping

import (
	"fmt"
	"strings"
	"time"

	"github.com/rowsync/rowsync"
)

// Rows is what both database/sql and pgx query results offer.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// Scanner is one row: a *sql.Row, a pgx.Row, or Rows at a row.
type Scanner interface {
	Scan(dest ...any) error
}

// Columns selected from the bookkeeping tables, in the order the Scan
// functions below expect.
const (
	CursorColumns   = `tbl, kind, seq`
	PeerColumns     = `id, name, url, last_sync, sync_count, rows_in, rows_out, acked_seq, last_error`
	ConflictColumns = `id, at, tbl, pk, col, kind, winner, winner_hlc, winner_node, loser, loser_hlc, loser_node, peer, detail, resolved`
)

// Cursors reads rows of CursorColumns. It returns an empty slice, not nil,
// when there are none.
func Cursors(rows Rows) ([]rowsync.Cursor, error) {
	out := []rowsync.Cursor{}
	for rows.Next() {
		var c rowsync.Cursor
		var kind int64
		if err := rows.Scan(&c.Table, &kind, &c.Seq); err != nil {
			return nil, err
		}
		c.Kind = rowsync.ChangeKind(kind)
		out = append(out, c)
	}
	return out, rows.Err()
}

// ScanPeer reads one row of PeerColumns.
func ScanPeer(sc Scanner) (*rowsync.PeerRecord, error) {
	var p rowsync.PeerRecord
	var last int64
	if err := sc.Scan(&p.ID, &p.Name, &p.URL, &last, &p.SyncCount, &p.RowsIn, &p.RowsOut, &p.AckedSeq, &p.LastError); err != nil {
		return nil, err
	}
	if last != 0 {
		p.LastSync = time.UnixMilli(last).UTC()
	}
	return &p, nil
}

// Peers reads rows of PeerColumns.
func Peers(rows Rows) ([]rowsync.PeerRecord, error) {
	var out []rowsync.PeerRecord
	for rows.Next() {
		p, err := ScanPeer(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *p)
	}
	return out, rows.Err()
}

// Conflicts reads rows of ConflictColumns.
func Conflicts(rows Rows) ([]rowsync.Conflict, error) {
	var out []rowsync.Conflict
	for rows.Next() {
		var c rowsync.Conflict
		var at int64
		var pk, w, l []byte
		if err := rows.Scan(&c.ID, &at, &c.Table, &pk, &c.Column, &c.Kind, &w, &c.WinnerV.HLC, &c.WinnerV.Node,
			&l, &c.LoserV.HLC, &c.LoserV.Node, &c.Peer, &c.Detail, &c.Resolved); err != nil {
			return nil, err
		}
		c.At = time.UnixMilli(at).UTC()
		c.Key, _ = rowsync.DecodeValues(pk)
		c.Winner, c.Loser = DecodeValue(w), DecodeValue(l)
		out = append(out, c)
	}
	return out, rows.Err()
}

// Held reads rows of the held changes' columns id, tbl, pk, peer, change,
// error, at (no constant: MySQL needs change quoted, as `+"`change`"+`, and
// PostgreSQL cannot read that quoting).
func Held(rows Rows) ([]rowsync.Held, error) {
	var out []rowsync.Held
	for rows.Next() {
		var h rowsync.Held
		var pk []byte
		var at int64
		if err := rows.Scan(&h.ID, &h.Table, &pk, &h.Peer, &h.Change, &h.Error, &at); err != nil {
			return nil, err
		}
		h.Key, _ = rowsync.DecodeValues(pk)
		h.At = time.UnixMilli(at).UTC()
		out = append(out, h)
	}
	return out, rows.Err()
}

// EncodeValue is how a conflict's winner and loser values are stored.
func EncodeValue(v rowsync.Value) []byte { return rowsync.EncodeValues([]rowsync.Value{v}) }

// DecodeValue is the inverse of EncodeValue; a malformed value reads as
// NULL.
func DecodeValue(b []byte) rowsync.Value {
	vs, err := rowsync.DecodeValues(b)
	if err != nil || len(vs) != 1 {
		return rowsync.Value{}
	}
	return vs[0]
}

// CheckColumns reports, as an error naming the table and the column, how a
// tracked table's live columns and primary key differ from those it was
// registered with at init: a column dropped or renamed, a column whose
// type class changed, a column added, a different key. Schema changes are
// not synced; a column added is taken in by running init again.
func CheckColumns(table string, registered []rowsync.Column, registeredKey []string, live []rowsync.Column, liveKey []string) error {
	lm := map[string]rowsync.Column{}
	for _, c := range live {
		lm[c.Name] = c
	}
	for _, c := range registered {
		l, ok := lm[c.Name]
		if !ok {
			return fmt.Errorf("tracked table %q: column %q was dropped or renamed since rowsync init; schema changes are not synced", table, c.Name)
		}
		if l.Class != c.Class {
			return fmt.Errorf("tracked table %q: column %q changed type since rowsync init (was %s, now %s); schema changes are not synced", table, c.Name, c.Type, l.Type)
		}
		delete(lm, c.Name)
	}
	for _, c := range live {
		if _, ok := lm[c.Name]; ok {
			return fmt.Errorf("tracked table %q: column %q was added since rowsync init; run rowsync init again on every node", table, c.Name)
		}
	}
	if strings.Join(liveKey, ",") != strings.Join(registeredKey, ",") {
		return fmt.Errorf("tracked table %q: primary key changed since rowsync init; schema changes are not synced", table)
	}
	return nil
}
