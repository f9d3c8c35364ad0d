package mysql

import (
	"bytes"
	"context"
	"database/sql"
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"
	"text/template"

	"github.com/rowsync/rowsync"
)

//go:embed capture.sql.tmpl
var captureSQL string

var captureTmpl = template.Must(template.New("capture").Parse(captureSQL))

// wallExpr is the wall-clock time in milliseconds. UTC_TIMESTAMP does not
// depend on the session time zone of the application that writes, and the
// server keeps it fixed for one statement.
const wallExpr = `(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) DIV 1000)`

// echoExpr marks a captured write made while rowsync applies a peer's rows
// on this session (BeginApply sets the variable to a token of its own).
const echoExpr = `IFNULL(@rowsync_applying, 0)`

// sideEchoExpr marks what the cascade triggers log while rowsync applies
// a peer's rows: the rows a foreign-key action of the engine's write
// changes. They are side effects, not echoes: EndApply keeps them (also
// when the engine wrote the same row earlier in the batch) and the fold
// sees them as LogEntry.Applied.
const sideEchoExpr = `-IFNULL(@rowsync_applying, 0)`

func logName(id int64) string    { return fmt.Sprintf("`_rowsync_log_%d`", id) }
func shadowName(id int64) string { return fmt.Sprintf("`_rowsync_shadow_%d`", id) }
func logCol(i int) string        { return fmt.Sprintf("c%d", i) }
func keyCol(i int) string        { return fmt.Sprintf("k%d", i) }
func maskWords(ncols int) int    { return (ncols + 62) / 63 }

type captureData struct {
	ID                                      int64
	Table, Log, Shadow, Options, Wall, Echo string
	MaskCols, LogColDefs, ShadowKeyDefs     []string
	ShadowKey, KeyLogCols, AllLogCols       string
	MaskList, MaskExprs, NewKey, OldAll     string
	KeySame                                 string
}

func join(parts []string, sep string) string { return strings.Join(parts, sep) }

// binaryOf is an expression for the bytes of a string value, to compare
// values exactly whatever the collation (case, accents, trailing spaces).
func binaryOf(expr string) string { return "CAST(" + expr + " AS BINARY)" }

// stringDef is the character set and collation clause of a string column.
func stringDef(c liveColumn) string {
	if c.charset == "" || c.charset == "binary" {
		return ""
	}
	s := " CHARACTER SET " + c.charset
	if c.collate != "" {
		s += " COLLATE " + c.collate
	}
	return s
}

// keyLogDef is the definition of the log column of a key column: the
// column's own type and collation, so keys read back exactly as the
// table's.
func keyLogDef(c liveColumn) string {
	return c.Type + stringDef(c) + " NULL DEFAULT NULL"
}

// shadowKeyDef is the definition of a shadow key column. A string key is
// stored as its bytes (VARBINARY), so that keys differing only in case or
// trailing spaces, which a collation may take for one, stay two rows.
func shadowKeyDef(i int, c liveColumn) string {
	ci := newColInfo(c.Name, c.Type, c.charset)
	switch {
	case ci.collated():
		n := c.octets
		if n <= 0 || n > 3072 {
			n = 3072
		}
		return fmt.Sprintf("%s VARBINARY(%d) NOT NULL", keyCol(i), n)
	case ci.kind == kTimestamp:
		// An explicit default keeps MySQL from giving the column
		// ON UPDATE CURRENT_TIMESTAMP when explicit_defaults_for_timestamp
		// is off.
		return keyCol(i) + " " + c.Type + " NOT NULL DEFAULT '1970-01-01 00:00:01'"
	}
	return keyCol(i) + " " + c.Type + stringDef(c) + " NOT NULL"
}

