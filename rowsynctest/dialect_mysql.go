package rowsynctest

import (
	"strings"

	"github.com/rowsync/rowsync"
)

// The MySQL/MariaDB dialect. Tables are InnoDB (foreign keys, row locks)
// in the test database's default character set (utf8mb4, whose default
// collation compares case-insensitively: the suite then also checks that
// rowsync tells 'b' from 'B' in keys).
func init() {
	dialects["mysql"] = dialect{
		quote: func(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" },
		// The value's text (numbers as the server renders them, which is
		// exact for DOUBLE) and its bytes in hex; NULL apart. Column types
		// are static in MySQL, so the value alone tells it.
		typed: `IF(%[1]s IS NULL, 'NULL', CONCAT(QUOTE(%[1]s), ' ', HEX(CAST(%[1]s AS BINARY))))`,
		stmts: map[string]string{
			ddlItems:  `CREATE TABLE items(id BIGINT PRIMARY KEY, name VARCHAR(255), qty BIGINT, code VARCHAR(255) UNIQUE) ENGINE=InnoDB`,
			ddlNoKey:  `CREATE TABLE nokey(a BIGINT, b TEXT) ENGINE=InnoDB`,
			ddlParent: `CREATE TABLE parent(id BIGINT PRIMARY KEY, name VARCHAR(255)) ENGINE=InnoDB`,
			ddlChild: `CREATE TABLE child(id BIGINT PRIMARY KEY, pid BIGINT NOT NULL, note TEXT,
				FOREIGN KEY (pid) REFERENCES parent(id)) ENGINE=InnoDB`,
			// n holds 35 integer and 30 fractional digits; u has no
			// untyped counterpart in MySQL and holds text.
			ddlVals: `CREATE TABLE vals(id BIGINT PRIMARY KEY, i BIGINT, r DOUBLE, t LONGTEXT, b LONGBLOB, n DECIMAL(65,30),
				d DATETIME(6), u LONGTEXT) ENGINE=InnoDB`,
			ddlKV:    `CREATE TABLE kv(k VARCHAR(255) PRIMARY KEY, v TEXT) ENGINE=InnoDB`,
			ddlLines: "CREATE TABLE `lines`(" + `order_id BIGINT, line BIGINT, sku VARCHAR(255), qty BIGINT, PRIMARY KEY(order_id, line)) ENGINE=InnoDB`,
			ddlTrack: "CREATE TABLE `Track`(`TrackId` BIGINT PRIMARY KEY, `Name` VARCHAR(200) NOT NULL, `order` BIGINT, `Unit Price` DECIMAL(10,2)) ENGINE=InnoDB",
			ddlOdd:   "CREATE TABLE `odd \"name\" here`(`key col` VARCHAR(255) PRIMARY KEY, `order` BIGINT, `Va\"lue` TEXT) ENGINE=InnoDB",
			ddlAudit: `CREATE TABLE audit(id BIGINT AUTO_INCREMENT PRIMARY KEY, item BIGINT, what TEXT) ENGINE=InnoDB`,
			ddlAuditTrigger: `CREATE TRIGGER items_audit AFTER INSERT ON items FOR EACH ROW
				INSERT INTO audit(item, what) VALUES (NEW.id, 'insert')`,

			sqlReplaceItem: `REPLACE INTO items(id, name, qty, code) VALUES (?, ?, ?, ?)`,
			// sqlUpdateOrReplace has no MySQL form.
			sqlUpsertItem: `INSERT INTO items(id, name, qty) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE qty = VALUES(qty)`,

			shapeKV1: `INSERT INTO kv VALUES ('a', 'one'), ('b', 'two'), ('c', NULL);
				UPDATE kv SET v = 'three' WHERE k = 'c';
				DELETE FROM kv WHERE k = 'a'`,
			// With a case-insensitive collation, 'b' to 'B' is a change
			// of the key that the server sees as the same value.
			shapeKV2: `UPDATE kv SET k = 'B' WHERE k = 'b';
				INSERT INTO kv VALUES ('', 'empty key')`,
			shapeLines1: "INSERT INTO `lines` VALUES (1, 1, 'apple', 3), (1, 2, 'pear', 1), (2, 1, 'apple', 7);\n" +
				"UPDATE `lines` SET qty = qty + 1 WHERE order_id = 1;\n" +
				"DELETE FROM `lines` WHERE order_id = 1 AND line = 2",
			// LINES is a reserved word in MySQL: the table name is quoted.
			shapeLines2: "UPDATE `lines` SET line = 9 WHERE order_id = 2 AND line = 1;\n" +
				"INSERT INTO `lines` VALUES (1, 2, 'plum', 2)",
			shapeTrack1: "INSERT INTO `Track`(`TrackId`, `Name`, `order`, `Unit Price`) VALUES (1, 'For Those About To Rock', 1, 0.99), (2, 'Balls to the Wall', 2, 0.99);\n" +
				"UPDATE `Track` SET `order` = 5, `Unit Price` = 1.29 WHERE `TrackId` = 2",
			shapeTrack2: "UPDATE `Track` SET `Name` = 'Fast As a Shark' WHERE `TrackId` = 1;\n" +
				"DELETE FROM `Track` WHERE `TrackId` = 2;\n" +
				"INSERT INTO `Track` VALUES (3, 'Restless and Wild', NULL, 0.99)",
			shapeOdd1: "INSERT INTO `odd \"name\" here` VALUES ('a b', 1, 'x\"y'), ('\"', 2, 'quote'), ('c', 3, NULL);\n" +
				"UPDATE `odd \"name\" here` SET `Va\"lue` = 'changed' WHERE `key col` = 'c'",
			shapeOdd2: "DELETE FROM `odd \"name\" here` WHERE `key col` = '\"';\n" +
				"UPDATE `odd \"name\" here` SET `order` = `order` * 10",
		},
		skipValues: map[string]string{
			"+Inf": "MySQL's DOUBLE holds no infinity",
			"-Inf": "MySQL's DOUBLE holds no infinity",
			"DATETIME text with zone": "a DATETIME holds no zone, and the server refuses a literal with one " +
				"(rowsync drops the zone of a value it writes; see mysql/DESIGN.md)",
		},
		values: []valueCase{
			{name: "mysql: DECIMAL reads as canonical text", col: "n", lit: `'12.50'`, want: val(rowsync.TextValue("12.5")), only: "mysql"},
			{name: "mysql: DECIMAL integral", col: "n", lit: `2.000`, want: val(rowsync.TextValue("2")), only: "mysql"},
			{name: "mysql: DECIMAL 65 digits", col: "n", lit: `'-12345678901234567890123456789012345.123456789012345678901234567891'`,
				want: val(rowsync.TextValue("-12345678901234567890123456789012345.123456789012345678901234567891")), only: "mysql"},
			{name: "mysql: DECIMAL tiny", col: "n", lit: `0.000000000000000000000000000001`,
				want: val(rowsync.TextValue("0.000000000000000000000000000001")), only: "mysql"},
			{name: "mysql: DATETIME(6) fraction", col: "d", lit: `'2024-02-29 23:59:59.123'`, want: val(rowsync.TextValue("2024-02-29 23:59:59.123")), only: "mysql"},
			{name: "mysql: DATETIME(6) micro", col: "d", lit: `'1999-12-31 00:00:00.000001'`, want: val(rowsync.TextValue("1999-12-31 00:00:00.000001")), only: "mysql"},
			{name: "mysql: DATETIME with T", col: "d", lit: `'2024-02-29T01:02:03'`, want: val(rowsync.TextValue("2024-02-29 01:02:03")), only: "mysql"},
			{name: "mysql: text with backslash and quote", col: "t", v: `a\b'c"d`, want: val(rowsync.TextValue(`a\b'c"d`)), only: "mysql"},
			{name: "mysql: text trailing spaces", col: "t", v: "ab  ", want: val(rowsync.TextValue("ab  ")), only: "mysql"},
			{name: "mysql: blob trailing zero bytes", col: "b", v: []byte("ab\x00\x00"), want: val(rowsync.BlobValue([]byte("ab\x00\x00"))), only: "mysql"},
			{name: "mysql: DOUBLE 1/3", col: "r", v: 1.0 / 3, want: val(rowsync.RealValue(1.0 / 3)), only: "mysql"},
			{name: "mysql: DOUBLE -1e-300", col: "r", v: -1e-300, want: val(rowsync.RealValue(-1e-300)), only: "mysql"},
		},
	}
}
