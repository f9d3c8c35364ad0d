package rowsynctest

import "strings"

// dialect is everything the suite says differently per engine: how to
// quote a name, how to show a value with its type, and the statements that
// are not plain standard SQL (DDL, upserts, quoted names). A statement may
// hold several statements separated by semicolons; the harness's exec must
// accept that when called without arguments. Statements use ? placeholders.
type dialect struct {
	quote func(name string) string
	// typed is an expression (the column as %[1]s) that renders a value
	// with its storage type, exactly, as text.
	typed string
	stmts map[string]string
	// values are value cases of testValues about this engine's types, run
	// after the shared ones; skipValues names shared cases that do not
	// apply to the engine, with the reason (e.g. a value its columns
	// cannot hold).
	values     []valueCase
	skipValues map[string]string
}

// Engines other than SQLite register their dialect from an init function
// in a file of their own (dialect_postgres.go, dialect_mysql.go):
//
//	func init() { dialects["postgres"] = dialect{...} }

// Names of the statements of a dialect. A test whose statement a dialect
// lacks is skipped on that engine.
const (
	ddlItems        = "create items"         // items(id integer key, name text, qty integer, code text unique)
	ddlNoKey        = "create nokey"         // nokey(a integer, b text), no primary key
	ddlParent       = "create parent"        // parent(id integer key, name text)
	ddlChild        = "create child"         // child(id integer key, pid not null references parent, note text)
	ddlVals         = "create vals"          // vals(id key; i integer, r real, t text, b blob, n numeric, d datetime, u untyped)
	ddlKV           = "create kv"            // kv(k text key, v text), clustered on the key (WITHOUT ROWID)
	ddlLines        = "create lines"         // lines(order_id, line, sku, qty), key (order_id, line)
	ddlTrack        = "create Track"         // Track(TrackId key, Name, "order", "Unit Price"): mixed case and a keyword
	ddlOdd          = "create odd"           // `odd "name" here`("key col" key, "order", `Va"lue`)
	ddlAudit        = "create audit"         // audit(id integer key autoincrement, item integer, what text)
	ddlAuditTrigger = "create audit trigger" // an application trigger: every insert into items adds an audit row

	sqlReplaceItem     = "replace item"           // insert-or-replace into items(id, name, qty, code)
	sqlUpdateOrReplace = "update or replace code" // set items.code = ? where id = ?, removing a row that holds the code
	sqlUpsertItem      = "upsert item"            // insert items(id, name, qty), on a key conflict update qty only

	shapeKV1    = "kv phase 1"
	shapeKV2    = "kv phase 2"
	shapeLines1 = "lines phase 1"
	shapeLines2 = "lines phase 2"
	shapeTrack1 = "Track phase 1"
	shapeTrack2 = "Track phase 2"
	shapeOdd1   = "odd phase 1"
	shapeOdd2   = "odd phase 2"
)

// Table names the suite tracks that need quoting in some dialect.
const (
	tableTrack = "Track"
	tableOdd   = `odd "name" here`
)

var dialects = map[string]dialect{
	"sqlite": {
		quote: func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` },
		// quote() stops at a NUL in text and prints -0.0 as 0.0; hex()
		// shows every byte. The sign of a zero is checked on the values
		// the engine reads instead.
		typed: `typeof(%[1]s) || ' ' || quote(%[1]s) || ' ' || hex(%[1]s)`,
		stmts: map[string]string{
			ddlItems:        `CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, code TEXT UNIQUE)`,
			ddlNoKey:        `CREATE TABLE nokey(a INTEGER, b TEXT)`,
			ddlParent:       `CREATE TABLE parent(id INTEGER PRIMARY KEY, name TEXT)`,
			ddlChild:        `CREATE TABLE child(id INTEGER PRIMARY KEY, pid INTEGER NOT NULL REFERENCES parent(id), note TEXT)`,
			ddlVals:         `CREATE TABLE vals(id INTEGER PRIMARY KEY, i INTEGER, r REAL, t TEXT, b BLOB, n NUMERIC, d DATETIME, u)`,
			ddlKV:           `CREATE TABLE kv(k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID`,
			ddlLines:        `CREATE TABLE lines(order_id INTEGER, line INTEGER, sku TEXT, qty INTEGER, PRIMARY KEY(order_id, line))`,
			ddlTrack:        `CREATE TABLE [Track]([TrackId] INTEGER PRIMARY KEY, [Name] TEXT NOT NULL, "order" INTEGER, [Unit Price] NUMERIC(10,2))`,
			ddlOdd:          `CREATE TABLE "odd ""name"" here"("key col" TEXT PRIMARY KEY, "order" INTEGER, "Va""lue" TEXT)`,
			ddlAudit:        `CREATE TABLE audit(id INTEGER PRIMARY KEY AUTOINCREMENT, item INTEGER, what TEXT)`,
			ddlAuditTrigger: `CREATE TRIGGER items_audit AFTER INSERT ON items BEGIN INSERT INTO audit(item, what) VALUES (NEW.id, 'insert'); END`,

			sqlReplaceItem:     `INSERT OR REPLACE INTO items(id, name, qty, code) VALUES (?, ?, ?, ?)`,
			sqlUpdateOrReplace: `UPDATE OR REPLACE items SET code = ? WHERE id = ?`,
			sqlUpsertItem:      `INSERT INTO items(id, name, qty) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET qty = excluded.qty`,

			shapeKV1: `INSERT INTO kv VALUES ('a', 'one'), ('b', 'two'), ('c', NULL);
				UPDATE kv SET v = 'three' WHERE k = 'c';
				DELETE FROM kv WHERE k = 'a'`,
			shapeKV2: `UPDATE kv SET k = 'B' WHERE k = 'b';
				INSERT INTO kv VALUES ('', 'empty key')`,
			shapeLines1: `INSERT INTO lines VALUES (1, 1, 'apple', 3), (1, 2, 'pear', 1), (2, 1, 'apple', 7);
				UPDATE lines SET qty = qty + 1 WHERE order_id = 1;
				DELETE FROM lines WHERE order_id = 1 AND line = 2`,
			shapeLines2: `UPDATE lines SET line = 9 WHERE order_id = 2 AND line = 1;
				INSERT INTO lines VALUES (1, 2, 'plum', 2)`,
			shapeTrack1: `INSERT INTO [Track]([TrackId], [Name], "order", [Unit Price]) VALUES (1, 'For Those About To Rock', 1, 0.99), (2, 'Balls to the Wall', 2, 0.99);
				UPDATE [Track] SET "order" = 5, [Unit Price] = 1.29 WHERE [TrackId] = 2`,
			shapeTrack2: `UPDATE [Track] SET [Name] = 'Fast As a Shark' WHERE [TrackId] = 1;
				DELETE FROM [Track] WHERE [TrackId] = 2;
				INSERT INTO [Track] VALUES (3, 'Restless and Wild', NULL, 0.99)`,
			shapeOdd1: `INSERT INTO "odd ""name"" here" VALUES ('a b', 1, 'x"y'), ('"', 2, 'quote'), ('c', 3, NULL);
				UPDATE "odd ""name"" here" SET "Va""lue" = 'changed' WHERE "key col" = 'c'`,
			shapeOdd2: `DELETE FROM "odd ""name"" here" WHERE "key col" = '"';
				UPDATE "odd ""name"" here" SET "order" = "order" * 10`,
		},
	},
}
