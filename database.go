package rowsync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Sentinel errors.
var (
	// ErrNotInitialized is returned when a database has no rowsync
	// bookkeeping: run `rowsync init` on it first.
	ErrNotInitialized = errors.New("database is not initialized for rowsync (run rowsync init)")
	// ErrNoPrimaryKey is returned when a table to track has no primary key.
	ErrNoPrimaryKey = errors.New("table has no primary key")
	// ErrUnknownTable is returned for a table name that is not tracked here.
	ErrUnknownTable = errors.New("unknown table")
	// ErrProtocol is returned for a peer that breaks the protocol.
	ErrProtocol = errors.New("protocol error")
)

// NoPrimaryKeyError returns the error for a table to track that has no
// primary key; it matches ErrNoPrimaryKey with errors.Is.
func NoPrimaryKeyError(table string) error { return &noPKError{table} }

type noPKError struct{ table string }

func (e *noPKError) Error() string {
	return fmt.Sprintf("table %q has no primary key; rowsync identifies rows by primary key, so add one or leave the table out", e.table)
}
func (e *noPKError) Is(target error) bool { return target == ErrNoPrimaryKey }

// ConstraintError is returned by Tx write methods when a row cannot be
// written because of a constraint of the local database (unique, foreign
// key, check, not null). The engine holds such a change as a conflict
// instead of failing the sync.
type ConstraintError struct {
	Err error
}

func (e *ConstraintError) Error() string { return "constraint: " + e.Err.Error() }
func (e *ConstraintError) Unwrap() error { return e.Err }

// LogOp is the kind of a captured write.
type LogOp int

// Captured operations, as the capture triggers write them.
const (
	// OpInsert: a row with this key was inserted (or replaced).
	OpInsert LogOp = 1
	// OpUpdate: columns in the mask changed; the key did not.
	OpUpdate LogOp = 2
	// OpDelete: the row was deleted; the entry holds its old values.
	OpDelete LogOp = 3
	// OpMaybeDelete: the row conflicted with a write that may have removed
	// it (INSERT OR REPLACE on another unique column); the entry holds its
	// values. It is real iff the next entry for the key is an insert, or
	// there is none and the row is gone.
	OpMaybeDelete LogOp = 4
)

// LogEntry is one captured write, not yet folded into versions.
type LogEntry struct {
	ID   int64
	Op   LogOp
	Wall int64    // wall-clock milliseconds when the write happened
	Mask []uint64 // OpUpdate: bit i%63 of Mask[i/63] is set if column i changed
	Row  []Value  // all columns in column order; only the key is set for inserts and updates
	// Applied is set on an entry a transaction wrote while it applied
	// rows received from a peer (between BeginApply and EndApply) and that
	// EndApply kept: a side effect of the engine's writes on another row,
	// such as a foreign-key cascade or an application's trigger.
	Applied bool
}

// NoChange reports whether e is an update that changed no value: row
// triggers fire for every row an UPDATE matched, also those it left as they
// were, and log an empty mask. The fold stamps nothing for such an entry.
func (e *LogEntry) NoChange() bool {
	return e.Op == OpUpdate && !slices.ContainsFunc(e.Mask, func(m uint64) bool { return m != 0 })
}

// Changed reports whether column i is in the mask.
func (e *LogEntry) Changed(i int) bool {
	w := i / 63
	return w < len(e.Mask) && e.Mask[w]&(1<<(uint(i)%63)) != 0
}

// Shadow is the stored bookkeeping of one row: its key, the local sequence
// number of its last change, whether it is deleted, which peer its state
// came from (0 if local or merged), its encoded versions and, for a
// deleted row, its last values.
type Shadow struct {
	Key     []Value
	Seq     int64
	Deleted bool
	Src     int64
	Meta    []byte
	Dead    []byte
}

// ChangeKind splits a table's changes into live rows (sent parents first)
// and deleted rows (sent children first).
type ChangeKind int

// Change kinds.
const (
	KindLive ChangeKind = 0
	KindDead ChangeKind = 1
)

// StoredChange is a changed row as read for sending: its shadow and, for a
// live row, its current values (all columns, in column order).
type StoredChange struct {
	Shadow
	Row []Value
}

// State is a node's persistent identity and counters.
type State struct {
	NodeID string
	Name   string
	Clock  int64 // last HLC issued or observed
	Seq    int64 // last local change sequence number
}

