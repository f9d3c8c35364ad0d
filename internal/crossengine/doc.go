// Package crossengine holds tests that sync nodes of different engines
// (SQLite, PostgreSQL, MySQL/MariaDB): type round trips between every pair,
// and Chinook across all three. They need the test servers (see
// rowsynctest.PostgresURL and MySQLURL).
package crossengine
