package postgres

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rowsync/rowsync"
)

// readKind says how a column's values are selected and turned into
// rowsync values.
type readKind int

const (
	readText     readKind = iota // selected as ::text, read as Text
	readInt                      // smallint, integer, bigint: ::int8, read as Integer
	readFloat4                   // real: ::float4, widened exactly to Real
	readFloat8                   // double precision: ::float8, Real
	readBool                     // boolean: ::bool, Integer 0/1
	readBytes                    // bytea: Blob
	readDecimal                  // numeric: ::text, canonical decimal Text
	readMoney                    // money: ::numeric::text, canonical decimal Text
	readDateTime                 // date, time[tz], timestamp[tz]: ::text (ISO, UTC), canonical date-time Text
)

// colInfo is what the adapter knows about a column beyond rowsync.Column.
type colInfo struct {
	name    string
	decl    string // format_type with typmod, as registered (e.g. numeric(10,2))
	cast    string // the type without typmod, which parameters are cast to
	base    string // pg_type.typname of the base type (domains resolved)
	logType string // the base type with typmod: log and shadow columns
	class   rowsync.TypeClass
	read    readKind
	scale   int // numeric(p,s): s; -1 if unconstrained
}

// setKind derives class, read kind and numeric scale from the base type.
func (c *colInfo) setKind(typmod int32) {
	c.scale = -1
	switch c.base {
	case "int2", "int4", "int8":
		c.class, c.read = rowsync.ClassInteger, readInt
	case "bool":
		c.class, c.read = rowsync.ClassBoolean, readBool
	case "float4":
		c.class, c.read = rowsync.ClassReal, readFloat4
	case "float8":
		c.class, c.read = rowsync.ClassReal, readFloat8
	case "numeric":
		c.class, c.read = rowsync.ClassDecimal, readDecimal
		if typmod >= 4 {
			c.scale = int((typmod - 4) & 0xffff)
		}
	case "money":
		c.class, c.read = rowsync.ClassDecimal, readMoney
	case "bytea":
		c.class, c.read = rowsync.ClassBlob, readBytes
	case "date", "time", "timetz", "timestamp", "timestamptz":
		c.class, c.read = rowsync.ClassDateTime, readDateTime
	case "json", "jsonb":
		c.class, c.read = rowsync.ClassJSON, readText
	default:
		// text, varchar, char, citext, enums, uuid, arrays, interval,
		// inet, ranges, xml, ...: their text rendering.
		c.class, c.read = rowsync.ClassText, readText
	}
}

// readExpr is the select expression of a column whose SQL is col.
func (c *colInfo) readExpr(col string) string {
	switch c.read {
	case readInt:
		return col + "::int8"
	case readFloat4:
		return col + "::float4"
	case readFloat8:
		return col + "::float8"
	case readBool:
		return col + "::bool"
	case readBytes:
		return col + "::bytea"
	case readMoney:
		return col + "::numeric::text"
	}
	return col + "::text"
}

// toValue converts what pgx decoded for readExpr into a canonical value.
func (c *colInfo) toValue(x any) (rowsync.Value, error) {
	switch x := x.(type) {
	case nil:
		return rowsync.NullValue(), nil
	case int64:
		return rowsync.IntValue(x), nil
	case float32:
		return rowsync.RealValue(float64(x)), nil
	case float64:
		return rowsync.RealValue(x), nil
	case bool:
		if x {
			return rowsync.IntValue(1), nil
		}
		return rowsync.IntValue(0), nil
	case []byte:
		return rowsync.BlobValue(x), nil
	case string:
		switch c.read {
		case readDecimal, readMoney:
			if s, ok := rowsync.CanonicalDecimal(x); ok {
				return rowsync.TextValue(s), nil
			}
		case readDateTime:
			return rowsync.TextValue(rowsync.CanonicalDateTime(x)), nil
		}
		return rowsync.TextValue(x), nil
	}
	return rowsync.Value{}, fmt.Errorf("column %q: unexpected value of Go type %T", c.name, x)
}

// param is the placeholder expression for a value of the column: bytea
// binds bytes, every other type binds text cast to the column's type
// without typmod. Casting to varchar(10) or char(5) explicitly would
// truncate silently; the assignment to the column applies the length and
// fails instead.
func (c *colInfo) param(n int) string {
	if c.read == readBytes {
		return fmt.Sprintf("$%d::bytea", n)
	}
	return fmt.Sprintf("$%d::text::%s", n, c.cast)
}

// arrayType is the type of an array parameter of the column's values
// (EndApply unnests the applied keys from such arrays).
func (c *colInfo) arrayType() string {
	if c.read == readBytes {
		return "bytea[]"
	}
	return "text[]"
}

// castElem casts an element of an arrayType array to the column's type.
func (c *colInfo) castElem(col string) string {
	if c.read == readBytes {
		return col
	}
	return col + "::" + c.cast
}

