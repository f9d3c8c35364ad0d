package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
)

// MySQL and MariaDB fire no triggers for the rows a foreign-key action
// (ON DELETE CASCADE, ON DELETE SET NULL, ON UPDATE CASCADE, …) changes.
// rowsync captures those changes from the parent instead: a BEFORE DELETE
// trigger on a tracked parent logs, while they are still there, the rows
// its delete will remove (as deletes, with their values) or set to NULL
// (as updates of the key columns), following cascades through any number
// of tables; a BEFORE UPDATE trigger logs the direct children whose
// foreign key follows a change of the parent's referenced columns. The
// statement and its triggers are one unit: if the delete fails, what the
// trigger logged is rolled back with it. See DESIGN.md.

// foreignKey is a foreign key of the database.
type foreignKey struct {
	name, child, parent   string
	childCols, parentCols []string
	onDelete, onUpdate    string
}

func foreignKeys(ctx context.Context, q querier) ([]foreignKey, error) {
	return queryForeignKeys(ctx, q, "")
}

// foreignKeysOf returns the foreign keys of one table (to tables of the
// same database).
func foreignKeysOf(ctx context.Context, q querier, table string) ([]foreignKey, error) {
	return queryForeignKeys(ctx, q, table)
}

func queryForeignKeys(ctx context.Context, q querier, table string) ([]foreignKey, error) {
	where, args := "", []any(nil)
	if table != "" {
		// The binary comparison makes the match exact where the catalog
		// compares case-insensitively.
		where, args = ` AND rc.TABLE_NAME = ? AND CAST(rc.TABLE_NAME AS BINARY) = CAST(? AS BINARY)`, []any{table, table}
	}
	rows, err := q.QueryContext(ctx, `SELECT rc.CONSTRAINT_NAME, rc.TABLE_NAME, rc.REFERENCED_TABLE_NAME, rc.DELETE_RULE, rc.UPDATE_RULE,
		k.COLUMN_NAME, k.REFERENCED_COLUMN_NAME
		FROM information_schema.REFERENTIAL_CONSTRAINTS AS rc JOIN information_schema.KEY_COLUMN_USAGE AS k
		ON k.CONSTRAINT_SCHEMA = rc.CONSTRAINT_SCHEMA AND k.CONSTRAINT_NAME = rc.CONSTRAINT_NAME AND k.TABLE_NAME = rc.TABLE_NAME
		WHERE rc.CONSTRAINT_SCHEMA = DATABASE() AND k.REFERENCED_TABLE_SCHEMA = DATABASE()`+where+`
		ORDER BY rc.TABLE_NAME, rc.CONSTRAINT_NAME, k.ORDINAL_POSITION`, args...)
	if err != nil {
		return nil, fmt.Errorf("inspect foreign keys: %w", err)
	}
	defer rows.Close()
	var out []foreignKey
	for rows.Next() {
		var f foreignKey
		var cc, pc string
		if err := rows.Scan(&f.name, &f.child, &f.parent, &f.onDelete, &f.onUpdate, &cc, &pc); err != nil {
			return nil, err
		}
		if n := len(out); n > 0 && out[n-1].name == f.name && out[n-1].child == f.child {
			out[n-1].childCols = append(out[n-1].childCols, cc)
			out[n-1].parentCols = append(out[n-1].parentCols, pc)
			continue
		}
		f.childCols, f.parentCols = []string{cc}, []string{pc}
		out = append(out, f)
	}
	return out, rows.Err()
}

// changesChildren reports whether an action changes child rows.
func changesChildren(action string) bool {
	return action == "CASCADE" || action == "SET NULL" || action == "SET DEFAULT"
}

// maxCascadeDepth bounds the chains of cascades the triggers follow.
const maxCascadeDepth = 8

// cascadePlan is the capture of foreign-key actions for the tracked
// tables: per parent, the statements of its BEFORE DELETE and BEFORE
// UPDATE triggers, and the actions it cannot capture.
type cascadePlan struct {
	fks      []foreignKey
	tracked  map[string]registered
	onDelete map[string][]string
	onUpdate map[string][]string
	warnings []string
}

func planCascades(fks []foreignKey, reg []registered) *cascadePlan {
	c := &cascadePlan{fks: fks, tracked: map[string]registered{}, onDelete: map[string][]string{}, onUpdate: map[string][]string{}}
	for _, r := range reg {
		c.tracked[r.name] = r
	}
	for _, r := range reg {
		old := func(col string) string { return "OLD." + quote(col) }
		c.deletes(r.name, r.name, old, "", "", []string{r.name})
		c.updates(r.name)
	}
	// Actions whose parent is not tracked change tracked rows that no
	// trigger of rowsync's sees.
	for _, f := range fks {
		if _, ok := c.tracked[f.parent]; ok || (!changesChildren(f.onDelete) && !changesChildren(f.onUpdate)) {
			continue
		}
		if _, ok := c.tracked[f.child]; ok {
			c.warn(f, "its parent is not tracked")
		}
	}
	slices.Sort(c.warnings)
	c.warnings = slices.Compact(c.warnings)
	return c
}

