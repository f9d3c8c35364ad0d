package rowsynctest

import (
	"math"
	"strings"

	"github.com/rowsync/rowsync"
)

// The PostgreSQL dialect: types as an application on PostgreSQL declares
// them (bigint, double precision, bytea, numeric, timestamp), identity
// keys, PL/pgSQL triggers and ON CONFLICT upserts. PostgreSQL has no
// INSERT OR REPLACE or UPDATE OR REPLACE, so the tests of those skip.
func init() {
	pgQuote := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
	dialects["postgres"] = dialect{
		quote: pgQuote,
		// The declared type and the value as its text rendering, quoted:
		// bytea renders as hex, double precision with every digit (and
		// -0). numeric renders without trailing fractional zeros: its
		// display scale (12.500) is not part of the canonical value.
		typed: `pg_typeof(%[1]s)::text || ' ' || coalesce(quote_literal(CASE WHEN pg_typeof(%[1]s) = 'numeric'::regtype
			THEN regexp_replace(regexp_replace(%[1]s::text, '(\.[0-9]*[1-9])0+$', '\1'), '\.0+$', '') ELSE %[1]s::text END), 'NULL')`,
		stmts: map[string]string{
			ddlItems:  `CREATE TABLE items(id bigint PRIMARY KEY, name text, qty bigint, code text UNIQUE)`,
			ddlNoKey:  `CREATE TABLE nokey(a bigint, b text)`,
			ddlParent: `CREATE TABLE parent(id bigint PRIMARY KEY, name text)`,
			ddlChild:  `CREATE TABLE child(id bigint PRIMARY KEY, pid bigint NOT NULL REFERENCES parent(id), note text)`,
			ddlVals:   `CREATE TABLE vals(id bigint PRIMARY KEY, i bigint, r double precision, t text, b bytea, n numeric, d timestamp, u text)`,
			ddlKV:     `CREATE TABLE kv(k text PRIMARY KEY, v text)`,
			ddlLines:  `CREATE TABLE lines(order_id bigint, line bigint, sku text, qty bigint, PRIMARY KEY(order_id, line))`,
			ddlTrack:  `CREATE TABLE "Track"("TrackId" bigint PRIMARY KEY, "Name" text NOT NULL, "order" bigint, "Unit Price" numeric(10,2))`,
			ddlOdd:    `CREATE TABLE "odd ""name"" here"("key col" text PRIMARY KEY, "order" bigint, "Va""lue" text)`,
			ddlAudit:  `CREATE TABLE audit(id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, item bigint, what text)`,
			ddlAuditTrigger: `CREATE FUNCTION items_audit() RETURNS trigger LANGUAGE plpgsql AS $$
				BEGIN INSERT INTO audit(item, what) VALUES (NEW.id, 'insert'); RETURN NULL; END $$;
				CREATE TRIGGER items_audit AFTER INSERT ON items FOR EACH ROW EXECUTE FUNCTION items_audit()`,

			sqlUpsertItem: `INSERT INTO items(id, name, qty) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET qty = excluded.qty`,

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
			shapeTrack1: `INSERT INTO "Track"("TrackId", "Name", "order", "Unit Price") VALUES (1, 'For Those About To Rock', 1, 0.99), (2, 'Balls to the Wall', 2, 0.99);
				UPDATE "Track" SET "order" = 5, "Unit Price" = 1.29 WHERE "TrackId" = 2`,
			shapeTrack2: `UPDATE "Track" SET "Name" = 'Fast As a Shark' WHERE "TrackId" = 1;
				DELETE FROM "Track" WHERE "TrackId" = 2;
				INSERT INTO "Track" VALUES (3, 'Restless and Wild', NULL, 0.99)`,
			shapeOdd1: `INSERT INTO "odd ""name"" here" VALUES ('a b', 1, 'x"y'), ('"', 2, 'quote'), ('c', 3, NULL);
				UPDATE "odd ""name"" here" SET "Va""lue" = 'changed' WHERE "key col" = 'c'`,
			shapeOdd2: `DELETE FROM "odd ""name"" here" WHERE "key col" = '"';
				UPDATE "odd ""name"" here" SET "order" = "order" * 10`,
		},
		skipValues: map[string]string{
			"text with NUL bytes":     "PostgreSQL text cannot hold NUL (0x00) characters",
			"DATETIME text with zone": "a timestamp without time zone column drops the zone on input, so the stored value is not the text written; zones are covered by the timestamptz column of the postgres package's type test",
		},
		values: []valueCase{
			{name: "numeric with 30 digits", col: "n", lit: `'123456789012345678901234567890.123456789'`, want: val(rowsync.TextValue("123456789012345678901234567890.123456789"))},
			{name: "numeric -0", col: "n", lit: `'-0'`, want: val(rowsync.TextValue("0"))},
			{name: "numeric trailing zeros", col: "n", lit: `'12.500'`, want: val(rowsync.TextValue("12.5"))},
			{name: "numeric integral with zeros", col: "n", lit: `'2.00'`, want: val(rowsync.TextValue("2"))},
			{name: "numeric tiny", col: "n", lit: `'0.000000000000000000000000000001'`, want: val(rowsync.TextValue("0.000000000000000000000000000001"))},
			{name: "numeric negative", col: "n", lit: `'-1e-3'`, want: val(rowsync.TextValue("-0.001"))},
			{name: "numeric NaN", col: "n", lit: `'NaN'`, want: val(rowsync.TextValue("NaN"))},
			{name: "numeric Infinity", col: "n", lit: `'-Infinity'`, want: val(rowsync.TextValue("-Infinity"))},
			{name: "timestamp microseconds", col: "d", lit: `'2024-02-29 23:59:59.123450'`, want: val(rowsync.TextValue("2024-02-29 23:59:59.12345"))},
			{name: "timestamp whole seconds", col: "d", lit: `'2024-02-29T23:59:59.000'`, want: val(rowsync.TextValue("2024-02-29 23:59:59"))},
			{name: "timestamp BC", col: "d", lit: `'0044-03-15 12:00:00 BC'`, want: val(rowsync.TextValue("0044-03-15 12:00:00 BC"))},
			{name: "timestamp infinity", col: "d", lit: `'infinity'`, want: val(rowsync.TextValue("infinity"))},
			{name: "double NaN", col: "r", lit: `'NaN'`},
			{name: "double -0 literal", col: "r", lit: `'-0'`, want: val(rowsync.RealValue(math.Copysign(0, -1)))},
			{name: "double from text", col: "r", lit: `'0.1'`, want: val(rowsync.RealValue(0.1))},
			{name: "text with quotes and backslashes", col: "t", v: `it's a "test" \ 'x'`, want: val(rowsync.TextValue(`it's a "test" \ 'x'`))},
			{name: "text of numeric look", col: "u", v: "12", want: val(rowsync.TextValue("12"))},
			{name: "bytea from a literal", col: "b", lit: `'\x00ff10'::bytea`, want: val(rowsync.BlobValue([]byte{0, 0xff, 0x10}))},
		},
	}
	for i := range dialects["postgres"].values {
		dialects["postgres"].values[i].only = "postgres"
	}
}
