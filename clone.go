package rowsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// SchemaResponse describes a node's tracked tables, foreign keys included:
// what a new node needs to be cloned from it (GET /v1/schema).
type SchemaResponse struct {
	Protocol int      `json:"protocol"`
	Node     NodeInfo `json:"node"`
	// Engine is the peer's database engine ("sqlite", "postgres",
	// "mysql"), or empty if unknown. A SQLite clone of a SQLite peer
	// reuses its declared types.
	Engine string        `json:"engine,omitempty"`
	Tables []TableSchema `json:"tables"` // parents first
}

// SchemaPeer is a Peer that can describe its tracked tables without a sync
// session (no hello, so the caller needs no tables of its own): *Node and
// the HTTP client implement it. It is separate from Peer so that existing
// Peer implementations and wrappers keep compiling.
type SchemaPeer interface {
	PeerSchema(ctx context.Context) (*SchemaResponse, error)
}

// EngineNamer is a Database that names its engine.
type EngineNamer interface {
	Engine() string // "sqlite", "postgres" or "mysql"
}

// TableCreator is a Database that can create tables from a peer's schema
// (the SQLite adapter): the tables, parents first, with their columns,
// primary keys and foreign keys. engine is the peer's (SchemaResponse.Engine).
// It returns what it left out, one line each (a foreign key to a table the
// peer does not track).
type TableCreator interface {
	CreateTables(ctx context.Context, tables []TableSchema, engine string) (skipped []string, err error)
}

// Errors of Clone.
var (
	// ErrAlreadyNode: the database to clone into is already a node.
	ErrAlreadyNode = errors.New("already a rowsync node")
	// ErrPeerTooOld: the peer cannot describe its schema (a server from
	// before GET /v1/schema).
	ErrPeerTooOld = errors.New("the peer's rowsync is too old to clone from")
)

var _ SchemaPeer = (*Node)(nil)

// PeerSchema implements SchemaPeer for a local node.
func (n *Node) PeerSchema(ctx context.Context) (*SchemaResponse, error) {
	r := &SchemaResponse{Protocol: ProtocolVersion, Node: n.Info(), Tables: n.Schema()}
	if e, ok := n.db.(EngineNamer); ok {
		r.Engine = e.Engine()
	}
	return r, nil
}

// CloneOptions configure Clone.
type CloneOptions struct {
	Name   string       // the new node's name (default: "node-XXXXXX")
	URL    string       // recorded as the peer's address
	Logger *slog.Logger // the new node's logger (default: discard)
}

// CloneResult reports a clone. On an error it says how far the clone got.
type CloneResult struct {
	Peer    NodeInfo    // the peer cloned from
	Created []string    // tables created from the peer's schema, parents first (none if they were there)
	Skipped []string    // what creating them left out (foreign keys to tables the peer does not track)
	Node    *Node       // the new node, once initialized
	Sync    *SyncResult // the pull
}

// Clone makes db a new node (its own new id) holding peer's data, pulled
// only. If db has no tables at all and can create them (TableCreator: a
// SQLite file), it first creates the peer's tracked tables from its schema;
// otherwise every table the peer tracks must exist in db already, and the
// schemas are compared before anything is pulled. db must not be a node
// yet (ErrAlreadyNode) and peer must implement SchemaPeer.
//
// On an error the result says what was done: tables created (Created), the
// node initialized (Node). Clone does not undo them.
func Clone(ctx context.Context, db Database, peer Peer, opt CloneOptions) (*CloneResult, error) {
	res := &CloneResult{}
	switch err := NewNode(db).Open(ctx); {
	case err == nil:
		return res, fmt.Errorf("%s is %w", db.Address(), ErrAlreadyNode)
	case !errors.Is(err, ErrNotInitialized):
		return res, err
	}
	sp, ok := peer.(SchemaPeer)
	if !ok {
		return res, fmt.Errorf("%w: the peer cannot describe its schema", ErrPeerTooOld)
	}
	schema, err := sp.PeerSchema(ctx)
	if err != nil {
		return res, fmt.Errorf("read the peer's schema: %w", err)
	}
	if schema.Protocol != ProtocolVersion {
		return res, fmt.Errorf("%w: peer speaks protocol %d, this node %d", ErrProtocol, schema.Protocol, ProtocolVersion)
	}
	res.Peer = schema.Node
	if len(schema.Tables) == 0 {
		return res, fmt.Errorf("peer %s tracks no tables", schema.Node.Name)
	}
	names := make([]string, len(schema.Tables))
	for i, t := range schema.Tables {
		names[i] = t.Name
	}
	have, err := db.UserTables(ctx)
	if err != nil {
		return res, err
	}
	if len(have) == 0 {
		tc, ok := db.(TableCreator)
		if !ok {
			return res, fmt.Errorf("%s has no tables: create the tables %s tracks first (clone creates tables only in a new SQLite file)", db.Address(), schema.Node.Name)
		}
		skipped, err := tc.CreateTables(ctx, schema.Tables, schema.Engine)
		if err != nil {
			return res, fmt.Errorf("create tables: %w", err)
		}
		res.Skipped = skipped
		res.Created = names
	} else {
		set := map[string]bool{}
		for _, h := range have {
			set[h] = true
		}
		var missing []string
		for _, n := range names {
			if !set[n] {
				missing = append(missing, n)
			}
		}
		if len(missing) > 0 {
			return res, fmt.Errorf("table %q, tracked by %s, does not exist in %s (%d missing: %s); create it first, clone creates tables only in a new SQLite file",
				missing[0], schema.Node.Name, db.Address(), len(missing), strings.Join(missing, ", "))
		}
	}
	n, err := Init(ctx, db, InitOptions{Tables: names, Name: opt.Name})
	if err != nil {
		return res, fmt.Errorf("init: %w", err)
	}
	if opt.Logger != nil {
		n.Logger = opt.Logger
	}
	res.Node = n
	if err := CompareSchemas(n.Schema(), schema.Tables, "node "+schema.Node.Name); err != nil {
		return res, err
	}
	sr, err := n.Sync(ctx, peer, SyncOptions{PullOnly: true, URL: opt.URL})
	res.Sync = sr
	return res, err
}
