package postgres

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/template"

	"github.com/jackc/pgx/v5"

	"github.com/rowsync/rowsync"
)

//go:embed capture.sql.tmpl
var captureSQL string

var captureTmpl = template.Must(template.New("capture").Parse(captureSQL))

// wallExpr is the wall-clock time in milliseconds. clock_timestamp() is
// the real time (now() would be the transaction's start for every
// statement of a long transaction).
const wallExpr = `floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint`

// echoExpr is true while rowsync applies a peer's rows in the current
// transaction.
const echoExpr = `coalesce(current_setting('rowsync.applying', true) = 'on', false)`

func logName(id int64) string    { return fmt.Sprintf("_rowsync_log_%d", id) }
func shadowName(id int64) string { return fmt.Sprintf("_rowsync_shadow_%d", id) }
func logCol(i int) string        { return fmt.Sprintf("c%d", i) }
func keyCol(i int) string        { return fmt.Sprintf("k%d", i) }
func arrCol(i int) string        { return fmt.Sprintf("a%d", i) }

// arrayLog reports whether a table's log can hold keys in arrays: unless a
// key column is itself an array (an array of arrays is not a type).
func arrayLog(cols []colInfo, key []string) bool {
	for _, k := range key {
		for _, c := range cols {
			if c.name == k && strings.HasPrefix(c.base, "_") {
				return false
			}
		}
	}
	return true
}
func maskWords(ncols int) int { return (ncols + 62) / 63 }

type captureData struct {
	ID                                  int64
	Table, Log, Shadow, ShadowIndex     string
	Fn, Trg, Wall, Echo                 string
	MaskCols, LogColDefs, ShadowKeyDefs []string
	ShadowKey, KeyLogCols, AllLogCols   string
	NKey, NKeyAs, OAll, KeyJoin, XKeys  string
	MaskList, MaskExprs, XMasks         string
	MaskNonZero                         string
	// Key arrays of the log (empty when a key column is itself an array):
	// their definitions, names, and array_agg of the key columns.
	ArrayColDefs         []string
	ArrayCols, ArrayAggs string
	ArrayRows            int
}

func join(parts []string, sep string) string { return strings.Join(parts, sep) }

// newCaptureData fills the capture template for a table. textCompare
// names the columns whose type has no equality operator (json, xml,
// point): their change test compares the text renderings.
func (d *DB) newCaptureData(id int64, name string, cols []colInfo, key []string, textCompare map[string]bool) *captureData {
	qs := quote(d.schema) + "."
	c := &captureData{ID: id, Table: d.table(name), Log: qs + logName(id), Shadow: qs + shadowName(id),
		ShadowIndex: shadowName(id) + "_seq", Fn: qs + fmt.Sprintf("_rowsync_%d", id), Trg: fmt.Sprintf("_rowsync_%d", id),
		Wall: wallExpr, Echo: echoExpr}
	idx := map[string]int{}
	var allLog, oAll []string
	for i, col := range cols {
		idx[col.name] = i
		c.LogColDefs = append(c.LogColDefs, logCol(i)+" "+col.logType)
		allLog = append(allLog, logCol(i))
		oAll = append(oAll, "o."+quote(col.name))
	}
	c.AllLogCols, c.OAll = join(allLog, ", "), join(oAll, ", ")
	isKey := map[string]bool{}
	var keyLog, nKey, nKeyAs, xKeys, on, skey []string
	for i, k := range key {
		isKey[k] = true
		col := cols[idx[k]]
		c.ShadowKeyDefs = append(c.ShadowKeyDefs, keyCol(i)+" "+col.logType)
		skey = append(skey, keyCol(i))
		keyLog = append(keyLog, logCol(idx[k]))
		nKey = append(nKey, "n."+quote(k))
		nKeyAs = append(nKeyAs, fmt.Sprintf("n.%s AS %s", quote(k), keyCol(i)))
		xKeys = append(xKeys, "x."+keyCol(i))
		on = append(on, fmt.Sprintf("o.%s = n.%s", quote(k), quote(k)))
	}
	c.ShadowKey, c.KeyLogCols, c.NKey, c.NKeyAs = join(skey, ", "), join(keyLog, ", "), join(nKey, ", "), join(nKeyAs, ", ")
	c.ArrayRows = logRows
	if arrayLog(cols, key) {
		var names, aggs []string
		for i, k := range key {
			c.ArrayColDefs = append(c.ArrayColDefs, fmt.Sprintf("%s %s[]", arrCol(i), cols[idx[k]].logType))
			names = append(names, arrCol(i))
			aggs = append(aggs, fmt.Sprintf("array_agg(x.%s)", keyCol(i)))
		}
		c.ArrayCols, c.ArrayAggs = join(names, ", "), join(aggs, ", ")
	}
	c.XKeys, c.KeyJoin = join(xKeys, ", "), join(on, " AND ")
	words := make([][]string, maskWords(len(cols)))
	hasCols := false
	for i, col := range cols {
		if isKey[col.name] {
			continue
		}
		hasCols = true
		q := quote(col.name)
		test := fmt.Sprintf("n.%s IS DISTINCT FROM o.%s", q, q)
		if textCompare[col.name] {
			test = fmt.Sprintf("n.%s::text IS DISTINCT FROM o.%s::text", q, q)
		}
		words[i/63] = append(words[i/63], fmt.Sprintf("CASE WHEN %s THEN %d::bigint ELSE 0 END", test, int64(1)<<(uint(i)%63)))
	}
	var exprs, xm, nz []string
	for i, w := range words {
		m := fmt.Sprintf("m%d", i)
		c.MaskCols = append(c.MaskCols, m)
		e := "0::bigint"
		if len(w) > 0 {
			e = join(w, " + ")
		}
		exprs = append(exprs, e+" AS "+m)
		xm = append(xm, "x."+m)
		nz = append(nz, "x."+m+" <> 0")
	}
	c.MaskList = join(c.MaskCols, ", ")
	if hasCols {
		c.MaskExprs, c.XMasks, c.MaskNonZero = join(exprs, ", "), join(xm, ", "), join(nz, " OR ")
	}
	return c
}

