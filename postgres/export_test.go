package postgres

// SetBeforeLogPage sets a hook that runs before each page query of
// ReadLog, and returns a function that removes it.
func SetBeforeLogPage(f func()) (reset func()) {
	beforeLogPage = f
	return func() { beforeLogPage = nil }
}