// PeerRecord is what a node keeps about each peer (the Sahana
// sync_instance table).
type PeerRecord struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	URL       string    `json:"url,omitempty"`
	LastSync  time.Time `json:"last_sync"`
	SyncCount int64     `json:"sync_count"`
	RowsIn    int64     `json:"rows_received"`
	RowsOut   int64     `json:"rows_sent"`
	// AckedSeq is this node's sequence number up to which the peer has
	// confirmed receiving everything.
	AckedSeq  int64  `json:"acked_seq"`
	LastError string `json:"last_error,omitempty"`
}

// Cursor says up to which sequence number of a sending node a receiver has
// applied the changes of one table and kind.
type Cursor struct {
	Table string     `json:"table"`
	Kind  ChangeKind `json:"kind"`
	Seq   int64      `json:"seq"`
}

// Held is a change that could not be applied because of a local constraint;
// it is retried at the end of every sync.
type Held struct {
	ID     int64
	Table  string
	Key    []Value
	Peer   string
	Change []byte // the incoming row, encoded as on the wire (see encodeHeldRow)
	Error  string
	At     time.Time
}

// Database is a node's database as the engine needs it. Implementations
// live in their own packages (sqlite, postgres, mysql) and must pass the
// conformance suite in package rowsynctest.
type Database interface {
	// Address returns the database address, for messages.
	Address() string
	// Install creates rowsync's bookkeeping and installs change capture on
	// the named tables, idempotently: tables already tracked are upgraded
	// in place, and rows present before tracking are logged as inserts so
	// that they get an initial version. A table without a primary key is
	// refused with an error wrapping ErrNoPrimaryKey that names it.
	Install(ctx context.Context, tables []string) error
	// UserTables lists the tables that could be tracked.
	UserTables(ctx context.Context) ([]string, error)
	// Tables returns the tracked tables. It returns ErrNotInitialized if
	// Install never ran, and an error naming table and column if a tracked
	// table changed since it was installed.
	Tables(ctx context.Context) ([]*Table, error)
	// Begin starts a transaction. A write transaction excludes other
	// rowsync writers of this database until it ends; a read transaction
	// sees one consistent snapshot.
	Begin(ctx context.Context, write bool) (Tx, error)
	// Close releases the database.
	Close() error
}

// Tx is one transaction on a node's database. Its methods take the tables
// returned by Database.Tables.
type Tx interface {
	Commit() error
	Rollback() error

	// LoadState returns the node's identity and counters; SaveState
	// stores them.
	LoadState() (State, error)
	SaveState(State) error
	// NodeIndex returns the local index of a node id, adding it if needed.
	NodeIndex(id string) (int64, error)
	// NodeIDs returns every known node index and its id.
	NodeIDs() (map[int64]string, error)

	// ReadLog returns up to limit captured writes of t with ID > after,
	// in capture order.
	ReadLog(t *Table, after int64, limit int) ([]LogEntry, error)
	// NextLogOp returns the operation of the first captured write of t
	// after the entry with ID after that has the given key, if any.
	NextLogOp(t *Table, after int64, key []Value) (LogOp, bool, error)
	// DeleteLog removes the captured writes of t with IDs in ids, or all
	// with ID <= upTo when ids is nil.
	DeleteLog(t *Table, upTo int64, ids []int64) error
	// LogCount returns the number of captured writes not yet folded.
	LogCount(t *Table) (int64, error)

	// GetShadow returns the bookkeeping of a row, or nil.
	GetShadow(t *Table, key []Value) (*Shadow, error)
	// PutShadow inserts or replaces the bookkeeping of a row.
	PutShadow(t *Table, s *Shadow) error
	// Changes returns up to limit rows of kind with after < Seq <= upTo,
	// ordered by Seq, leaving out rows whose Src is excludeSrc (when not 0).
	Changes(t *Table, kind ChangeKind, after, upTo int64, excludeSrc int64, limit int) ([]StoredChange, error)
	// CountChanges counts rows with Seq > after.
	CountChanges(t *Table, after int64) (int64, error)

	// GetRow returns a row's current values (all columns), if it exists.
	GetRow(t *Table, key []Value) ([]Value, bool, error)
	// InsertRow inserts a row (all columns); UpdateRow sets some columns
	// of a row; DeleteRow deletes a row. Constraint failures are returned
	// as *ConstraintError and leave the transaction usable.
	InsertRow(t *Table, row []Value) error
	UpdateRow(t *Table, key []Value, cols []int, vals []Value) error
	DeleteRow(t *Table, key []Value) error
	// ScanRows calls fn for every row of t (all columns), in no particular
	// order.
	ScanRows(t *Table, fn func(row []Value) error) error

	// Savepoint starts a nested part of the transaction; RollbackTo
	// undoes what was done since, and Release ends it.
	Savepoint(name string) error
	RollbackTo(name string) error
	Release(name string) error

	// BeginApply is called before the engine writes rows received from a
	// peer, and EndApply after, with the keys it wrote per table: the
	// writes in between must not be captured as local writes, while side
	// effects on other rows (cascades, application triggers) must be.
	BeginApply() error
	EndApply(applied map[*Table][][]Value) error

	// Cursors returns the receiver-side cursors kept for a peer;
	// SetCursor stores one.
	Cursors(peer string) ([]Cursor, error)
	SetCursor(peer string, c Cursor) error
	// GetPeer returns what is known of a peer, or nil; PutPeer stores it;
	// Peers lists all.
	GetPeer(id string) (*PeerRecord, error)
	PutPeer(p *PeerRecord) error
	Peers() ([]PeerRecord, error)

	// AddConflict records a conflict, ignoring exact duplicates, and
	// reports whether it was new. Conflicts lists them, newest first.
	AddConflict(c *Conflict) (bool, error)
	Conflicts() ([]Conflict, error)
	// ResolveConflicts marks the constraint conflicts of a row resolved.
	ResolveConflicts(table string, key []Value) error

	// PutHeld stores (replacing any for the same table and key) a change
	// held back by a constraint; HeldChanges lists them; DeleteHeld removes one.
	PutHeld(h *Held) error
	HeldChanges() ([]Held, error)
	DeleteHeld(id int64) error
}

