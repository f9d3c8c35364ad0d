package mysql

import (
	"context"
	"database/sql"
	"fmt"
)

// SetIDRange moves the AUTO_INCREMENT counter of every tracked table that
// has one up to start, so that rows inserted here from now on get keys
// from start on (give every node its own range: node 1 from 1, node 2
// from 1e12, ...). A counter is never moved back: tables whose counter is
// at or above start are left alone. It returns the tables it moved.
//
// MySQL has no per-table sequence that could be moved safely under load
// other than this: ALTER TABLE ... AUTO_INCREMENT = n takes a short
// metadata lock, and InnoDB never sets the counter below MAX(key)+1. For
// interleaved keys instead of ranges, set auto_increment_increment and
// auto_increment_offset on each server (see DESIGN.md).
func (d *DB) SetIDRange(ctx context.Context, start int64) ([]string, error) {
	if start < 1 {
		return nil, fmt.Errorf("set id range: start %d is not positive", start)
	}
	reg, err := readRegistry(ctx, d.db)
	if err != nil {
		return nil, err
	}
	conn, err := d.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if !d.mariadb {
		// MySQL 8 caches information_schema.TABLES.AUTO_INCREMENT for a
		// day by default.
		if _, err := conn.ExecContext(ctx, `SET SESSION information_schema_stats_expiry = 0`); err != nil {
			return nil, fmt.Errorf("set id range: %w", err)
		}
	}
	var moved []string
	for _, r := range reg {
		var next sql.NullInt64
		err := conn.QueryRowContext(ctx, `SELECT AUTO_INCREMENT FROM information_schema.TABLES
			WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND CAST(TABLE_NAME AS BINARY) = CAST(? AS BINARY)`, r.name, r.name).Scan(&next)
		if err == sql.ErrNoRows || (err == nil && !next.Valid) {
			continue // no AUTO_INCREMENT column
		}
		if err != nil {
			return moved, fmt.Errorf("set id range of %q: %w", r.name, err)
		}
		if next.Int64 >= start {
			continue
		}
		if _, err := conn.ExecContext(ctx, fmt.Sprintf("ALTER TABLE %s AUTO_INCREMENT = %d", quote(r.name), start)); err != nil {
			return moved, fmt.Errorf("set id range of %q: %w", r.name, err)
		}
		moved = append(moved, r.name)
	}
	return moved, nil
}
