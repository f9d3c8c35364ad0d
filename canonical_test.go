package rowsync_test

import (
	"math"
	"testing"

	"github.com/rowsync/rowsync"
)

func TestCanonicalDecimal(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"1.50", "1.5", true},
		{"2.00", "2", true},
		{"-0", "0", true},
		{"-0.000", "0", true},
		{"+12", "12", true},
		{"007.10", "7.1", true},
		{".5", "0.5", true},
		{"5.", "5", true},
		{"1e3", "1000", true},
		{"1.25E-3", "0.00125", true},
		{"-1.5e1", "-15", true},
		{"123456789012345678901234567890.123456789", "123456789012345678901234567890.123456789", true},
		{"NaN", "NaN", true},
		{"-Infinity", "-Infinity", true},
		{"abc", "", false},
		{"", "", false},
		{"1.2.3", "", false},
		{"1e", "", false},
		{"-", "", false},
	}
	for _, tt := range tests {
		got, ok := rowsync.CanonicalDecimal(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("CanonicalDecimal(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestCanonical(t *testing.T) {
	tests := []struct {
		class rowsync.TypeClass
		in    rowsync.Value
		want  rowsync.Value
	}{
		{rowsync.ClassDecimal, rowsync.RealValue(0.99), rowsync.TextValue("0.99")},
		{rowsync.ClassDecimal, rowsync.RealValue(math.Nextafter(0.3, 1)), rowsync.TextValue("0.30000000000000004")},
		{rowsync.ClassDecimal, rowsync.IntValue(-3), rowsync.TextValue("-3")},
		{rowsync.ClassDecimal, rowsync.TextValue("12.50"), rowsync.TextValue("12.5")},
		{rowsync.ClassDecimal, rowsync.TextValue("n/a"), rowsync.TextValue("n/a")},
		{rowsync.ClassDecimal, rowsync.RealValue(math.Inf(-1)), rowsync.TextValue("-Infinity")},
		{rowsync.ClassBoolean, rowsync.IntValue(7), rowsync.IntValue(1)},
		{rowsync.ClassBoolean, rowsync.TextValue("false"), rowsync.IntValue(0)},
		{rowsync.ClassBoolean, rowsync.TextValue("maybe"), rowsync.TextValue("maybe")},
		{rowsync.ClassInteger, rowsync.RealValue(3), rowsync.IntValue(3)},
		{rowsync.ClassInteger, rowsync.RealValue(3.5), rowsync.RealValue(3.5)},
		{rowsync.ClassInteger, rowsync.TextValue("12"), rowsync.IntValue(12)},
		{rowsync.ClassReal, rowsync.IntValue(2), rowsync.RealValue(2)},
		{rowsync.ClassDateTime, rowsync.TextValue("2024-02-29T23:59:59.120000+00:00"), rowsync.TextValue("2024-02-29 23:59:59.12Z")},
		{rowsync.ClassDateTime, rowsync.TextValue("2024-02-29 10:00:00.000"), rowsync.TextValue("2024-02-29 10:00:00")},
		{rowsync.ClassDateTime, rowsync.TextValue("2024-02-29 10:00:00+01:00"), rowsync.TextValue("2024-02-29 10:00:00+01:00")},
		{rowsync.ClassDateTime, rowsync.TextValue("2024-02-29"), rowsync.TextValue("2024-02-29")},
		{rowsync.ClassDateTime, rowsync.TextValue("13:45:00.500"), rowsync.TextValue("13:45:00.5")},
		{rowsync.ClassDateTime, rowsync.IntValue(1700000000), rowsync.IntValue(1700000000)},
		{rowsync.ClassText, rowsync.TextValue(" 1.50 "), rowsync.TextValue(" 1.50 ")},
		{rowsync.ClassBlob, rowsync.BlobValue([]byte{0}), rowsync.BlobValue([]byte{0})},
		{rowsync.ClassDecimal, rowsync.NullValue(), rowsync.NullValue()},
	}
	for _, tt := range tests {
		if got := rowsync.Canonical(tt.class, tt.in); !got.Equal(tt.want) {
			t.Errorf("Canonical(%s, %s %s) = %s %s, want %s %s", tt.class, tt.in.Kind, tt.in, got.Kind, got, tt.want.Kind, tt.want)
		}
	}
}
