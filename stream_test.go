package rowsync

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// intsCases are integer columns with the edges of every layout.
func intsCases() [][]int64 {
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n int, f func() int64) []int64 {
		xs := make([]int64, n)
		for i := range xs {
			xs[i] = f()
		}
		return xs
	}
	return [][]int64{
		{0},
		{-1},
		{math.MaxInt64},
		{math.MinInt64},
		{math.MinInt64, math.MaxInt64, math.MinInt64, 0, -1, math.MaxInt64},
		{7, 7, 7, 7, 7, 7, 7, 7, 7},
		{1, 2, 3, 4, 5, 6, 7, 8, 9, 10},
		{10, 9, 8, 7, 6, 5, 4, 3, 2, 1},
		{math.MaxInt64 - 2, math.MaxInt64 - 1, math.MaxInt64, math.MinInt64, math.MinInt64 + 1},
		random(1000, func() int64 { return rng.Int64N(100000) }),
		random(1000, func() int64 { return int64(rng.Uint64()) }),
		random(999, func() int64 { return rng.Int64N(3) - 1 }),
		random(65, func() int64 { return int64(rng.Uint64() >> rng.IntN(64)) }),
	}
}

func TestIntsRoundTrip(t *testing.T) {
	for ci, xs := range intsCases() {
		lo, hi := slices.Min(xs), slices.Max(xs)
		var dlo, dhi int64
		for i := 1; i < len(xs); i++ {
			d := xs[i] - xs[i-1]
			if i == 1 || d < dlo {
				dlo = d
			}
			if i == 1 || d > dhi {
				dhi = d
			}
		}
		layouts := []struct {
			mode  byte
			base  int64
			width int
		}{
			{intsVarint, 0, 0},
			{intsDelta, 0, 0},
			{intsPacked, lo, bits.Len64(uint64(hi) - uint64(lo))},
			{intsPackedDelta, dlo, bits.Len64(uint64(dhi) - uint64(dlo))},
		}
		_, best, _, _ := intsLayout(xs)
		for _, l := range layouts {
			b := appendIntsAs([]byte{0xAA}, xs, l.mode, l.base, l.width)
			r := &reader{b: b[1:]}
			got := r.ints(len(xs), nil, "test")
			if r.err != nil || len(r.b) != 0 || !slices.Equal(got, xs) {
				t.Fatalf("case %d layout %d: err %v, %d bytes left, round trip %v", ci, l.mode, r.err, len(r.b), slices.Equal(got, xs))
			}
			if len(b)-1 < best {
				t.Errorf("case %d: layout %d takes %d bytes, the chosen one %d", ci, l.mode, len(b)-1, best)
			}
		}
		if b := appendInts(nil, xs); len(b) != best {
			t.Errorf("case %d: appendInts wrote %d bytes, intsLayout said %d", ci, len(b), best)
		}
		// Cut short anywhere, it fails (and never panics).
		b := appendInts(nil, xs)
		for cut := range len(b) {
			r := &reader{b: b[:cut]}
			if r.ints(len(xs), nil, "test"); r.err == nil {
				t.Errorf("case %d: %d of %d bytes decoded without error", ci, cut, len(b))
			}
		}
	}
}

