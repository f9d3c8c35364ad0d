package mysql

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/rowsync/rowsync"
)

// colKind says how rowsync reads and writes a column: which canonical
// Value it reads (docs/PROTOCOL.md, "Types across engines") and which
// incoming values it accepts.
type colKind int

const (
	kText      colKind = iota // char, varchar, *text, enum, set, uuid, inet, MariaDB json: Text
	kJSON                     // MySQL json: Text as the server renders it
	kBlob                     // binary, varbinary, *blob, and types rowsync does not know: Blob
	kInt                      // integer types, year: Integer
	kUint64                   // bigint unsigned: Integer, or Text above 2^63-1
	kBool                     // tinyint(1): Integer (boolean class)
	kBit                      // bit(n): Integer
	kDecimal                  // decimal: Text, canonical decimal
	kFloat                    // float: Real (float32 widened)
	kDouble                   // double: Real
	kDate                     // date: Text YYYY-MM-DD
	kTime                     // time: Text HH:MM:SS[.f]
	kDateTime                 // datetime: Text YYYY-MM-DD HH:MM:SS[.f]
	kTimestamp                // timestamp: Text YYYY-MM-DD HH:MM:SS[.f]Z (UTC)
)

// colInfo is what rowsync needs to know of one column to convert values.
type colInfo struct {
	name    string
	typ     string // declared type, as COLUMN_TYPE reports it
	kind    colKind
	charset string // string kinds with a character set
	prec    int    // decimal precision
	scale   int    // decimal scale
	fsp     int    // fractional seconds digits of time, datetime, timestamp
}

var typeArgs = regexp.MustCompile(`^[a-z]+\s*\((\d+)(?:\s*,\s*(\d+))?\)`)

// kindOf maps a column's DATA_TYPE and COLUMN_TYPE (lowercase) to its kind.
func kindOf(dataType, columnType string) colKind {
	unsigned := strings.Contains(columnType, "unsigned")
	switch dataType {
	case "tinyint":
		if strings.HasPrefix(columnType, "tinyint(1)") && !unsigned {
			return kBool
		}
		return kInt
	case "smallint", "mediumint", "int", "integer", "year":
		return kInt
	case "bigint":
		if unsigned {
			return kUint64
		}
		return kInt
	case "bit":
		return kBit
	case "decimal", "numeric", "fixed", "dec":
		return kDecimal
	case "float":
		return kFloat
	case "double", "real", "double precision":
		return kDouble
	case "char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set", "uuid", "inet4", "inet6":
		return kText
	case "json":
		return kJSON
	case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob":
		return kBlob
	case "date":
		return kDate
	case "time":
		return kTime
	case "datetime":
		return kDateTime
	case "timestamp":
		return kTimestamp
	}
	// Spatial types, vectors and whatever comes next: their bytes as the
	// server returns them.
	return kBlob
}

// classOf maps a column to its type class. hasJSONCheck is set for a
// MariaDB JSON column (LONGTEXT with CHECK (json_valid(col))).
func classOf(dataType, columnType string, hasJSONCheck bool) rowsync.TypeClass {
	switch k := kindOf(dataType, columnType); k {
	case kBool:
		return rowsync.ClassBoolean
	case kBit:
		if strings.HasPrefix(columnType, "bit(1)") {
			return rowsync.ClassBoolean
		}
		return rowsync.ClassInteger
	case kInt, kUint64:
		return rowsync.ClassInteger
	case kDecimal:
		return rowsync.ClassDecimal
	case kFloat, kDouble:
		return rowsync.ClassReal
	case kJSON:
		return rowsync.ClassJSON
	case kText:
		if hasJSONCheck {
			return rowsync.ClassJSON
		}
		return rowsync.ClassText
	case kDate, kTime, kDateTime, kTimestamp:
		return rowsync.ClassDateTime
	}
	return rowsync.ClassBlob
}

// newColInfo describes a column from its declared type.
func newColInfo(name, typ, charset string) colInfo {
	typ = strings.ToLower(typ)
	dataType := typ
	if i := strings.IndexAny(typ, "( "); i > 0 {
		dataType = typ[:i]
	}
	c := colInfo{name: name, typ: typ, kind: kindOf(dataType, typ), charset: charset}
	m := typeArgs.FindStringSubmatch(typ)
	switch c.kind {
	case kDecimal:
		c.prec, c.scale = 10, 0
		if m != nil {
			c.prec, _ = strconv.Atoi(m[1])
			if m[2] != "" {
				c.scale, _ = strconv.Atoi(m[2])
			}
		}
	case kTime, kDateTime, kTimestamp:
		if m != nil {
			c.fsp, _ = strconv.Atoi(m[1])
		}
	case kText:
		// uuid and inet columns have no character set.
		if c.charset == "" && dataType != "uuid" && dataType != "inet4" && dataType != "inet6" {
			c.charset = "utf8mb4"
		}
	}
	return c
}