func newCaptureData(id int64, name string, cols []liveColumn, key []string) *captureData {
	d := &captureData{ID: id, Table: quote(name), Log: logName(id), Shadow: shadowName(id), Options: tableOptions,
		Wall: wallExpr, Echo: echoExpr}
	idx := map[string]int{}
	isKey := map[string]bool{}
	for _, k := range key {
		isKey[k] = true
	}
	var allLog, oldAll []string
	for i, c := range cols {
		idx[c.Name] = i
		if isKey[c.Name] {
			d.LogColDefs = append(d.LogColDefs, logCol(i)+" "+keyLogDef(c))
		} else {
			ci := newColInfo(c.Name, c.Type, c.charset)
			d.LogColDefs = append(d.LogColDefs, logCol(i)+" "+ci.logType()+" NULL DEFAULT NULL")
		}
		allLog = append(allLog, logCol(i))
		oldAll = append(oldAll, "OLD."+quote(c.Name))
	}
	d.AllLogCols, d.OldAll = join(allLog, ", "), join(oldAll, ", ")
	var keyLog, newKey, same, skey []string
	for i, k := range key {
		c := cols[idx[k]]
		d.ShadowKeyDefs = append(d.ShadowKeyDefs, shadowKeyDef(i, c))
		skey = append(skey, keyCol(i))
		keyLog = append(keyLog, logCol(idx[k]))
		newKey = append(newKey, "NEW."+quote(k))
		o, n := "OLD."+quote(k), "NEW."+quote(k)
		if ci := newColInfo(c.Name, c.Type, c.charset); ci.collated() {
			o, n = binaryOf(o), binaryOf(n)
		}
		same = append(same, o+" <=> "+n)
	}
	d.ShadowKey, d.KeyLogCols, d.NewKey = join(skey, ", "), join(keyLog, ", "), join(newKey, ", ")
	d.KeySame = join(same, " AND ")
	words := make([][]string, maskWords(len(cols)))
	for i := range words {
		d.MaskCols = append(d.MaskCols, fmt.Sprintf("m%d", i))
	}
	for i, c := range cols {
		if isKey[c.Name] {
			continue
		}
		o, n := "OLD."+quote(c.Name), "NEW."+quote(c.Name)
		ci := newColInfo(c.Name, c.Type, c.charset)
		switch {
		case ci.collated():
			// A change of case only is a change, though the collation
			// may compare the two as equal.
			o, n = binaryOf(o), binaryOf(n)
		case ci.kind == kJSON:
			o, n = binaryOf("CAST("+o+" AS CHAR)"), binaryOf("CAST("+n+" AS CHAR)")
		}
		words[i/63] = append(words[i/63], fmt.Sprintf("((NOT (%s <=> %s)) << %d)", o, n, i%63))
	}
	var exprs []string
	for _, w := range words {
		if len(w) == 0 {
			exprs = append(exprs, "0")
		} else {
			exprs = append(exprs, join(w, " | "))
		}
	}
	d.MaskList, d.MaskExprs = join(d.MaskCols, ", "), join(exprs, ", ")
	return d
}

// statements splits the rendered template into its statements.
func statements(sqlText string) []string {
	var out []string
	for _, s := range strings.Split(sqlText, "\n;;\n") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Install implements rowsync.Database. MySQL commits DDL implicitly, so
// Install cannot be one transaction: it checks every table first, then
// changes them one by one in an order that is safe to repeat (bookkeeping
// tables, registry row, log and shadow tables, triggers under LOCK TABLES,
// backfill). A named lock keeps two Installs on one database apart.
func (d *DB) Install(ctx context.Context, tables []string) error {
	conn, err := d.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("install on %s: %w", d.addr, err)
	}
	defer conn.Close()
	const lockName = `CONCAT('rowsync_install:', LEFT(SHA2(DATABASE(), 256), 40))`
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, `SELECT GET_LOCK(`+lockName+`, 300)`).Scan(&got); err != nil {
		return fmt.Errorf("install on %s: %w", d.addr, err)
	}
	if got.Int64 != 1 {
		return fmt.Errorf("install on %s: another rowsync init on this database did not finish within 5 minutes", d.addr)
	}
	defer conn.ExecContext(context.Background(), `DO RELEASE_LOCK(`+lockName+`)`)
	return d.install(ctx, conn, tables)
}

type installPlan struct {
	name   string
	live   []liveColumn
	key    []string
	cols   []rowsync.Column // registered columns, in registered order
	reg    *registered      // nil when not tracked yet
	byName map[string]liveColumn
}

