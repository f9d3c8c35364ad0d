package rowsync

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// Kind is the storage class of a Value. The five kinds are SQLite's storage
// classes; every engine's values are carried as one of them (see
// docs/PROTOCOL.md for the canonical encoding of each type class).
type Kind uint8

// The storage classes.
const (
	Null Kind = iota
	Integer
	Real
	Text
	Blob
)

func (k Kind) String() string {
	switch k {
	case Null:
		return "null"
	case Integer:
		return "integer"
	case Real:
		return "real"
	case Text:
		return "text"
	case Blob:
		return "blob"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Value is one column value with its storage class. Text and Blob share the
// Str field (Text may hold any bytes, including NUL).
type Value struct {
	Kind  Kind
	Int   int64
	Float float64
	Str   string
}

// Constructors for values.
func NullValue() Value          { return Value{} }
func IntValue(i int64) Value    { return Value{Kind: Integer, Int: i} }
func RealValue(f float64) Value { return Value{Kind: Real, Float: f} }
func TextValue(s string) Value  { return Value{Kind: Text, Str: s} }
func BlobValue(b []byte) Value  { return Value{Kind: Blob, Str: string(b)} }
func (v Value) IsNull() bool    { return v.Kind == Null }
func (v Value) Equal(o Value) bool {
	return v.Kind == o.Kind && v.Int == o.Int && sameFloat(v.Float, o.Float) && v.Str == o.Str
}

func sameFloat(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) }

// ValueOf converts a Go value as returned by a database/sql driver into a
// Value. It accepts nil, integers, floats, string, []byte and bool.
func ValueOf(x any) (Value, error) {
	switch x := x.(type) {
	case nil:
		return Value{}, nil
	case int64:
		return IntValue(x), nil
	case int:
		return IntValue(int64(x)), nil
	case int32:
		return IntValue(int64(x)), nil
	case float64:
		return RealValue(x), nil
	case float32:
		return RealValue(float64(x)), nil
	case string:
		return TextValue(x), nil
	case []byte:
		return BlobValue(x), nil
	case bool:
		if x {
			return IntValue(1), nil
		}
		return IntValue(0), nil
	}
	return Value{}, fmt.Errorf("unsupported value type %T", x)
}

// Any returns the value as a database/sql argument.
func (v Value) Any() any {
	switch v.Kind {
	case Integer:
		return v.Int
	case Real:
		return v.Float
	case Text:
		return v.Str
	case Blob:
		return []byte(v.Str)
	}
	return nil
}

// String renders the value for people: NULL, numbers as numbers, text quoted
// with Go escapes, blobs as x'hex'.
func (v Value) String() string {
	switch v.Kind {
	case Integer:
		return strconv.FormatInt(v.Int, 10)
	case Real:
		return strconv.FormatFloat(v.Float, 'g', -1, 64)
	case Text:
		return strconv.Quote(v.Str)
	case Blob:
		if len(v.Str) > 64 {
			return fmt.Sprintf("x'%s…' (%d bytes)", hex.EncodeToString([]byte(v.Str[:32])), len(v.Str))
		}
		return "x'" + hex.EncodeToString([]byte(v.Str)) + "'"
	}
	return "NULL"
}

// JSON returns a JSON-friendly rendering: numbers, strings (valid UTF-8 text
// only), nil, or {"blob": hex} / {"text_hex": hex} for bytes that are not
// valid UTF-8.
func (v Value) JSON() any {
	switch v.Kind {
	case Integer:
		return v.Int
	case Real:
		if math.IsInf(v.Float, 0) || math.IsNaN(v.Float) {
			return map[string]string{"real": strconv.FormatFloat(v.Float, 'g', -1, 64)}
		}
		return v.Float
	case Text:
		if utf8.ValidString(v.Str) {
			return v.Str
		}
		return map[string]string{"text_hex": hex.EncodeToString([]byte(v.Str))}
	case Blob:
		return map[string]string{"blob": hex.EncodeToString([]byte(v.Str))}
	}
	return nil
}

// Value tags of the binary encoding (docs/PROTOCOL.md, "Values").
const (
	tagNull    = 0
	tagInteger = 1
	tagReal    = 2
	tagText    = 3
	tagBlob    = 4
)

// AppendValue appends the binary encoding of v to b.
func AppendValue(b []byte, v Value) []byte {
	switch v.Kind {
	case Integer:
		b = append(b, tagInteger)
		return binary.AppendVarint(b, v.Int)
	case Real:
		b = append(b, tagReal)
		return binary.LittleEndian.AppendUint64(b, math.Float64bits(v.Float))
	case Text:
		b = append(b, tagText)
		b = binary.AppendUvarint(b, uint64(len(v.Str)))
		return append(b, v.Str...)
	case Blob:
		b = append(b, tagBlob)
		b = binary.AppendUvarint(b, uint64(len(v.Str)))
		return append(b, v.Str...)
	}
	return append(b, tagNull)
}

// ErrMalformed reports bytes that do not decode: a truncated or corrupt
// frame, row, value or stored metadata.
var ErrMalformed = errors.New("malformed data")

// reader decodes the primitives of the binary encoding from a byte slice.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: bad %s", ErrMalformed, what)
	}
}

func (r *reader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	x, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return x
}

func (r *reader) varint(what string) int64 {
	if r.err != nil {
		return 0
	}
	x, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return x
}

func (r *reader) byte(what string) byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.fail(what)
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) bytes(n uint64, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.fail(what)
		return nil
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

func (r *reader) string(what string) string {
	n := r.uvarint(what)
	return string(r.bytes(n, what))
}

func (r *reader) value() Value {
	switch r.byte("value tag") {
	case tagNull:
		return Value{}
	case tagInteger:
		return IntValue(r.varint("integer"))
	case tagReal:
		p := r.bytes(8, "real")
		if p == nil {
			return Value{}
		}
		return RealValue(math.Float64frombits(binary.LittleEndian.Uint64(p)))
	case tagText:
		return TextValue(r.string("text"))
	case tagBlob:
		n := r.uvarint("blob")
		return Value{Kind: Blob, Str: string(r.bytes(n, "blob"))}
	default:
		r.fail("value tag")
		return Value{}
	}
}

// EncodeValues encodes a list of values (used for keys and stored rows).
func EncodeValues(vs []Value) []byte {
	b := binary.AppendUvarint(nil, uint64(len(vs)))
	for _, v := range vs {
		b = AppendValue(b, v)
	}
	return b
}

// DecodeValues is the inverse of EncodeValues.
func DecodeValues(b []byte) ([]Value, error) {
	r := &reader{b: b}
	n := r.uvarint("value count")
	if n > uint64(len(b)) {
		return nil, fmt.Errorf("%w: value count %d", ErrMalformed, n)
	}
	vs := make([]Value, n)
	for i := range vs {
		vs[i] = r.value()
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes")
	}
	return vs, r.err
}

// keyString is a map key for a primary key.
func keyString(key []Value) string { return string(EncodeValues(key)) }

// FormatKey renders a primary key for people: "1" or "(1, 'a')".
func FormatKey(key []Value) string {
	if len(key) == 1 {
		return key[0].String()
	}
	var buf bytes.Buffer
	buf.WriteByte('(')
	for i, v := range key {
		if i > 0 {
			buf.WriteString(", ")
		}
		buf.WriteString(v.String())
	}
	buf.WriteByte(')')
	return buf.String()
}