// collated reports whether the column compares with a collation, so that
// rowsync must compare its bytes to match values exactly.
func (c *colInfo) collated() bool { return c.kind == kText && c.charset != "" && c.charset != "binary" }

// selectExpr is the expression rowsync selects for a column so that the
// driver returns it exactly: MariaDB renders FLOAT in 6 digits in the text
// protocol, so it is widened to DOUBLE first (exact for every float).
func (c *colInfo) selectExpr(expr string) string {
	if c.kind == kFloat {
		return "(" + expr + " + 0E0)"
	}
	return expr
}

// logType is the type of the log column that holds the old value of a
// non-key column for deletes. It is wider than the column where that is
// lossless, so that widening a tracked column (VARCHAR(10) to (20),
// DECIMAL(10,2) to (12,4)) never makes the capture trigger, and with it the
// application's write, fail.
func (c *colInfo) logType() string {
	switch c.kind {
	case kText:
		if c.charset == "" {
			return "LONGTEXT CHARACTER SET utf8mb4"
		}
		return "LONGTEXT CHARACTER SET " + c.charset
	case kBlob:
		if !isBinaryString(c.typ) {
			return c.typ // spatial and other types: as declared
		}
		return "LONGBLOB"
	case kInt, kUint64, kBool, kDecimal:
		return "LONGTEXT CHARACTER SET ascii"
	case kFloat, kDouble:
		return "DOUBLE"
	case kDate:
		return "DATE"
	case kTime:
		return "TIME(6)"
	case kDateTime:
		return "DATETIME(6)"
	case kTimestamp:
		return "TIMESTAMP(6)"
	case kBit:
		return "BIT(64)"
	case kJSON:
		return "JSON"
	}
	return c.typ
}

func isBinaryString(typ string) bool {
	for _, p := range []string{"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"} {
		if typ == p || strings.HasPrefix(typ, p+"(") {
			return true
		}
	}
	return false
}

// read converts a value as the driver returns it (text protocol: int64,
// uint64, float32, float64 or []byte) to the canonical Value of the
// column. The kind decides, never the bytes: text and blobs both come as
// []byte.
func (c *colInfo) read(x any) (rowsync.Value, error) {
	switch x := x.(type) {
	case nil:
		return rowsync.NullValue(), nil
	case int64:
		if c.kind == kDecimal {
			return rowsync.TextValue(strconv.FormatInt(x, 10)), nil
		}
		return rowsync.IntValue(x), nil
	case uint64:
		if x <= math.MaxInt64 {
			return rowsync.IntValue(int64(x)), nil
		}
		return rowsync.TextValue(strconv.FormatUint(x, 10)), nil
	case float32:
		return rowsync.RealValue(float64(x)), nil
	case float64:
		return rowsync.RealValue(x), nil
	case []byte:
		return c.readBytes(x)
	case string:
		return c.readBytes([]byte(x))
	}
	return rowsync.Value{}, fmt.Errorf("column %q: unexpected driver value %T", c.name, x)
}

func (c *colInfo) readBytes(b []byte) (rowsync.Value, error) {
	s := string(b)
	switch c.kind {
	case kBlob:
		return rowsync.BlobValue(b), nil
	case kInt, kBool:
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return rowsync.Value{}, fmt.Errorf("column %q: read %q as an integer: %w", c.name, s, err)
		}
		return rowsync.IntValue(i), nil
	case kUint64:
		u, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return rowsync.Value{}, fmt.Errorf("column %q: read %q as an integer: %w", c.name, s, err)
		}
		if u <= math.MaxInt64 {
			return rowsync.IntValue(int64(u)), nil
		}
		return rowsync.TextValue(s), nil
	case kBit:
		// BIT comes as big-endian bytes.
		var u uint64
		for _, x := range b {
			u = u<<8 | uint64(x)
		}
		if u <= math.MaxInt64 {
			return rowsync.IntValue(int64(u)), nil
		}
		return rowsync.TextValue(strconv.FormatUint(u, 10)), nil
	case kDecimal:
		d, ok := rowsync.CanonicalDecimal(s)
		if !ok {
			return rowsync.Value{}, fmt.Errorf("column %q: read %q as a decimal", c.name, s)
		}
		return rowsync.TextValue(d), nil
	case kFloat, kDouble:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return rowsync.Value{}, fmt.Errorf("column %q: read %q as a number: %w", c.name, s, err)
		}
		return rowsync.RealValue(f), nil
	case kDate, kTime, kDateTime:
		return rowsync.TextValue(rowsync.CanonicalDateTime(s)), nil
	case kTimestamp:
		return rowsync.TextValue(rowsync.CanonicalDateTime(s) + "Z"), nil
	}
	return rowsync.TextValue(s), nil
}