func (c *cascadePlan) warn(f foreignKey, why string) {
	c.warnings = append(c.warnings, fmt.Sprintf("foreign key %s of %q references %q with ON DELETE %s ON UPDATE %s: "+
		"MySQL fires no triggers for the rows it changes that way, and rowsync does not capture them here: %s",
		quote(f.name), f.child, f.parent, f.onDelete, f.onUpdate, why))
}

// deletes adds to root's BEFORE DELETE trigger the capture of what
// deleting rows of table does to the tables that reference it: from is
// the FROM clause of those rows (empty for the root, which is OLD) and
// where its condition; ref gives the SQL of one of their columns.
func (c *cascadePlan) deletes(root, table string, ref func(string) string, from, where string, path []string) {
	for _, f := range c.fks {
		if f.parent != table || !changesChildren(f.onDelete) {
			continue
		}
		if f.onDelete == "CASCADE" && (slices.Contains(path, f.child) || len(path) > maxCascadeDepth) {
			if _, ok := c.tracked[f.child]; ok {
				c.warn(f, "the cascade is a cycle (or longer than 8 tables) from "+quote(root))
			}
			continue
		}
		alias := fmt.Sprintf("t%d", len(path))
		on := make([]string, len(f.childCols))
		for i := range f.childCols {
			on[i] = fmt.Sprintf("%s.%s = %s", alias, quote(f.childCols[i]), ref(f.parentCols[i]))
		}
		nextFrom, nextWhere := quote(f.child)+" AS "+alias, strings.Join(on, " AND ")
		if from != "" {
			nextFrom, nextWhere = from+" JOIN "+nextFrom+" ON "+nextWhere, where
		}
		r, tracked := c.tracked[f.child]
		switch f.onDelete {
		case "CASCADE":
			if tracked {
				c.onDelete[root] = append(c.onDelete[root], logDeletes(r, alias, nextFrom, nextWhere))
			}
			aref := func(col string) string { return alias + "." + quote(col) }
			c.deletes(root, f.child, aref, nextFrom, nextWhere, append(slices.Clone(path), f.child))
		case "SET NULL":
			if tracked {
				c.onDelete[root] = append(c.onDelete[root], logUpdates(r, f.childCols, alias, nextFrom, nextWhere))
			}
		default: // SET DEFAULT: InnoDB refuses it
			if tracked {
				c.warn(f, "SET DEFAULT is not captured")
			}
		}
	}
}

// updates adds to table's BEFORE UPDATE trigger the capture of what a
// change of its referenced columns does to its direct children.
func (c *cascadePlan) updates(table string) {
	for _, f := range c.fks {
		if f.parent != table || !changesChildren(f.onUpdate) {
			continue
		}
		r, tracked := c.tracked[f.child]
		if !tracked {
			continue
		}
		// A change of the child's columns that cascades on: not followed.
		for _, g := range c.fks {
			if g.parent == f.child && changesChildren(g.onUpdate) && overlaps(g.parentCols, f.childCols) {
				c.warn(g, "it follows an ON UPDATE action of "+quote(f.name))
			}
		}
		changed := make([]string, len(f.parentCols))
		on := make([]string, len(f.childCols))
		for i := range f.parentCols {
			changed[i] = fmt.Sprintf("NOT (OLD.%s <=> NEW.%s)", quote(f.parentCols[i]), quote(f.parentCols[i]))
			on[i] = fmt.Sprintf("t1.%s = OLD.%s", quote(f.childCols[i]), quote(f.parentCols[i]))
		}
		from, where := quote(f.child)+" AS t1", strings.Join(on, " AND ")
		var stmts []string
		switch {
		case f.onUpdate == "SET DEFAULT":
			c.warn(f, "SET DEFAULT is not captured")
			continue
		case f.onUpdate == "CASCADE" && overlaps(f.childCols, r.key):
			// The child's key changes: a delete of the old key and an
			// insert of the new one, whose key takes the parent's new
			// values.
			newKey := make([]string, len(r.key))
			for i, k := range r.key {
				newKey[i] = "t1." + quote(k)
				if j := slices.Index(f.childCols, k); j >= 0 {
					newKey[i] = "NEW." + quote(f.parentCols[j])
				}
			}
			stmts = append(stmts, logDeletes(r, "t1", from, where),
				fmt.Sprintf("INSERT INTO %s(op, wall, echo, %s) SELECT 1, %s, %s, %s FROM %s WHERE %s",
					logName(r.id), keyLogCols(r), wallExpr, sideEchoExpr, strings.Join(newKey, ", "), from, where))
		default:
			stmts = append(stmts, logUpdates(r, f.childCols, "t1", from, where))
		}
		c.onUpdate[table] = append(c.onUpdate[table],
			fmt.Sprintf("IF %s THEN\n    %s;\n  END IF", strings.Join(changed, " OR "), strings.Join(stmts, ";\n    ")))
	}
}

