package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"text/template"

	"github.com/rowsync/rowsync"
)

//go:embed capture.sql.tmpl
var captureSQL string

var captureTmpl = template.Must(template.New("capture").Parse(captureSQL))

// wallExpr is the wall-clock time in milliseconds, in SQL every SQLite
// version since 3.7 understands (no extension function, so writes from any
// program are captured).
const wallExpr = `CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)`

func logName(id int64) string    { return fmt.Sprintf(`"_rowsync_log_%d"`, id) }
func shadowName(id int64) string { return fmt.Sprintf(`"_rowsync_shadow_%d"`, id) }
func logCol(i int) string        { return fmt.Sprintf("c%d", i) }
func keyCol(i int) string        { return fmt.Sprintf("k%d", i) }
func maskWords(ncols int) int    { return (ncols + 62) / 63 }

var safeType = regexp.MustCompile(`^[A-Za-z0-9_ (),]*$`)

type captureData struct {
	ID                                int64
	Table, Log, Shadow, ShadowIndex   string
	OldShadowIndex                    string
	MaskCols, LogCols, ShadowKeyDefs  []string
	ShadowKey, KeyLogCols, AllLogCols string
	MaskList, MaskExprs               string
	NewKey, OldAll, PlainAll          string
	KeySame, KeyEqNew, KeyEqOld       string
	UniqueNew, WatchCols              string
	Wall                              string
}

func join(parts []string, sep string) string { return strings.Join(parts, sep) }