// errNotHeld is wrapped by the errors of arg: the column cannot hold the
// value exactly.
var errNotHeld = errors.New("value does not fit the column")

func notHeld(c *colInfo, v rowsync.Value, why string) error {
	return fmt.Errorf("%w: column %q (%s) cannot hold %s %s: %s", errNotHeld, c.name, c.typ, v.Kind, shortValue(v), why)
}

func shortValue(v rowsync.Value) string {
	s := v.String()
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}

// arg converts a canonical value (from any engine, in any kind that can be
// converted exactly) to the driver argument written to the column. A value
// the column cannot hold exactly is refused with an error wrapping
// errNotHeld, before the server could round or truncate it; the server's
// strict mode refuses the rest (range, length, invalid dates).
func (c *colInfo) arg(v rowsync.Value) (any, error) {
	if v.Kind == rowsync.Null {
		return nil, nil
	}
	switch c.kind {
	case kInt, kBool, kBit:
		if c.kind == kBool {
			v = rowsync.Canonical(rowsync.ClassBoolean, v)
		}
		switch v.Kind {
		case rowsync.Integer:
			return v.Int, nil
		case rowsync.Real:
			if v.Float == math.Trunc(v.Float) && math.Abs(v.Float) < 1<<63 {
				return int64(v.Float), nil
			}
			return nil, notHeld(c, v, "not an integer")
		case rowsync.Text:
			if i, err := strconv.ParseInt(strings.TrimSpace(v.Str), 10, 64); err == nil {
				return i, nil
			}
			if c.kind == kBit {
				if u, err := strconv.ParseUint(strings.TrimSpace(v.Str), 10, 64); err == nil {
					return u, nil
				}
			}
			return nil, notHeld(c, v, "not an integer")
		}
		return nil, notHeld(c, v, "not an integer")
	case kUint64:
		switch v.Kind {
		case rowsync.Integer:
			return v.Int, nil
		case rowsync.Real:
			if v.Float == math.Trunc(v.Float) && v.Float >= 0 && v.Float < 1<<64 {
				return uint64(v.Float), nil
			}
			return nil, notHeld(c, v, "not an unsigned integer")
		case rowsync.Text:
			if u, err := strconv.ParseUint(strings.TrimSpace(v.Str), 10, 64); err == nil {
				return u, nil
			}
			if i, err := strconv.ParseInt(strings.TrimSpace(v.Str), 10, 64); err == nil {
				return i, nil // negative: the server refuses it as out of range
			}
		}
		return nil, notHeld(c, v, "not an unsigned integer")
	case kDecimal:
		return c.decimalArg(v)
	case kFloat, kDouble:
		var f float64
		switch v.Kind {
		case rowsync.Integer:
			f = float64(v.Int)
			if math.Abs(f) >= 1<<63 || int64(f) != v.Int {
				return nil, notHeld(c, v, "not exact as a floating-point number")
			}
		case rowsync.Real:
			f = v.Float
		case rowsync.Text:
			var err error
			if f, err = strconv.ParseFloat(strings.TrimSpace(v.Str), 64); err != nil {
				return nil, notHeld(c, v, "not a number")
			}
		default:
			return nil, notHeld(c, v, "not a number")
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, notHeld(c, v, "MySQL stores no NaN or infinity")
		}
		if c.kind == kFloat && float64(float32(f)) != f {
			return nil, notHeld(c, v, "FLOAT would round it (use DOUBLE)")
		}
		return f, nil
	case kText, kJSON:
		switch v.Kind {
		case rowsync.Text:
			return v.Str, nil
		case rowsync.Integer:
			return strconv.FormatInt(v.Int, 10), nil
		case rowsync.Real:
			return strconv.FormatFloat(v.Float, 'g', -1, 64), nil
		}
		// Bytes: the server checks they are valid in the column's
		// character set (strict mode refuses them otherwise).
		return []byte(v.Str), nil
	case kBlob:
		switch v.Kind {
		case rowsync.Integer:
			return []byte(strconv.FormatInt(v.Int, 10)), nil
		case rowsync.Real:
			return []byte(strconv.FormatFloat(v.Float, 'g', -1, 64)), nil
		}
		return append([]byte{}, v.Str...), nil
	case kDate, kTime, kDateTime, kTimestamp:
		if v.Kind != rowsync.Text {
			return nil, notHeld(c, v, "not a date or time text")
		}
		return c.timeArg(v)
	}
	return v.Any(), nil
}