// BulkTx is implemented by a Tx that reads and writes many rows of a table
// in one statement. The engine applies incoming rows a chunk at a time
// through it when it is there, and one at a time otherwise.
type BulkTx interface {
	// GetShadows returns the bookkeeping of each key (nil where there is
	// none), in the order of keys. The keys are distinct.
	GetShadows(t *Table, keys [][]Value) ([]*Shadow, error)
	// InsertRows inserts rows (all columns each) with the same effect as
	// InsertRow on each, all or none: if a constraint refuses one, it
	// returns a *ConstraintError and nothing is inserted.
	InsertRows(t *Table, rows [][]Value) error
	// PutShadows stores the bookkeeping of rows of distinct keys, as
	// PutShadow does for each.
	PutShadows(t *Table, ss []*Shadow) error
}

// Conflict is one entry of the conflict log: a value that lost to another,
// or a change held back by a local constraint.
type Conflict struct {
	ID       int64     `json:"id"`
	At       time.Time `json:"at"`
	Table    string    `json:"table"`
	Key      []Value   `json:"-"`
	Column   string    `json:"column,omitempty"`
	Kind     string    `json:"kind"`
	Winner   Value     `json:"-"`
	WinnerV  Version   `json:"-"`
	Loser    Value     `json:"-"`
	LoserV   Version   `json:"-"`
	Peer     string    `json:"peer,omitempty"`
	Detail   string    `json:"detail,omitempty"`
	Resolved bool      `json:"resolved"`
}

// Conflict kinds.
const (
	// ConflictUpdate: two concurrent writes of one column; Loser lost.
	ConflictUpdate = "update"
	// ConflictDeleteWins: a concurrent update lost to a delete; Loser is
	// the updated value, no longer visible.
	ConflictDeleteWins = "delete-wins"
	// ConflictUpdateWins: a delete lost to a concurrent update, which
	// brought the row back.
	ConflictUpdateWins = "update-wins"
	// ConflictKeyCollision: two rows created independently on different
	// nodes under the same key were merged.
	ConflictKeyCollision = "key-collision"
	// ConflictConstraint: a change could not be applied because of a local
	// constraint and is held until it can.
	ConflictConstraint = "constraint"
)

func (c *Conflict) String() string {
	s := fmt.Sprintf("%s %s key %s", c.Kind, c.Table, FormatKey(c.Key))
	if c.Column != "" {
		s += " column " + c.Column
	}
	return s
}

// DeferTx is implemented by a Tx that can check foreign keys when the
// transaction commits instead of at each statement. The engine uses it for
// changes still held after a retry with immediate checks: two new rows
// that reference each other (a foreign-key cycle) can only be written
// together.
type DeferTx interface {
	// DeferForeignKeys defers, until commit, the foreign keys of this
	// database that can be deferred, and reports whether there are any.
	// Commit then returns a *ConstraintError (and ends the transaction
	// rolled back) if one of them does not hold.
	DeferForeignKeys() (bool, error)
}