func (d *DB) install(ctx context.Context, conn *sql.Conn, tables []string) error {
	for _, q := range metaDDL {
		if strings.HasPrefix(q, "CREATE TABLE") {
			q += tableOptions
		}
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("install bookkeeping tables in %s: %w", d.addr, err)
		}
	}
	reg, err := readRegistry(ctx, conn)
	if err != nil {
		return err
	}
	all, err := baseTables(ctx, conn)
	if err != nil {
		return err
	}
	byName := map[string]registered{}
	for _, r := range reg {
		byName[r.name] = r
	}
	want := map[string]bool{}
	var order []string
	for _, n := range tables {
		real, err := resolveTable(all, n)
		if err != nil {
			return fmt.Errorf("%w in %s", err, d.addr)
		}
		if isInternal(real) {
			return fmt.Errorf("table %q is rowsync's own and cannot be tracked", real)
		}
		if !want[real] {
			want[real] = true
			order = append(order, real)
		}
	}
	// Re-install every table already tracked too, so that an upgrade of the
	// capture template reaches them.
	for _, r := range reg {
		if !want[r.name] {
			want[r.name] = true
			order = append(order, r.name)
		}
	}
	// Check every table before changing anything: DDL cannot be rolled back.
	var plans []*installPlan
	for _, name := range order {
		live, key, _, err := d.introspect(ctx, conn, name)
		if err != nil {
			return err
		}
		if len(live) == 0 {
			return fmt.Errorf("tracked table %q no longer exists in %s", name, d.addr)
		}
		if len(key) == 0 {
			return rowsync.NoPrimaryKeyError(name)
		}
		p := &installPlan{name: name, live: live, key: key, byName: map[string]liveColumn{}}
		for _, c := range live {
			p.byName[c.Name] = c
		}
		if r, known := byName[name]; known {
			p.reg = &r
			// Columns added since: appended, keeping stored positions.
			for _, c := range r.cols {
				l, ok := p.byName[c.Name]
				if !ok {
					return fmt.Errorf("tracked table %q: column %q was dropped or renamed since rowsync init; schema changes are not supported", name, c.Name)
				}
				if l.Class != c.Class {
					return fmt.Errorf("tracked table %q: column %q changed type class (%s, was %s) since rowsync init; schema changes are not supported", name, c.Name, l.Class, c.Class)
				}
				p.cols = append(p.cols, l.Column)
			}
			have := map[string]bool{}
			for _, c := range r.cols {
				have[c.Name] = true
			}
			for _, c := range live {
				if !have[c.Name] {
					p.cols = append(p.cols, c.Column)
				}
			}
			if strings.Join(key, ",") != strings.Join(r.key, ",") {
				return fmt.Errorf("tracked table %q: primary key changed since rowsync init; schema changes are not supported", name)
			}
		} else {
			for _, c := range live {
				p.cols = append(p.cols, c.Column)
			}
		}
		plans = append(plans, p)
	}
	for _, p := range plans {
		if err := d.installTable(ctx, conn, p); err != nil {
			return err
		}
	}
	// MySQL fires no triggers for the rows foreign-key actions change:
	// capture them from the parents, and say what cannot be.
	warnings, err := installCascades(ctx, conn)
	if err != nil {
		return err
	}
	for _, w := range warnings {
		d.Logger.Warn(w, "db", d.addr)
	}
	return nil
}

// baseTables lists the base tables of the database.
func baseTables(ctx context.Context, q querier) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'`)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// resolveTable finds a table by its exact name, or else by the only name
// that matches it regardless of case (the server itself compares table
// names by lower_case_table_names).
func resolveTable(all []string, n string) (string, error) {
	var folded []string
	for _, t := range all {
		if t == n {
			return t, nil
		}
		if strings.EqualFold(t, n) {
			folded = append(folded, t)
		}
	}
	switch len(folded) {
	case 1:
		return folded[0], nil
	case 0:
		return "", fmt.Errorf("%w: table %q does not exist", rowsync.ErrUnknownTable, n)
	}
	return "", fmt.Errorf("%w: table name %q is ambiguous: %s", rowsync.ErrUnknownTable, n, strings.Join(folded, ", "))
}

