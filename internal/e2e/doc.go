// Package e2e holds end-to-end tests that drive the built rowsync binary:
// its command line, `rowsync serve` over HTTP, a real sample database, and
// processes killed in the middle of a sync. It has no code of its own.
package e2e
