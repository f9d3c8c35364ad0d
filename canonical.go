package rowsync

import (
	"math"
	"strconv"
	"strings"
)

// Canonical returns v in the canonical encoding of a column class (see
// docs/PROTOCOL.md, "Types across engines"): the form in which every
// engine's adapter sends a value of that class, so that one logical value
// stored on SQLite, PostgreSQL and MySQL compares equal. Values that do not
// belong to the class (text in an integer column on SQLite) are returned
// unchanged.
//
//   - boolean: INTEGER 0 or 1
//   - integer: INTEGER
//   - real: REAL
//   - decimal: TEXT in plain decimal notation without exponent, leading
//     "+", leading zeros or trailing fractional zeros ("1.50" is "1.5",
//     "2.00" is "2", "-0" is "0"); NaN and infinities as "NaN",
//     "Infinity", "-Infinity"
//   - datetime: TEXT "YYYY-MM-DD", "HH:MM:SS[.ffffff]" or
//     "YYYY-MM-DD HH:MM:SS[.ffffff]", with "Z" appended for a point in time
//     (timestamp with time zone, rendered in UTC); fractional seconds
//     without trailing zeros; a "T" separator is read as a space
//   - text, json: TEXT; blob: BLOB
func Canonical(class TypeClass, v Value) Value {
	switch class {
	case ClassBoolean:
		switch v.Kind {
		case Integer:
			if v.Int != 0 {
				return IntValue(1)
			}
			return IntValue(0)
		case Real:
			if v.Float != 0 {
				return IntValue(1)
			}
			return IntValue(0)
		case Text:
			switch strings.ToLower(strings.TrimSpace(v.Str)) {
			case "t", "true", "1", "yes", "on", "y":
				return IntValue(1)
			case "f", "false", "0", "no", "off", "n":
				return IntValue(0)
			}
		}
	case ClassReal:
		switch v.Kind {
		case Integer:
			return RealValue(float64(v.Int))
		case Text:
			if f, err := strconv.ParseFloat(strings.TrimSpace(v.Str), 64); err == nil {
				return RealValue(f)
			}
		}
	case ClassInteger:
		switch v.Kind {
		case Real:
			f := v.Float
			if f == math.Trunc(f) && math.Abs(f) < 1<<63 {
				return IntValue(int64(f))
			}
		case Text:
			if i, err := strconv.ParseInt(strings.TrimSpace(v.Str), 10, 64); err == nil {
				return IntValue(i)
			}
		}
	case ClassDecimal:
		switch v.Kind {
		case Integer:
			return TextValue(strconv.FormatInt(v.Int, 10))
		case Real:
			return TextValue(FormatDecimalFloat(v.Float))
		case Text:
			if s, ok := CanonicalDecimal(v.Str); ok {
				return TextValue(s)
			}
		}
	case ClassDateTime:
		if v.Kind == Text {
			return TextValue(CanonicalDateTime(v.Str))
		}
	}
	return v
}

// FormatDecimalFloat renders a float in the canonical decimal form: the
// shortest decimal that reads back as the same float, without exponent.
func FormatDecimalFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	s, _ := CanonicalDecimal(strconv.FormatFloat(f, 'f', -1, 64))
	return s
}

// CanonicalDecimal normalizes a decimal number written in plain or
// exponent notation to the canonical decimal text. It reports false if s
// is not a number.
func CanonicalDecimal(s string) (string, bool) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(strings.TrimLeft(s, "+")) {
	case "nan":
		return "NaN", true
	case "infinity", "inf":
		return "Infinity", true
	case "-infinity", "-inf":
		return "-Infinity", true
	}
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	exp := 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		e, err := strconv.Atoi(s[i+1:])
		if err != nil || e > 1<<20 || e < -(1<<20) {
			return "", false
		}
		exp, s = e, s[:i]
	}
	intPart, frac, _ := strings.Cut(s, ".")
	if intPart == "" && frac == "" {
		return "", false
	}
	for _, part := range []string{intPart, frac} {
		for i := 0; i < len(part); i++ {
			if part[i] < '0' || part[i] > '9' {
				return "", false
			}
		}
	}
	// digits * 10^(exp - len(frac))
	digits := intPart + frac
	point := len(intPart) + exp // position of the decimal point in digits
	if point < 0 {
		digits = strings.Repeat("0", -point) + digits
		point = 0
	}
	if point > len(digits) {
		digits += strings.Repeat("0", point-len(digits))
	}
	ip := strings.TrimLeft(digits[:point], "0")
	fp := strings.TrimRight(digits[point:], "0")
	if ip == "" {
		ip = "0"
	}
	out := ip
	if fp != "" {
		out += "." + fp
	}
	if neg && out != "0" {
		out = "-" + out
	}
	return out, true
}

// CanonicalDateTime normalizes a date, time or timestamp text: a "T"
// separator becomes a space, trailing zeros of fractional seconds go, and
// a zone of "+00", "+00:00" or "+0000" becomes "Z". Other text is returned
// unchanged.
func CanonicalDateTime(s string) string {
	if len(s) >= 19 && s[4] == '-' && s[10] == 'T' {
		s = s[:10] + " " + s[11:]
	}
	// Split off a zone after the seconds.
	body, zone := s, ""
	if i := strings.LastIndexAny(s, "Z+"); i > 0 && strings.Contains(s[:i], ":") {
		body, zone = s[:i], s[i:]
	} else if i := strings.LastIndex(s, "-"); i > 10 && strings.Contains(s[:i], ":") {
		body, zone = s[:i], s[i:]
	}
	switch zone {
	case "+00", "+00:00", "+0000", "-00", "-00:00":
		zone = "Z"
	}
	if dot := strings.LastIndexByte(body, '.'); dot > 0 && strings.Contains(body[:dot], ":") {
		frac := strings.TrimRight(body[dot+1:], "0")
		if strings.Trim(body[dot+1:], "0123456789") == "" {
			if frac == "" {
				body = body[:dot]
			} else {
				body = body[:dot+1] + frac
			}
		}
	}
	return body + zone
}