func newCaptureData(id int64, name string, cols []rowsync.Column, key []string, uniques [][]string) *captureData {
	d := &captureData{ID: id, Table: quote(name), Log: logName(id), Shadow: shadowName(id),
		ShadowIndex: fmt.Sprintf(`"_rowsync_shadow_%d_seqsrc"`, id), OldShadowIndex: fmt.Sprintf(`"_rowsync_shadow_%d_seq"`, id), Wall: wallExpr}
	idx := map[string]int{}
	var allLog, oldAll, plainAll []string
	for i, c := range cols {
		idx[c.Name] = i
		d.LogCols = append(d.LogCols, logCol(i))
		allLog = append(allLog, logCol(i))
		oldAll = append(oldAll, "OLD."+quote(c.Name))
		plainAll = append(plainAll, quote(c.Name))
	}
	d.AllLogCols, d.OldAll, d.PlainAll = join(allLog, ", "), join(oldAll, ", "), join(plainAll, ", ")
	isKey := map[string]bool{}
	var keyLog, newKey, same, eqNew, eqOld, watch, skey []string
	for i, k := range key {
		isKey[k] = true
		typ := cols[idx[k]].Type
		if !safeType.MatchString(typ) {
			typ = ""
		}
		d.ShadowKeyDefs = append(d.ShadowKeyDefs, keyCol(i)+" "+typ)
		skey = append(skey, keyCol(i))
		keyLog = append(keyLog, logCol(idx[k]))
		newKey = append(newKey, "NEW."+quote(k))
		same = append(same, fmt.Sprintf("NEW.%s IS OLD.%s", quote(k), quote(k)))
		eqNew = append(eqNew, fmt.Sprintf("%s IS NEW.%s", quote(k), quote(k)))
		eqOld = append(eqOld, fmt.Sprintf("%s IS OLD.%s", quote(k), quote(k)))
		watch = append(watch, quote(k))
	}
	d.ShadowKey, d.KeyLogCols, d.NewKey = join(skey, ", "), join(keyLog, ", "), join(newKey, ", ")
	d.KeySame, d.KeyEqNew, d.KeyEqOld = join(same, " AND "), join(eqNew, " AND "), join(eqOld, " AND ")
	words := make([][]string, maskWords(len(cols)))
	for i := range words {
		d.MaskCols = append(d.MaskCols, fmt.Sprintf("m%d", i))
	}
	for i, c := range cols {
		if isKey[c.Name] {
			continue
		}
		q := quote(c.Name)
		// A change of storage class alone (integer 1 to real 1.0) is a
		// change too, although IS NOT compares the two as equal.
		words[i/63] = append(words[i/63], fmt.Sprintf("((NEW.%s IS NOT OLD.%s OR typeof(NEW.%s) IS NOT typeof(OLD.%s)) << %d)", q, q, q, q, i%63))
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
	var uq []string
	watched := map[string]bool{}
	for _, k := range key {
		watched[k] = true
	}
	for _, u := range uniques {
		var conds []string
		for _, c := range u {
			conds = append(conds, fmt.Sprintf("%s = NEW.%s", quote(c), quote(c)))
			if !watched[c] {
				watched[c] = true
				watch = append(watch, quote(c))
			}
		}
		uq = append(uq, "("+join(conds, " AND ")+")")
	}
	if len(uq) > 0 {
		d.UniqueNew = "(" + join(uq, " OR ") + ")"
	}
	d.WatchCols = join(watch, ", ")
	return d
}

// uniqueIndexes returns the column lists of a table's UNIQUE indexes other
// than its primary key; indexes on expressions are left out.
func uniqueIndexes(ctx context.Context, q querier, table string) ([][]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT name FROM pragma_index_list(?) WHERE "unique" AND origin <> 'pk'`, table)
	if err != nil {
		return nil, err
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, err
		}
		names = append(names, n)
	}
	rows.Close()
	var out [][]string
	for _, n := range names {
		rows, err := q.QueryContext(ctx, `SELECT cid, name FROM pragma_index_info(?) ORDER BY seqno`, n)
		if err != nil {
			return nil, err
		}
		var cols []string
		expr := false
		for rows.Next() {
			var cid int
			var name sql.NullString
			if err := rows.Scan(&cid, &name); err != nil {
				rows.Close()
				return nil, err
			}
			if cid < 0 || !name.Valid {
				expr = true
			}
			cols = append(cols, name.String)
		}
		rows.Close()
		if !expr && len(cols) > 0 {
			out = append(out, cols)
		}
	}
	return out, nil
}

// Install implements rowsync.Database.
func (d *DB) Install(ctx context.Context, tables []string) error {
	conn, err := d.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	err = d.install(ctx, conn, tables)
	if err != nil {
		conn.ExecContext(context.Background(), "ROLLBACK")
		return err
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("install: commit: %w", err)
	}
	return nil
}

func (d *DB) install(ctx context.Context, conn *sql.Conn, tables []string) error {
	if _, err := conn.ExecContext(ctx, metaDDL); err != nil {
		return fmt.Errorf("install bookkeeping tables: %w", err)
	}
	reg, err := readRegistry(ctx, conn)
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
		// Resolve the name as SQLite does (case-insensitively).
		var real string
		err := conn.QueryRowContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'table' AND name = ? COLLATE NOCASE`, n).Scan(&real)
		if err == sql.ErrNoRows {
			return fmt.Errorf("%w: table %q does not exist in %s", rowsync.ErrUnknownTable, n, d.path)
		}
		if err != nil {
			return err
		}
		if strings.HasPrefix(real, "_rowsync_") || strings.HasPrefix(strings.ToLower(real), "sqlite_") {
			return fmt.Errorf("table %q is internal and cannot be tracked", real)
		}
		if !want[real] {
			want[real] = true
			order = append(order, real)
		}
	}
	// Re-install every table already tracked too, so that an upgrade of the
	// capture templates reaches them.
	for _, r := range reg {
		if !want[r.name] {
			want[r.name] = true
			order = append(order, r.name)
		}
	}
	for _, name := range order {
		live, _, err := introspect(ctx, conn, name)
		if err != nil {
			return err
		}
		key := keyOf(live)
		if len(key) == 0 {
			return rowsync.NoPrimaryKeyError(name)
		}
		var cols []rowsync.Column
		r, known := byName[name]
		if known {
			// Columns added since: append, keeping stored positions.
			cols = append(cols, r.cols...)
			have := map[string]bool{}
			for _, c := range cols {
				have[c.Name] = true
			}
			lm := map[string]bool{}
			for _, c := range live {
				lm[c.Name] = true
				if !have[c.Name] {
					cols = append(cols, c.Column)
				}
			}
			for _, c := range r.cols {
				if !lm[c.Name] {
					return fmt.Errorf("tracked table %q: column %q was dropped or renamed since rowsync init; schema changes are not supported", name, c.Name)
				}
			}
			if strings.Join(key, ",") != strings.Join(r.key, ",") {
				return fmt.Errorf("tracked table %q: primary key changed since rowsync init; schema changes are not supported", name)
			}
		} else {
			for _, c := range live {
				cols = append(cols, c.Column)
			}
		}
		cj, _ := json.Marshal(cols)
		kj, _ := json.Marshal(key)
		var id int64
		if known {
			id = r.id
			if _, err := conn.ExecContext(ctx, `UPDATE _rowsync_tables SET columns = ? WHERE id = ?`, string(cj), id); err != nil {
				return err
			}
			if len(cols) > len(r.cols) {
				if err := extendLog(ctx, conn, id, len(r.cols), len(cols)); err != nil {
					return err
				}
			}
		} else {
			res, err := conn.ExecContext(ctx, `INSERT INTO _rowsync_tables(name, columns, key) VALUES (?, ?, ?)`, name, string(cj), string(kj))
			if err != nil {
				return err
			}
			if id, err = res.LastInsertId(); err != nil {
				return err
			}
		}
		uniques, err := uniqueIndexes(ctx, conn, name)
		if err != nil {
			return fmt.Errorf("inspect unique indexes of %q: %w", name, err)
		}
		data := newCaptureData(id, name, cols, key, uniques)
		var buf bytes.Buffer
		if err := captureTmpl.Execute(&buf, data); err != nil {
			return err
		}
		if _, err := conn.ExecContext(ctx, buf.String()); err != nil {
			return fmt.Errorf("install capture on %q: %w", name, err)
		}
		// Rows present before tracking are logged as inserts, so the
		// engine gives them an initial version; rows already logged (by an
		// earlier Install not folded yet) are not logged twice.
		var match, logMatch, plainKey []string
		for i, k := range key {
			match = append(match, fmt.Sprintf("s.%s IS b.%s", keyCol(i), quote(k)))
			for ci, c := range cols {
				if c.Name == k {
					logMatch = append(logMatch, fmt.Sprintf("l.%s IS b.%s", logCol(ci), quote(k)))
				}
			}
			plainKey = append(plainKey, "b."+quote(k))
		}
		backfill := fmt.Sprintf(`INSERT INTO %s(op, wall, %s) SELECT 1, %s, %s FROM %s AS b WHERE NOT EXISTS (SELECT 1 FROM %s AS s WHERE %s)
			AND NOT EXISTS (SELECT 1 FROM %s AS l WHERE %s)`,
			data.Log, data.KeyLogCols, wallExpr, join(plainKey, ", "), data.Table, data.Shadow, join(match, " AND "),
			data.Log, join(logMatch, " AND "))
		if _, err := conn.ExecContext(ctx, backfill); err != nil {
			return fmt.Errorf("track existing rows of %q: %w", name, err)
		}
	}
	return nil
}

// extendLog adds log columns for columns appended to a tracked table.
func extendLog(ctx context.Context, conn *sql.Conn, id int64, from, to int) error {
	for i := from; i < to; i++ {
		if _, err := conn.ExecContext(ctx, fmt.Sprintf(`ALTER TABLE %s ADD COLUMN %s`, logName(id), logCol(i))); err != nil {
			return err
		}
	}
	for w := maskWords(from); w < maskWords(to); w++ {
		if _, err := conn.ExecContext(ctx, fmt.Sprintf(`ALTER TABLE %s ADD COLUMN m%d INTEGER`, logName(id), w)); err != nil {
			return err
		}
	}
	return nil
}