func TestDecimalOf(t *testing.T) {
	for _, c := range []struct {
		f    float64
		m    int64
		e    int
		isOK bool
	}{
		{0, 0, 0, true},
		{1, 1, 0, true},
		{-3, -3, 0, true},
		{23.45, 2345, 2, true},
		{0.1, 1, 1, true},
		{-0.05, -5, 2, true},
		{1e-15, 1, 15, true},
		{1e15, 1e15, 0, true},
		{1 << 53, 0, 0, false}, // above the mantissa bound
		{1e-16, 0, 0, false},
		{0.30000000000000004, 0, 0, false}, // 0.1 + 0.2: 17 digits
		{math.Copysign(0, -1), 0, 0, false},
		{math.Inf(1), 0, 0, false},
		{math.Inf(-1), 0, 0, false},
		{math.NaN(), 0, 0, false},
		{5e-324, 0, 0, false},
	} {
		m, e, ok := decimalOf(c.f)
		if ok != c.isOK || (ok && (m != c.m || e != c.e)) {
			t.Errorf("decimalOf(%v) = %d, %d, %v; want %d, %d, %v", c.f, m, e, ok, c.m, c.e, c.isOK)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 100000 {
		var f float64
		switch rng.IntN(3) {
		case 0:
			f = math.Float64frombits(rng.Uint64())
		case 1:
			f = float64(rng.Int64N(2e9)-1e9) / math.Pow10(rng.IntN(12))
		default:
			f = rng.NormFloat64() * 1000
		}
		if m, e, ok := decimalOf(f); ok && math.Float64bits(decimalValue(m, e)) != math.Float64bits(f) {
			t.Fatalf("decimalOf(%v) = %d, %d: gives %v back", f, m, e, decimalValue(m, e))
		}
	}
}

// randomValue is a value of any class, with the edge cases of each.
func randomValue(rng *rand.Rand, prefix string) Value {
	switch rng.IntN(12) {
	case 0:
		return NullValue()
	case 1:
		return IntValue(int64(rng.Uint64()))
	case 2:
		return IntValue(rng.Int64N(1000))
	case 3:
		return RealValue(float64(rng.IntN(100000)) / 100)
	case 4:
		return RealValue([]float64{math.Copysign(0, -1), math.Inf(1), math.Inf(-1), math.NaN(), math.Float64frombits(0x7ff8000000000123), 5e-324, math.MaxFloat64, 0.1 + 0.2}[rng.IntN(8)])
	case 5:
		return RealValue(math.Float64frombits(rng.Uint64()))
	case 6:
		return TextValue("")
	case 7:
		return TextValue(prefix + fmt.Sprint(rng.IntN(1000)) + "\x00é")
	case 8:
		return TextValue(strings.Repeat("long shared prefix ", 5) + fmt.Sprint(rng.IntN(10)) + strings.Repeat(" long shared suffix", 5))
	case 9:
		b := make([]byte, rng.IntN(40))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return BlobValue(b)
	case 10:
		return BlobValue(nil)
	}
	return TextValue(prefix)
}

func randomVersion(rng *rand.Rand, base int64, nodes []string) Version {
	if rng.IntN(5) == 0 {
		return Version{}
	}
	return Version{HLC: base - rng.Int64N(1<<30), Node: nodes[rng.IntN(len(nodes))]}
}

// streamStep is one call made on an Encoder.
type streamStep struct {
	table *Table
	kind  ChangeKind
	seq   int64
	row   *Row
	flush bool
	check bool
}

// randomStream makes the calls of a stream over tables of several shapes:
// tables switch, checkpoints and flushes fall anywhere, and some blocks
// fill up.
func randomStream(t testing.TB, rng *rand.Rand, per int) []streamStep {
	wide := make([]Column, 300)
	for i := range wide {
		wide[i] = Column{Name: fmt.Sprintf("c%d", i), Class: ClassText}
	}
	var tables []*Table
	for i, def := range []struct {
		cols []Column
		key  []string
	}{
		{[]Column{{Name: "id", Class: ClassInteger}, {Name: "name", Class: ClassText}, {Name: "qty", Class: ClassInteger}, {Name: "price", Class: ClassReal}, {Name: "b", Class: ClassBlob}}, []string{"id"}},
		{[]Column{{Name: "a", Class: ClassText}, {Name: "k", Class: ClassInteger}, {Name: "v", Class: ClassReal}}, []string{"a", "k"}},
		{[]Column{{Name: "only", Class: ClassInteger}}, []string{"only"}},
		{wide, []string{"c0"}},
	} {
		tt, err := NewTable(int64(i+1), fmt.Sprintf("t%d", i), def.cols, def.key, nil)
		if err != nil {
			t.Fatal(err)
		}
		tables = append(tables, tt)
	}
	nodes := []string{"a1", strings.Repeat("n", 32), "z"}
	var steps []streamStep
	seq := int64(0)
	hlc := HLCFromWall(1_700_000_000_000)
	for range 2 + rng.IntN(6) {
		tt := tables[rng.IntN(len(tables))]
		kind := ChangeKind(rng.IntN(2))
		steps = append(steps, streamStep{table: tt, kind: kind})
		n := rng.IntN(per)
		if tt == tables[3] {
			n /= 6
		}
		prefix := []string{"item-", "", "x"}[rng.IntN(3)]
		for range n {
			seq += 1 + rng.Int64N(3)
			hlc += rng.Int64N(1 << 17)
			r := &Row{Live: randomVersion(rng, hlc, nodes), Tomb: randomVersion(rng, hlc, nodes), TombPrev: randomVersion(rng, hlc, nodes)}
			uniform := rng.IntN(2) == 0
			v := Version{HLC: hlc, Node: nodes[0]}
			if uniform {
				r = &Row{Live: v}
			}
			for range tt.Key {
				val := randomValue(rng, prefix)
				for val.IsNull() {
					val = randomValue(rng, prefix)
				}
				r.Key = append(r.Key, val)
			}
			for range len(tt.Columns) - len(tt.Key) {
				c := Cell{Value: randomValue(rng, prefix), V: v}
				if !uniform {
					c.V, c.Prev = randomVersion(rng, hlc, nodes), randomVersion(rng, hlc, nodes)
				}
				r.Cells = append(r.Cells, c)
			}
			steps = append(steps, streamStep{seq: seq, row: r})
			switch rng.IntN(400) {
			case 0:
				steps = append(steps, streamStep{check: true})
			case 1:
				steps = append(steps, streamStep{flush: true})
			}
		}
	}
	return steps
}

func encodeSteps(t testing.TB, w io.Writer, steps []streamStep) int64 {
	e := NewEncoder(w)
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(e.Begin(BeginFrame{Protocol: ProtocolVersion, NodeID: "a1", Name: "a", UpTo: 7}))
	var rows int64
	for _, s := range steps {
		switch {
		case s.table != nil:
			must(e.Table(s.table, s.kind))
		case s.row != nil:
			must(e.Row(s.seq, s.row))
			rows++
		case s.check:
			must(e.Checkpoint([]Cursor{{Table: "t0", Kind: KindLive, Seq: 3}}))
		case s.flush:
			must(e.Flush())
		}
	}
	must(e.Checkpoint(nil))
	must(e.End(rows))
	must(e.Flush())
	return rows
}

func sameVersion(a, b Version) bool { return a == b }

func sameRow(a, b *Row) bool {
	if !slices.EqualFunc(a.Key, b.Key, Value.Equal) || !sameVersion(a.Live, b.Live) || !sameVersion(a.Tomb, b.Tomb) || !sameVersion(a.TombPrev, b.TombPrev) {
		return false
	}
	return slices.EqualFunc(a.Cells, b.Cells, func(x, y Cell) bool {
		return x.Value.Equal(y.Value) && x.Value.Kind == y.Value.Kind && sameVersion(x.V, y.V) && sameVersion(x.Prev, y.Prev)
	})
}

func TestStreamRoundTrip(t *testing.T) {
	for seed := range uint64(8) {
		rng := rand.New(rand.NewPCG(seed, 99))
		steps := randomStream(t, rng, 3000)
		var buf bytes.Buffer
		rows := encodeSteps(t, &buf, steps)
		d := NewDecoder(&buf)
		var got []streamStep
		var count int64
		for {
			f, err := d.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
			switch f.Type {
			case FrameTable:
				got = append(got, streamStep{kind: f.Table.Kind})
			case FrameRow:
				got = append(got, streamStep{seq: f.Seq, row: f.Row})
			case FrameEnd:
				count = f.Count
			}
		}
		if err := d.ExpectEOF(); err != nil {
			t.Fatal(err)
		}
		want := slices.DeleteFunc(slices.Clone(steps), func(s streamStep) bool { return s.check || s.flush })
		if len(got) != len(want) || count != rows {
			t.Fatalf("seed %d: %d frames back of %d, end count %d of %d", seed, len(got), len(want), count, rows)
		}
		for i := range want {
			w, g := want[i], got[i]
			if w.table != nil {
				if g.row != nil || g.kind != w.kind {
					t.Fatalf("seed %d frame %d: want a table header", seed, i)
				}
				continue
			}
			if g.row == nil || g.seq != w.seq || !sameRow(g.row, w.row) {
				t.Fatalf("seed %d frame %d: got seq %d %+v, want seq %d %+v", seed, i, g.seq, g.row, w.seq, w.row)
			}
		}
	}
}

// TestEncoderBlocks checks where the encoder ends its blocks: at a table,
// a checkpoint, a flush, and when a block is full.
func TestEncoderBlocks(t *testing.T) {
	tt, err := NewTable(1, "t", []Column{{Name: "id", Class: ClassInteger}, {Name: "v", Class: ClassBlob}}, []string{"id"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	frames := func(n int, size func(i int) int) []int {
		var buf bytes.Buffer
		e := NewEncoder(&buf)
		e.Begin(BeginFrame{Protocol: ProtocolVersion, NodeID: "a1", UpTo: 1})
		e.Table(tt, KindLive)
		v := Version{HLC: 1 << 40, Node: "a1"}
		for i := range n {
			if err := e.Row(int64(i+1), &Row{Key: []Value{IntValue(int64(i))}, Live: v, Cells: []Cell{{Value: BlobValue(make([]byte, size(i))), V: v}}}); err != nil {
				t.Fatal(err)
			}
		}
		e.End(int64(n))
		e.Flush()
		// The row count of each rows frame.
		var counts []int
		b := buf.Bytes()[len(streamMagic):]
		for len(b) > 0 {
			typ := b[0]
			l, k := uvarintAt(b[1:])
			p := b[1+k : 1+k+int(l)]
			if typ == FrameRow {
				c, _ := uvarintAt(p)
				counts = append(counts, int(c))
			}
			b = b[1+k+int(l):]
		}
		return counts
	}
	if got := frames(10000, func(int) int { return 1 }); !slices.Equal(got, []int{MaxBlockRows, MaxBlockRows, 10000 - 2*MaxBlockRows}) {
		t.Errorf("10000 small rows went in blocks of %v", got)
	}
	if got := frames(5, func(int) int { return 300 << 10 }); !slices.Equal(got, []int{3, 2}) {
		t.Errorf("five rows of 300 KiB went in blocks of %v", got)
	}
	// Rows of 300 columns: as many as fit in MaxBlockCells.
	wide := make([]Column, 300)
	for i := range wide {
		wide[i] = Column{Name: fmt.Sprintf("c%d", i), Class: ClassInteger}
	}
	wt, err := NewTable(2, "w", wide, []string{"c0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	e := NewEncoder(&buf)
	e.Begin(BeginFrame{Protocol: ProtocolVersion, NodeID: "a1", UpTo: 1})
	e.Table(wt, KindLive)
	for i := range 500 {
		r := &Row{Key: []Value{IntValue(int64(i))}, Cells: make([]Cell, 299)}
		if err := e.Row(int64(i), r); err != nil {
			t.Fatal(err)
		}
		if want := (i + 1) / (MaxBlockCells / 300); e.blk.n != i+1-want*(MaxBlockCells/300) {
			t.Fatalf("after %d rows of 300 columns the block holds %d", i+1, e.blk.n)
		}
	}
	// A row too large for a block goes alone.
	if got := frames(4, func(i int) int { return []int{100 << 10, 2 << 20, 100 << 10, 1}[i] }); !slices.Equal(got, []int{1, 1, 2}) {
		t.Errorf("rows of 100 KiB, 2 MiB, 100 KiB and 1 byte went in blocks of %v", got)
	}
}

func uvarintAt(b []byte) (uint64, int) {
	r := &reader{b: b}
	x := r.uvarint("test")
	return x, len(b) - len(r.b)
}

// decodeAll reads a stream to its end or its first error; it must never
// panic.
func decodeAll(b []byte) error {
	d := NewDecoder(bytes.NewReader(b))
	for {
		_, err := d.Next()
		if err == io.EOF {
			return d.ExpectEOF()
		}
		if err != nil {
			return err
		}
	}
}

// TestStreamCorruption cuts a stream at every byte and flips bytes at
// random: the decoder reports an error (or, for a flip, may read other
// valid data), never panics.
func TestStreamCorruption(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	steps := randomStream(t, rng, 300)
	var buf bytes.Buffer
	encodeSteps(t, &buf, steps)
	full := buf.Bytes()
	if err := decodeAll(full); err != nil {
		t.Fatal(err)
	}
	// Every cut in the first frames, then cuts spread over the rest.
	step := max(1, len(full)/5000)
	if testing.Short() {
		step = max(1, len(full)/2000)
	}
	for cut := 0; cut < len(full); cut += min(step, 1+cut/1024*step) {
		err := decodeAll(full[:cut])
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("stream cut at %d of %d: %v", cut, len(full), err)
		}
	}
	flips := 3000
	if testing.Short() {
		flips = 300
	}
	for range flips {
		b := slices.Clone(full)
		for range 1 + rng.IntN(4) {
			b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(255))
		}
		if err := decodeAll(b); err != nil && !errors.Is(err, ErrMalformed) && !errors.As(err, new(*StreamError)) {
			t.Fatalf("corrupt stream: %v", err)
		}
	}
}

// TestDecoderAllocatesLittle decodes a rows frame of the most rows and
// cells a frame may have, in a few dozen bytes: what it allocates is
// bounded by the limits, not by anything the frame claims.
func TestDecoderAllocatesLittle(t *testing.T) {
	cols := make([]Column, 16)
	for i := range cols {
		cols[i] = Column{Name: fmt.Sprintf("c%d", i), Class: ClassInteger}
	}
	tt, err := NewTable(1, "t", cols, []string{"c0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := MaxBlockCells / len(cols)
	// n values of x, bit-packed in no bits.
	zero := func(x int64) []byte { return append(binary.AppendVarint([]byte{intsPacked}, x), 0) }
	p := binary.AppendUvarint(nil, uint64(n))
	p = append(p, zero(1)...)                       // seq
	p = append(p, zero(1)...)                       // one version each
	p = append(p, zero(5)...)                       // hlc
	p = append(p, zero(1)...)                       // node
	p = slices.Concat(p, zero(1), zero(0), zero(0)) // live, tomb, tomb_prev
	for range 15 {
		p = append(p, zero(1)...) // v
	}
	for range 15 {
		p = append(p, zero(0)...) // prev
	}
	for range cols {
		p = append(p, zero(tagInteger)...)
		p = append(p, zero(42)...)
	}
	var buf bytes.Buffer
	e := NewEncoder(&buf)
	e.Begin(BeginFrame{Protocol: ProtocolVersion, NodeID: "a1", UpTo: 1})
	e.Table(tt, KindLive)
	e.frame(FrameNode, appendString(nil, "a1"))
	e.frame(FrameRow, p)
	e.Flush()
	if len(p) > 400 {
		t.Fatalf("frame of %d bytes", len(p))
	}
	d := NewDecoder(&buf)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range 3 {
		f, err := d.Next()
		if err != nil {
			t.Fatal(err)
		}
		if i == 2 && (f.Type != FrameRow || len(f.Row.Cells) != 15 || f.Row.Cells[14].Value.Int != 42) {
			t.Fatalf("first row %+v", f.Row)
		}
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
		t.Errorf("a %d-byte rows frame of %d rows made the decoder allocate %d MiB", len(p), n, grew>>20)
	}
	rows := 1
	for {
		f, err := d.Next()
		if err != nil {
			if err == io.EOF || errors.Is(err, ErrMalformed) {
				break
			}
			t.Fatal(err)
		}
		if f.Type == FrameRow {
			rows++
		}
	}
	if rows != n {
		t.Errorf("%d rows, want %d", rows, n)
	}
}

func FuzzDecoder(f *testing.F) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 1))
		steps := randomStream(f, rng, 30)
		var buf bytes.Buffer
		encodeSteps(f, &buf, steps)
		if buf.Len() < 4<<10 { // small seeds: the fuzzer mutates them faster
			f.Add(buf.Bytes())
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		decodeAll(b)
	})
}

// FuzzRowsFrame fuzzes the payload of a rows frame of a table of every
// class, after a valid start of the stream.
func FuzzRowsFrame(f *testing.F) {
	tt, err := NewTable(1, "t", []Column{{Name: "id", Class: ClassInteger}, {Name: "name", Class: ClassText}, {Name: "qty", Class: ClassInteger}, {Name: "price", Class: ClassReal}, {Name: "b", Class: ClassBlob}}, []string{"id"}, nil)
	if err != nil {
		f.Fatal(err)
	}
	var head bytes.Buffer
	e := NewEncoder(&head)
	e.Begin(BeginFrame{Protocol: ProtocolVersion, NodeID: "a1", UpTo: 1})
	e.Table(tt, KindLive)
	e.nodeIndex("a1")
	e.nodeIndex("b2")
	e.Flush()
	rng := rand.New(rand.NewPCG(7, 7))
	nodes := []string{"a1", "b2"}
	for _, n := range []int{1, 2, 5, 40} {
		var b blockEncoder
		b.init(1, 4)
		for i := range n {
			hlc := HLCFromWall(1e12) + int64(i)<<16
			r := &Row{Key: []Value{IntValue(int64(i))}, Live: randomVersion(rng, hlc, nodes), Tomb: randomVersion(rng, hlc, nodes)}
			for range 4 {
				r.Cells = append(r.Cells, Cell{Value: randomValue(rng, "item-"), V: randomVersion(rng, hlc, nodes), Prev: randomVersion(rng, hlc, nodes)})
			}
			b.add(int64(i), r, func(id string) (uint64, error) { return uint64(slices.Index(nodes, id) + 1), nil })
		}
		p, _ := b.encode(nil)
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		b := slices.Clone(head.Bytes())
		b = append(b, FrameRow)
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
		decodeAll(b)
	})
}

// benchRows are n freshly inserted rows of the table of `rowsync bench`.
func benchRows(n int) []*Row {
	rows := make([]*Row, n)
	for i := range rows {
		v := Version{HLC: HLCFromWall(1700000000000) + int64(i), Node: "0123456789abcdef0123456789abcdef"}
		rows[i] = &Row{Key: []Value{IntValue(int64(i))}, Live: v, Cells: []Cell{
			{Value: TextValue("item-" + strconv.Itoa(i)), V: v},
			{Value: IntValue(int64(i % 1000)), V: v},
			{Value: RealValue(float64(i%10000) / 100), V: v},
			{Value: TextValue("a note about item " + strconv.Itoa(i*7919%100000)), V: v},
		}}
	}
	return rows
}

// benchEncode writes rows as Send does: a checkpoint every 1000 rows.
func benchEncode(tb testing.TB, rows []*Row, w io.Writer) {
	t, err := NewTable(1, "item", []Column{{Name: "id", Class: "integer"}, {Name: "name", Class: "text"}, {Name: "qty", Class: "integer"}, {Name: "price", Class: "real"}, {Name: "note", Class: "text"}}, []string{"id"}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	e := NewEncoder(w)
	e.Begin(BeginFrame{Protocol: ProtocolVersion, NodeID: "x", Name: "x", UpTo: 1})
	e.Table(t, KindLive)
	for i, r := range rows {
		e.Row(int64(i+1), r)
		if (i+1)%1000 == 0 {
			e.Checkpoint([]Cursor{{Table: "item", Seq: int64(i + 1)}})
			e.Flush()
		}
	}
	e.Checkpoint(nil)
	e.End(int64(len(rows)))
	e.Flush()
}

func BenchmarkStreamEncode(b *testing.B) {
	rows := benchRows(100000)
	b.ResetTimer()
	for range b.N {
		benchEncode(b, rows, io.Discard)
	}
}

func BenchmarkStreamDecode(b *testing.B) {
	var buf bytes.Buffer
	benchEncode(b, benchRows(100000), &buf)
	data := buf.Bytes()
	// A live heap of the size a receiving node has, so that the
	// collector runs about as often.
	ballast := make([]byte, 64<<20)
	defer runtime.KeepAlive(ballast)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		d := NewDecoder(bytes.NewReader(data))
		for {
			_, err := d.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}