// Install implements rowsync.Database. It runs in one transaction that
// holds the node's writer lock, so concurrent installs (two rowsync
// processes) run one after the other.
func (d *DB) Install(ctx context.Context, tables []string) error {
	tx, err := d.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return fmt.Errorf("install on %s: %w", d.addr, err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(`+lockKey+`)`, d.schema); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	if err := d.install(ctx, tx, tables); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("install: commit: %w", err)
	}
	return nil
}

// resolve finds a table of the schema by name: exactly, or else ignoring
// case if that matches one table (as SQLite resolves names, so the same
// table list works on every node).
func (d *DB) resolve(ctx context.Context, tx pgx.Tx, name string) (string, error) {
	rows, err := tx.Query(ctx, `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND lower(c.relname) = lower($2)
		ORDER BY c.relname = $2 DESC, c.relname`, d.schema, name)
	if err != nil {
		return "", err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return "", err
	}
	switch {
	case len(names) == 0:
		return "", fmt.Errorf("%w: table %q does not exist in schema %q of %s", rowsync.ErrUnknownTable, name, d.schema, d.addr)
	case names[0] == name || len(names) == 1:
		return names[0], nil
	}
	return "", fmt.Errorf("table name %q matches several tables ignoring case (%s): give the exact name", name, strings.Join(names, ", "))
}

func (d *DB) install(ctx context.Context, tx pgx.Tx, tables []string) error {
	if _, err := tx.Exec(ctx, metaDDL); err != nil {
		return fmt.Errorf("install bookkeeping tables: %w", err)
	}
	reg, err := readRegistry(ctx, tx)
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
		real, err := d.resolve(ctx, tx, n)
		if err != nil {
			return err
		}
		if strings.HasPrefix(real, "_rowsync_") {
			return fmt.Errorf("table %q is internal and cannot be tracked", real)
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
	for _, name := range order {
		if err := d.installTable(ctx, tx, name, byName); err != nil {
			return err
		}
	}
	return nil
}

func (d *DB) installTable(ctx context.Context, tx pgx.Tx, name string, byName map[string]registered) error {
	live, key, _, err := d.introspect(ctx, tx, name)
	if err != nil {
		return err
	}
	if len(live) == 0 {
		return fmt.Errorf("%w: tracked table %q no longer exists", rowsync.ErrUnknownTable, name)
	}
	if len(key) == 0 {
		return rowsync.NoPrimaryKeyError(name)
	}
	infoByName := map[string]colInfo{}
	for _, c := range live {
		infoByName[c.Name] = c.info
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
		for _, c := range live {
			if !have[c.Name] {
				cols = append(cols, c.Column)
			}
		}
		for _, c := range r.cols {
			l, ok := infoByName[c.Name]
			if !ok {
				return fmt.Errorf("tracked table %q: column %q was dropped or renamed since rowsync init; schema changes are not supported", name, c.Name)
			}
			if l.class != c.Class {
				return fmt.Errorf("tracked table %q: column %q changed type since rowsync init; schema changes are not supported", name, c.Name)
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
		if _, err := tx.Exec(ctx, `UPDATE _rowsync_tables SET columns = $1 WHERE id = $2`, string(cj), id); err != nil {
			return fmt.Errorf("register %q: %w", name, err)
		}
	} else {
		if err := tx.QueryRow(ctx, `INSERT INTO _rowsync_tables(name, columns, key) VALUES ($1, $2, $3) RETURNING id`,
			name, string(cj), string(kj)).Scan(&id); err != nil {
			return fmt.Errorf("register %q: %w", name, err)
		}
	}
	infos := make([]colInfo, len(cols))
	textCompare := map[string]bool{}
	for i, c := range cols {
		infos[i] = infoByName[c.Name]
		eq, err := hasEquality(ctx, tx, infos[i].cast)
		if err != nil {
			return fmt.Errorf("install capture on %q: column %q: %w", name, c.Name, err)
		}
		textCompare[c.Name] = !eq
	}
	if known && len(cols) > len(r.cols) {
		if err := extendLog(ctx, tx, id, infos, len(r.cols)); err != nil {
			return fmt.Errorf("install capture on %q: %w", name, err)
		}
	}
	data := d.newCaptureData(id, name, infos, key, textCompare)
	var buf bytes.Buffer
	if err := captureTmpl.Execute(&buf, data); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, buf.String()); err != nil {
		return fmt.Errorf("install capture on %q: %w", name, err)
	}
	t, err := rowsync.NewTable(id, name, cols, key, nil)
	if err != nil {
		return err
	}
	ti := d.remember(t, live, data.ArrayCols != "")
	// Rows present before tracking are logged as inserts, so the engine
	// gives them an initial version; rows already logged (by an earlier
	// Install not folded yet) are not logged twice.
	v := ti.logView(t)
	var match, logMatch, plainKey []string
	for i, k := range key {
		match = append(match, fmt.Sprintf("s.%s = b.%s", keyCol(i), quote(k)))
		logMatch = append(logMatch, fmt.Sprintf("%s = b.%s", v.key[i], quote(k)))
		plainKey = append(plainKey, "b."+quote(k))
	}
	backfill := fmt.Sprintf(`INSERT INTO %s(op, wall, %s) SELECT 1, %s, %s FROM %s AS b
		WHERE NOT EXISTS (SELECT 1 FROM %s AS s WHERE %s) AND NOT EXISTS (SELECT 1 FROM %s WHERE %s)`,
		data.Log, data.KeyLogCols, wallExpr, join(plainKey, ", "), data.Table, data.Shadow, join(match, " AND "),
		v.from, join(logMatch, " AND "))
	if _, err := tx.Exec(ctx, backfill); err != nil {
		return fmt.Errorf("track existing rows of %q: %w", name, err)
	}
	return nil
}

// hasEquality reports whether a type has an equality operator that IS
// DISTINCT FROM can use, by asking the parser (inside a savepoint, since a
// failed statement aborts the transaction).
func hasEquality(ctx context.Context, tx pgx.Tx, typ string) (bool, error) {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return false, err
	}
	_, err = sp.Exec(ctx, fmt.Sprintf(`SELECT NULL::%s IS DISTINCT FROM NULL::%s`, typ, typ))
	if err != nil {
		if rerr := sp.Rollback(ctx); rerr != nil {
			return false, rerr
		}
		if sqlState(err) == "42883" { // undefined_function: no = operator
			return false, nil
		}
		return false, err
	}
	return true, sp.Commit(ctx)
}

// extendLog adds log columns (and mask words) for columns appended to a
// tracked table.
func extendLog(ctx context.Context, tx pgx.Tx, id int64, cols []colInfo, from int) error {
	for i := from; i < len(cols); i++ {
		if _, err := tx.Exec(ctx, fmt.Sprintf(`ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s %s`, logName(id), logCol(i), cols[i].logType)); err != nil {
			return err
		}
	}
	for w := maskWords(from); w < maskWords(len(cols)); w++ {
		if _, err := tx.Exec(ctx, fmt.Sprintf(`ALTER TABLE %s ADD COLUMN IF NOT EXISTS m%d bigint`, logName(id), w)); err != nil {
			return err
		}
	}
	return nil
}

var errTxDone = errors.New("transaction already ended")