// decimalArg checks that a number fits decimal(p,s) without rounding:
// MySQL rounds extra fractional digits with only a note, even in strict
// mode.
func (c *colInfo) decimalArg(v rowsync.Value) (any, error) {
	var s string
	switch v.Kind {
	case rowsync.Integer:
		s = strconv.FormatInt(v.Int, 10)
	case rowsync.Real:
		if math.IsNaN(v.Float) || math.IsInf(v.Float, 0) {
			return nil, notHeld(c, v, "MySQL decimals hold no NaN or infinity")
		}
		s = rowsync.FormatDecimalFloat(v.Float)
	case rowsync.Text:
		var ok bool
		if s, ok = rowsync.CanonicalDecimal(v.Str); !ok {
			return nil, notHeld(c, v, "not a number")
		}
		if s == "NaN" || s == "Infinity" || s == "-Infinity" {
			return nil, notHeld(c, v, "MySQL decimals hold no NaN or infinity")
		}
	default:
		return nil, notHeld(c, v, "not a number")
	}
	ip, fp, _ := strings.Cut(strings.TrimPrefix(s, "-"), ".")
	if ip == "0" {
		ip = ""
	}
	if len(fp) > c.scale {
		return nil, notHeld(c, v, fmt.Sprintf("more than %d fractional digits would be rounded", c.scale))
	}
	if len(ip) > c.prec-c.scale {
		return nil, notHeld(c, v, "out of range")
	}
	return s, nil
}

var zoneSuffix = regexp.MustCompile(`(Z|[+-]\d\d(?::?\d\d)?)$`)

// timeArg normalizes a date or time text: a 'T' separator is read as a
// space; a zone (Z, +hh, +hh:mm, +hhmm) converts the instant to UTC for a
// TIMESTAMP column and is dropped for a DATETIME column (which holds no
// zone, as PostgreSQL's timestamp without time zone does). Fractional
// digits beyond the column's precision are refused: the server would round
// them.
func (c *colInfo) timeArg(v rowsync.Value) (any, error) {
	s := strings.TrimSpace(v.Str)
	if len(s) >= 11 && s[4] == '-' && (s[10] == 'T' || s[10] == 't') {
		s = s[:10] + " " + s[11:]
	}
	if (c.kind == kDateTime || c.kind == kTimestamp) && len(s) > 19 {
		if m := zoneSuffix.FindStringIndex(s[19:]); m != nil {
			zone := s[19+m[0]:]
			body := s[:19+m[0]]
			if c.kind == kTimestamp {
				t, err := parseInZone(body, zone)
				if err != nil {
					return nil, notHeld(c, v, "not a valid timestamp")
				}
				body = t.UTC().Format("2006-01-02 15:04:05.999999999")
			}
			s = body
		}
	}
	if dot := strings.LastIndexByte(s, '.'); dot > 0 && strings.Contains(s[:dot], ":") {
		frac := strings.TrimRight(s[dot+1:], "0")
		if len(frac) > c.fsp {
			return nil, notHeld(c, v, fmt.Sprintf("more than %d fractional second digits would be rounded", c.fsp))
		}
	}
	return s, nil
}

func parseInZone(body, zone string) (time.Time, error) {
	switch {
	case zone == "Z":
		zone = "+00:00"
	case len(zone) == 3:
		zone += ":00"
	case len(zone) == 5:
		zone = zone[:3] + ":" + zone[3:]
	}
	return time.Parse("2006-01-02 15:04:05.999999999-07:00", body+zone)
}