func (d *DB) installTable(ctx context.Context, conn *sql.Conn, p *installPlan) error {
	cj, _ := json.Marshal(p.cols)
	kj, _ := json.Marshal(p.key)
	var id int64
	if p.reg != nil {
		id = p.reg.id
		if _, err := conn.ExecContext(ctx, `UPDATE _rowsync_tables SET cols = ? WHERE id = ?`, string(cj), id); err != nil {
			return fmt.Errorf("register %q: %w", p.name, err)
		}
	} else {
		res, err := conn.ExecContext(ctx, `INSERT INTO _rowsync_tables(name, cols, pkey) VALUES (?, ?, ?)`, p.name, string(cj), string(kj))
		if err != nil {
			return fmt.Errorf("register %q: %w", p.name, err)
		}
		if id, err = res.LastInsertId(); err != nil {
			return err
		}
	}
	cols := make([]liveColumn, len(p.cols))
	for i, c := range p.cols {
		cols[i] = p.byName[c.Name]
	}
	data := newCaptureData(id, p.name, cols, p.key)
	if p.reg != nil {
		if err := d.upgradeLog(ctx, conn, p, data); err != nil {
			return err
		}
	}
	var buf bytes.Buffer
	if err := captureTmpl.Execute(&buf, data); err != nil {
		return err
	}
	locked := false
	for _, q := range statements(buf.String()) {
		if strings.Contains(q, "LOCK TABLES") && !strings.Contains(q, "UNLOCK TABLES") {
			locked = true
		}
		if _, err := conn.ExecContext(ctx, q); err != nil {
			if locked {
				conn.ExecContext(context.Background(), "UNLOCK TABLES")
			}
			return fmt.Errorf("install capture on %q: %w", p.name, err)
		}
		if strings.Contains(q, "UNLOCK TABLES") {
			locked = false
		}
	}
	// Rows present before tracking are logged as inserts, so the engine
	// gives them an initial version; rows already logged (by an earlier
	// Install not folded yet) are not logged twice.
	var match, logMatch, plainKey, keyLog []string
	for i, k := range p.key {
		c := p.byName[k]
		b := "b." + quote(k)
		ci := newColInfo(c.Name, c.Type, c.charset)
		for ci2, rc := range p.cols {
			if rc.Name == k {
				l := "l." + logCol(ci2)
				if ci.collated() {
					logMatch = append(logMatch, binaryOf(l)+" = "+binaryOf(b))
				} else {
					logMatch = append(logMatch, l+" <=> "+b)
				}
				keyLog = append(keyLog, logCol(ci2))
			}
		}
		if ci.collated() {
			match = append(match, "s."+keyCol(i)+" = "+binaryOf(b))
		} else {
			match = append(match, "s."+keyCol(i)+" <=> "+b)
		}
		plainKey = append(plainKey, b)
	}
	backfill := fmt.Sprintf(`INSERT INTO %s(op, wall, echo, %s) SELECT 1, %s, 0, %s FROM %s AS b
		WHERE NOT EXISTS (SELECT 1 FROM %s AS s WHERE %s) AND NOT EXISTS (SELECT 1 FROM %s AS l WHERE %s)`,
		data.Log, join(keyLog, ", "), wallExpr, join(plainKey, ", "), data.Table,
		data.Shadow, join(match, " AND "), data.Log, join(logMatch, " AND "))
	if _, err := conn.ExecContext(ctx, backfill); err != nil {
		return fmt.Errorf("track existing rows of %q: %w", p.name, err)
	}
	return nil
}

// upgradeLog brings the log and shadow tables of a table tracked before in
// line with its columns now: log columns for columns added since, and new
// types for columns whose declared type changed within its class.
func (d *DB) upgradeLog(ctx context.Context, conn *sql.Conn, p *installPlan, data *captureData) error {
	old := p.reg.cols
	var alters []string
	for i := len(old); i < len(p.cols); i++ {
		alters = append(alters, "ADD COLUMN "+data.LogColDefs[i])
	}
	for w := maskWords(len(old)); w < maskWords(len(p.cols)); w++ {
		alters = append(alters, fmt.Sprintf("ADD COLUMN m%d BIGINT NULL DEFAULT NULL", w))
	}
	keyIdx := map[string]int{}
	for i, k := range p.key {
		keyIdx[k] = i
	}
	var shadowAlters []string
	for i := 0; i < len(old) && i < len(p.cols); i++ {
		if old[i].Type == p.cols[i].Type {
			continue
		}
		alters = append(alters, "MODIFY COLUMN "+data.LogColDefs[i])
		if k, ok := keyIdx[p.cols[i].Name]; ok {
			shadowAlters = append(shadowAlters, "MODIFY COLUMN "+data.ShadowKeyDefs[k])
		}
	}
	if len(alters) > 0 {
		if _, err := conn.ExecContext(ctx, fmt.Sprintf("ALTER TABLE %s %s", data.Log, join(alters, ", "))); err != nil {
			return fmt.Errorf("upgrade capture log of %q: %w", p.name, err)
		}
	}
	if len(shadowAlters) > 0 {
		if _, err := conn.ExecContext(ctx, fmt.Sprintf("ALTER TABLE %s %s", data.Shadow, join(shadowAlters, ", "))); err != nil {
			return fmt.Errorf("upgrade bookkeeping of %q: %w", p.name, err)
		}
	}
	return nil
}