// valueError is a value the column cannot hold, found before the database
// is asked.
func (c *colInfo) valueError(table string, v rowsync.Value, why string) error {
	return &rowsync.ConstraintError{Err: fmt.Errorf("table %q column %q (%s): %s value %s: %s", table, c.name, c.decl, v.Kind, shortValue(v), why)}
}

func shortValue(v rowsync.Value) string {
	s := v.String()
	if len(s) > 80 {
		s = s[:77] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}

// arg converts a value into the argument for param: nil, []byte or a
// string in a form the column type's input function reads exactly. It
// refuses, as a *rowsync.ConstraintError, values the column could only
// hold changed: a float that real (float4) cannot represent, a decimal
// with more fractional digits than numeric(p,s) keeps (PostgreSQL would
// round both silently), a number for bytea.
func (c *colInfo) arg(table string, v rowsync.Value) (any, error) {
	if v.Kind == rowsync.Null {
		return nil, nil
	}
	if c.read == readBytes {
		if v.Kind == rowsync.Blob || v.Kind == rowsync.Text {
			return []byte(v.Str), nil
		}
		return nil, c.valueError(table, v, "a bytea column holds only bytes")
	}
	var s string
	switch v.Kind {
	case rowsync.Integer:
		s = strconv.FormatInt(v.Int, 10)
		if c.class == rowsync.ClassReal {
			f := float64(v.Int)
			if f >= 1<<63 || int64(f) != v.Int || (c.read == readFloat4 && float64(float32(f)) != f) {
				return nil, c.valueError(table, v, "not exactly representable in this floating-point type")
			}
		}
	case rowsync.Real:
		switch c.class {
		case rowsync.ClassReal:
			if c.read == readFloat4 && !math.IsNaN(v.Float) && float64(float32(v.Float)) != v.Float {
				return nil, c.valueError(table, v, "not exactly representable in real (float4); declare the column double precision")
			}
			s = formatFloat(v.Float)
		case rowsync.ClassDecimal, rowsync.ClassInteger, rowsync.ClassBoolean:
			// Plain notation: "3" for 3.0, "3.5" (refused by integer
			// input, as it should be), never an exponent.
			s = rowsync.FormatDecimalFloat(v.Float)
		default:
			s = strconv.FormatFloat(v.Float, 'g', -1, 64)
		}
	case rowsync.Text, rowsync.Blob:
		s = v.Str
		if c.read == readFloat4 {
			if f, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) && float64(float32(f)) != f {
				return nil, c.valueError(table, v, "not exactly representable in real (float4); declare the column double precision")
			}
		}
		if c.base == "timestamp" {
			s = localTimestamp(s)
		}
	}
	if c.scale >= 0 {
		if d, ok := rowsync.CanonicalDecimal(s); ok {
			if _, frac, found := strings.Cut(d, "."); found && len(frac) > c.scale {
				return nil, c.valueError(table, v, fmt.Sprintf("more than %d fractional digits; the column would round it", c.scale))
			}
		}
	}
	if c.class != rowsync.ClassBlob && strings.IndexByte(s, 0) >= 0 {
		return nil, c.valueError(table, v, "PostgreSQL text cannot hold NUL bytes")
	}
	if !utf8.ValidString(s) {
		return nil, c.valueError(table, v, "not valid UTF-8")
	}
	return s, nil
}

// formatFloat renders a float as float8in reads it back exactly.
func formatFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// zoneLayouts parse a timestamp with an explicit zone (after a 'T'
// separator has become a space).
var zoneLayouts = []string{
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999Z0700",
	"2006-01-02 15:04:05.999999999Z07",
}

// localTimestamp converts a timestamp text with an explicit zone (a point
// in time, e.g. from a timestamptz column elsewhere) into the UTC time
// without zone, for a timestamp without time zone column: PostgreSQL's
// input function would drop the zone and keep the local clock reading,
// which names another instant. Other text is returned unchanged for the
// column's input function to read or refuse.
func localTimestamp(s string) string {
	t := s
	if len(t) >= 19 && t[10] == 'T' {
		t = t[:10] + " " + t[11:]
	}
	for _, l := range zoneLayouts {
		if tm, err := time.Parse(l, t); err == nil {
			return tm.UTC().Format("2006-01-02 15:04:05.999999")
		}
	}
	return s
}

// tableInfo is the column details of a tracked table, in registered
// column order.
type tableInfo struct {
	id    int64
	name  string
	qname string // schema-qualified, quoted
	cols  []colInfo
	// arrays is set when the log has key arrays (a0, a1, …): its INSERT
	// trigger logs the rows of a statement logRows to a log row (see
	// logView).
	arrays bool
}

func (ti *tableInfo) matches(t *rowsync.Table) bool {
	if len(ti.cols) != len(t.Columns) {
		return false
	}
	for i, c := range t.Columns {
		if ti.cols[i].name != c.Name {
			return false
		}
	}
	return true
}
