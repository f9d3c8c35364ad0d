package rowsynctest

import "database/sql"

// Queryer is what QueryAll needs: a *sql.DB, *sql.Conn or *sql.Tx.
type Queryer interface {
	Query(query string, args ...any) (*sql.Rows, error)
}

// QueryAll runs a query and returns every row as the driver scanned it,
// one value per column.
func QueryAll(q Queryer, query string, args ...any) ([][]any, error) {
	rows, err := q.Query(query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out [][]any
	for rows.Next() {
		r := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range r {
			ptrs[i] = &r[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