func overlaps(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

// keyLogCols lists the log columns of a tracked table's key.
func keyLogCols(r registered) string {
	var out []string
	for _, k := range r.key {
		for i, col := range r.cols {
			if col.Name == k {
				out = append(out, logCol(i))
			}
		}
	}
	return strings.Join(out, ", ")
}

// logDeletes logs the rows of r selected by from/where (alias a) as
// deleted, with their values.
func logDeletes(r registered, a, from, where string) string {
	cols, vals := make([]string, len(r.cols)), make([]string, len(r.cols))
	for i, col := range r.cols {
		cols[i], vals[i] = logCol(i), a+"."+quote(col.Name)
	}
	return fmt.Sprintf("INSERT INTO %s(op, wall, echo, %s) SELECT 3, %s, %s, %s FROM %s WHERE %s",
		logName(r.id), strings.Join(cols, ", "), wallExpr, sideEchoExpr, strings.Join(vals, ", "), from, where)
}

// logUpdates logs the rows of r selected by from/where (alias a) as
// updates of the columns changed.
func logUpdates(r registered, changed []string, a, from, where string) string {
	words := make([]uint64, maskWords(len(r.cols)))
	for i, col := range r.cols {
		if slices.Contains(changed, col.Name) {
			words[i/63] |= 1 << (i % 63)
		}
	}
	masks, vals := make([]string, len(words)), make([]string, len(words))
	for i, w := range words {
		masks[i], vals[i] = fmt.Sprintf("m%d", i), fmt.Sprint(w)
	}
	keys := make([]string, len(r.key))
	for i, k := range r.key {
		keys[i] = a + "." + quote(k)
	}
	return fmt.Sprintf("INSERT INTO %s(op, wall, echo, %s, %s) SELECT 2, %s, %s, %s, %s FROM %s WHERE %s",
		logName(r.id), strings.Join(masks, ", "), keyLogCols(r), wallExpr, sideEchoExpr, strings.Join(vals, ", "),
		strings.Join(keys, ", "), from, where)
}

type execQuerier interface {
	querier
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// installCascades replaces the foreign-key action triggers of every
// tracked table and returns the actions still not captured.
func installCascades(ctx context.Context, q execQuerier) ([]string, error) {
	c, reg, err := loadCascades(ctx, q)
	if err != nil {
		return nil, err
	}
	for _, r := range reg {
		for _, t := range []struct {
			suffix, event string
			stmts         []string
		}{{"fkd", "DELETE", c.onDelete[r.name]}, {"fku", "UPDATE", c.onUpdate[r.name]}} {
			name := fmt.Sprintf("`_rowsync_%d_%s`", r.id, t.suffix)
			if _, err := q.ExecContext(ctx, "DROP TRIGGER IF EXISTS "+name); err != nil {
				return nil, fmt.Errorf("install capture of foreign-key actions on %q: %w", r.name, err)
			}
			if len(t.stmts) == 0 {
				continue
			}
			body := fmt.Sprintf("CREATE TRIGGER %s BEFORE %s ON %s FOR EACH ROW\nBEGIN\n  %s;\nEND",
				name, t.event, quote(r.name), strings.Join(t.stmts, ";\n  "))
			if _, err := q.ExecContext(ctx, body); err != nil {
				return nil, fmt.Errorf("install capture of foreign-key actions on %q: %w", r.name, err)
			}
		}
	}
	return c.warnings, nil
}

// cascadeWarnings lists the foreign-key actions on tracked tables that
// rowsync does not capture.
func cascadeWarnings(ctx context.Context, q querier) ([]string, error) {
	c, _, err := loadCascades(ctx, q)
	if err != nil {
		return nil, err
	}
	return c.warnings, nil
}

// loadCascades plans the capture of foreign-key actions for the tracked
// tables of the database.
func loadCascades(ctx context.Context, q querier) (*cascadePlan, []registered, error) {
	reg, err := readRegistry(ctx, q)
	if err != nil {
		return nil, nil, err
	}
	fks, err := foreignKeys(ctx, q)
	if err != nil {
		return nil, nil, err
	}
	return planCascades(fks, reg), reg, nil
}
