package rowsync

import (
	"encoding/binary"
	"math"
	"math/bits"
	"unsafe"
)

// Rows frames: a block of rows of one table, column by column
// (docs/PROTOCOL.md §5.6). Every number in a block is part of an integer
// column, which the encoder writes in whichever of four layouts (varints,
// varints of differences, bit-packed, bit-packed differences) is the
// smallest, so that a column of equal values (one version for a whole
// insert, a constant version index) costs a few bytes per block and a
// column of unrelated values (random keys of updated rows) costs close to
// its entropy. Text and blob bytes follow their column's lengths, and zstd
// on the transport does the rest.

const (
	// MaxBlockRows bounds the rows of one Rows frame.
	MaxBlockRows = 4096
	// MaxBlockCells bounds the rows of one Rows frame times the columns of
	// its table (key columns included), and so what decoding one frame
	// allocates whatever few bytes it has.
	MaxBlockCells = 1 << 16
	// blockBytes ends a block once its text, blob and real bytes reach it.
	blockBytes = 1 << 20
)

// Layouts of an integer column.
const (
	intsVarint      = 0 // zigzag varints
	intsDelta       = 1 // zigzag varints of the differences, the first from 0
	intsPacked      = 2 // min, width, (x - min) in width bits each
	intsPackedDelta = 3 // first, min, width, (difference - min) in width bits each
)

// tagDecimal is the value tag, in a Rows frame, of a REAL carried as a
// decimal mantissa with its column's exponent.
const tagDecimal = 5

// maxDecimalExp bounds the decimal exponent of a column's reals: 10^15 and
// every mantissa below 2^53 are exact doubles, so one IEEE division gives
// the value.
const maxDecimalExp = 15

// maxAffix bounds the prefix and the suffix that all of a column's texts
// and blobs in a block share, and so how much decoding can expand them.
const maxAffix = 64

// Layouts of the HLCs of a row's version entries after its first.
const (
	restAbsolute = 0 // the HLC itself
	restRelative = 1 // the previous entry's HLC minus this one's
)

var pow10f = [maxDecimalExp + 1]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15}

var pow10i = [maxDecimalExp + 1]int64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15}

const maxMantissa = 1<<53 - 1

func zigzag(x int64) uint64 { return uint64(x<<1) ^ uint64(x>>63) }

func uvarintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

// intsLayout picks the smallest layout of xs and returns it with its
// size in bytes, its base (min) and bit width for the packed layouts.
func intsLayout(xs []int64) (mode byte, size int, base int64, width int) {
	k := len(xs)
	if same(xs) {
		// One value: packed in no bits unless a varint or two is smaller.
		x := xs[0]
		plain := k * uvarintLen(zigzag(x))
		if packed := 1 + uvarintLen(zigzag(x)); packed < plain {
			return intsPacked, packed + 1, x, 0
		}
		return intsVarint, plain + 1, 0, 0
	}
	var plain, delta int
	lo, hi := xs[0], xs[0]
	dlo, dhi := int64(0), int64(0)
	prev := int64(0)
	for i, x := range xs {
		d := x - prev
		prev = x
		plain += uvarintLen(zigzag(x))
		delta += uvarintLen(zigzag(d))
		lo, hi = min(lo, x), max(hi, x)
		switch {
		case i == 1:
			dlo, dhi = d, d
		case i > 1:
			dlo, dhi = min(dlo, d), max(dhi, d)
		}
	}
	mode, size = intsVarint, plain
	if delta < size {
		mode, size = intsDelta, delta
	}
	w := bits.Len64(uint64(hi) - uint64(lo))
	if s := 1 + uvarintLen(zigzag(lo)) + (k*w+7)/8; s < size {
		mode, size, base, width = intsPacked, s, lo, w
	}
	if k > 1 {
		dw := bits.Len64(uint64(dhi) - uint64(dlo))
		if s := 1 + uvarintLen(zigzag(xs[0])) + uvarintLen(zigzag(dlo)) + ((k-1)*dw+7)/8; s < size {
			mode, size, base, width = intsPackedDelta, s, dlo, dw
		}
	}
	return mode, size + 1, base, width
}

// same reports whether all of xs (not empty) are equal.
func same(xs []int64) bool {
	x := xs[0]
	for _, y := range xs[1:] {
		if y != x {
			return false
		}
	}
	return true
}

// appendInts appends the integer column xs; its length is known to the
// reader. An empty column takes no bytes.
func appendInts(b []byte, xs []int64) []byte {
	if len(xs) == 0 {
		return b
	}
	mode, _, base, width := intsLayout(xs)
	return appendIntsAs(b, xs, mode, base, width)
}

// appendIntsAs appends xs in the given layout.
func appendIntsAs(b []byte, xs []int64, mode byte, base int64, width int) []byte {
	b = append(b, mode)
	switch mode {
	case intsVarint:
		for _, x := range xs {
			b = binary.AppendVarint(b, x)
		}
	case intsDelta:
		prev := int64(0)
		for _, x := range xs {
			b = binary.AppendVarint(b, x-prev)
			prev = x
		}
	case intsPacked:
		b = binary.AppendVarint(b, base)
		b = append(b, byte(width))
		b = appendPacked(b, xs, base, uint(width), false, 0)
	case intsPackedDelta:
		b = binary.AppendVarint(b, xs[0])
		b = binary.AppendVarint(b, base)
		b = append(b, byte(width))
		b = appendPacked(b, xs[1:], base, uint(width), true, xs[0])
	}
	return b
}

// appendPacked appends x - base (or, with delta, the difference from the
// previous value minus base) in w bits each, least significant bit first,
// in ceil(len(xs)*w/8) bytes.
func appendPacked(b []byte, xs []int64, base int64, w uint, delta bool, prev int64) []byte {
	if w == 0 {
		return b
	}
	var acc uint64
	var n uint // bits held in acc
	for _, x := range xs {
		v := x
		if delta {
			v, prev = x-prev, x
		}
		u := uint64(v) - uint64(base)
		acc |= u << n
		if n+w >= 64 {
			b = binary.LittleEndian.AppendUint64(b, acc)
			acc = u >> (64 - n) // 0 when n is 0: Go shifts by 64 give 0
			n = n + w - 64
		} else {
			n += w
		}
	}
	for n > 0 {
		b = append(b, byte(acc))
		acc >>= 8
		n -= min(n, 8)
	}
	return b
}

// ints reads an integer column of k values into dst's storage.
func (r *reader) ints(k int, dst []int64, what string) []int64 {
	dst = dst[:0]
	if k == 0 || r.err != nil {
		return dst
	}
	if cap(dst) < k {
		dst = make([]int64, 0, k)
	}
	switch mode := r.byte(what); mode {
	case intsVarint, intsDelta:
		prev := int64(0)
		for range k {
			x, n := binary.Varint(r.b)
			if n <= 0 {
				r.fail(what)
				return dst[:0]
			}
			r.b = r.b[n:]
			if mode == intsDelta {
				x += prev
				prev = x
			}
			dst = append(dst, x)
		}
	case intsPacked, intsPackedDelta:
		m := k
		var first int64
		if mode == intsPackedDelta {
			first = r.varint(what)
			m--
		}
		base := r.varint(what)
		w := uint(r.byte(what))
		if r.err != nil {
			return dst[:0]
		}
		if w > 64 {
			r.fail(what + " (bit width)")
			return dst[:0]
		}
		p := r.bytes(uint64((m*int(w)+7)/8), what)
		if r.err != nil {
			return dst[:0]
		}
		prev := first
		if mode == intsPackedDelta {
			dst = append(dst, first)
		}
		if w == 0 {
			// Every value (or difference) is base.
			for range m {
				if mode == intsPackedDelta {
					prev += base
					dst = append(dst, prev)
				} else {
					dst = append(dst, base)
				}
			}
			return dst
		}
		mask := uint64(1)<<w - 1 // all ones for w = 64
		var bit uint
		for range m {
			i := int(bit >> 3)
			sh := bit & 7
			var word uint64
			if i+8 <= len(p) {
				word = binary.LittleEndian.Uint64(p[i:])
			} else {
				for j := 0; i+j < len(p); j++ {
					word |= uint64(p[i+j]) << (8 * j)
				}
			}
			u := word >> sh
			if sh+w > 64 {
				u |= uint64(p[i+8]) << (64 - sh)
			}
			x := int64(uint64(base) + u&mask)
			if mode == intsPackedDelta {
				x += prev
				prev = x
			}
			dst = append(dst, x)
			bit += w
		}
	default:
		r.fail(what + " (layout)")
		return dst[:0]
	}
	return dst
}

// decimalOf returns f as m / 10^e with the smallest e, if there is one with
// e <= maxDecimalExp and |m| <= maxMantissa that gives f's exact bits back.
func decimalOf(f float64) (int64, int, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, 0, false
	}
	for e := 0; e <= maxDecimalExp; e++ {
		s := math.Round(f * pow10f[e])
		if math.Abs(s) > maxMantissa {
			return 0, 0, false
		}
		if m := int64(s); math.Float64bits(decimalValue(m, e)) == math.Float64bits(f) {
			return m, e, true
		}
	}
	return 0, 0, false
}

// decimalValue is m / 10^e in IEEE double arithmetic: exact operands, one
// correctly rounded division.
func decimalValue(m int64, e int) float64 {
	if e == 0 {
		return float64(m)
	}
	return float64(m) / pow10f[e]
}

// valueBytes is what v adds to a block's bytes (see blockBytes).
func valueBytes(v Value) int {
	switch v.Kind {
	case Real:
		return 8
	case Text, Blob:
		return len(v.Str)
	}
	return 0
}

// rowBytes is what r adds to a block's bytes.
func rowBytes(r *Row) int {
	n := 0
	for _, v := range r.Key {
		n += valueBytes(v)
	}
	for i := range r.Cells {
		n += valueBytes(r.Cells[i].Value)
	}
	return n
}

// blockColumn gathers one column's values of a block.
type blockColumn struct {
	tags  []int64
	ints  []int64
	reals []float64
	lens  []int64 // lengths of texts and blobs, whose bytes follow each other in data
	data  []byte
	// scratch of encode
	mant     []int64
	dec      []bool
	mid      []int64
	pre, suf int // the lengths of the shared prefix and suffix
}

func (c *blockColumn) add(v Value) {
	switch v.Kind {
	case Integer:
		c.tags = append(c.tags, tagInteger)
		c.ints = append(c.ints, v.Int)
	case Real:
		c.tags = append(c.tags, tagReal)
		c.reals = append(c.reals, v.Float)
	case Text, Blob:
		c.tags = append(c.tags, int64(v.Kind)) // tagText, tagBlob
		c.lens = append(c.lens, int64(len(v.Str)))
		c.data = append(c.data, v.Str...)
	default:
		c.tags = append(c.tags, tagNull)
	}
}

func (c *blockColumn) reset() {
	c.tags, c.ints, c.reals, c.lens, c.data = c.tags[:0], c.ints[:0], c.reals[:0], c.lens[:0], c.data[:0]
}

// decimals decides which of the column's reals go as decimal mantissas,
// and the column's exponent: the one that makes the mantissas smallest.
func (c *blockColumn) decimals() (exp int) {
	c.mant = c.mant[:0]
	c.dec = c.dec[:0]
	type dm struct {
		m int64
		e int
	}
	ms := make([]dm, len(c.reals))
	var seen [maxDecimalExp + 1]bool
	for i, f := range c.reals {
		if m, e, ok := decimalOf(f); ok {
			ms[i] = dm{m, e}
			seen[e] = true
		} else {
			ms[i] = dm{e: -1}
		}
	}
	scaled := func(x dm, e int) (int64, bool) {
		if x.e < 0 || x.e > e {
			return 0, false
		}
		p := pow10i[e-x.e]
		if x.m > maxMantissa/p || x.m < -maxMantissa/p {
			return 0, false
		}
		return x.m * p, true
	}
	best := -1
	for e, ok := range seen {
		if !ok {
			continue
		}
		cost := 0
		for _, x := range ms {
			if m, ok := scaled(x, e); ok {
				cost += uvarintLen(zigzag(m))
			} else {
				cost += 9
			}
		}
		if best < 0 || cost < best {
			best, exp = cost, e
		}
	}
	for i, x := range ms {
		m, ok := scaled(x, exp)
		// Exact by construction; checked all the same.
		ok = ok && math.Float64bits(decimalValue(m, exp)) == math.Float64bits(c.reals[i])
		c.dec = append(c.dec, ok)
		if ok {
			c.mant = append(c.mant, m)
		}
	}
	return exp
}

func (c *blockColumn) encode(b []byte) []byte {
	exp := 0
	if len(c.reals) > 0 {
		exp = c.decimals()
		j := 0
		for i, t := range c.tags {
			if t == tagReal {
				if c.dec[j] {
					c.tags[i] = tagDecimal
				}
				j++
			}
		}
	}
	b = appendInts(b, c.tags)
	b = appendInts(b, c.ints)
	if len(c.mant) > 0 {
		b = append(b, byte(exp))
		b = appendInts(b, c.mant)
	}
	for i, f := range c.reals {
		if !c.dec[i] {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
		}
	}
	if len(c.lens) > 0 {
		b = c.encodeStrings(b)
	}
	c.mant = c.mant[:0]
	return b
}

// encodeStrings appends the prefix and the suffix all the column's texts
// and blobs share (up to maxAffix bytes each), then the lengths of what
// lies between; appendMiddles appends those middle parts.
func (c *blockColumn) encodeStrings(b []byte) []byte {
	var pre, suf []byte
	at := 0
	for i, l := range c.lens {
		s := c.data[at : at+int(l)]
		at += int(l)
		if i == 0 {
			pre = s[:min(len(s), maxAffix)]
			continue
		}
		k := 0
		for k < len(pre) && k < len(s) && pre[k] == s[k] {
			k++
		}
		pre = pre[:k]
	}
	at = 0
	for i, l := range c.lens {
		s := c.data[at+len(pre) : at+int(l)]
		at += int(l)
		if i == 0 {
			suf = s[len(s)-min(len(s), maxAffix):]
			continue
		}
		k := 0
		for k < len(suf) && k < len(s) && suf[len(suf)-1-k] == s[len(s)-1-k] {
			k++
		}
		suf = suf[len(suf)-k:]
	}
	b = binary.AppendUvarint(b, uint64(len(pre)))
	b = append(b, pre...)
	b = binary.AppendUvarint(b, uint64(len(suf)))
	b = append(b, suf...)
	c.pre, c.suf = len(pre), len(suf)
	if len(pre)+len(suf) == 0 {
		return appendInts(b, c.lens)
	}
	cut := int64(len(pre) + len(suf))
	mid := c.mid[:0]
	for _, l := range c.lens {
		mid = append(mid, l-cut)
	}
	c.mid = mid
	return appendInts(b, mid)
}

// appendMiddles appends the column's texts and blobs without the prefix
// and suffix that encodeStrings wrote.
func (c *blockColumn) appendMiddles(b []byte) []byte {
	if c.pre+c.suf == 0 {
		return append(b, c.data...)
	}
	at := 0
	for _, l := range c.lens {
		b = append(b, c.data[at+c.pre:at+int(l)-c.suf]...)
		at += int(l)
	}
	return b
}

// blockEncoder gathers the rows of one Rows frame.
type blockEncoder struct {
	n       int
	bytes   int
	seq     []int64
	nver    []int64
	first   []int64 // HLC of each row's first (newest) version entry
	rest    []int64 // HLCs of the later entries
	restRel []int64 // the same, as the previous entry's HLC minus this one's
	node    []int64 // node index of every entry
	refs    [][]int64
	cols    []blockColumn
	// scratch of add
	vers  []Version
	ref   []int64
	perm  []int
	nodes []int64
}

func (b *blockEncoder) init(nkey, ncells int) {
	b.reset()
	b.refs = make([][]int64, 3+2*ncells)
	b.cols = make([]blockColumn, nkey+ncells)
}

func (b *blockEncoder) reset() {
	b.n, b.bytes = 0, 0
	b.seq, b.nver, b.first, b.rest, b.restRel, b.node = b.seq[:0], b.nver[:0], b.first[:0], b.rest[:0], b.restRel[:0], b.node[:0]
	for i := range b.refs {
		b.refs[i] = b.refs[i][:0]
	}
	for i := range b.cols {
		b.cols[i].reset()
	}
}

// add adds r to the block; nodeIndex gives (and declares) a node's index.
func (b *blockEncoder) add(seq int64, r *Row, nodeIndex func(string) (uint64, error)) error {
	// The row's distinct versions, in order of first use: live, tomb,
	// tomb_prev, each cell's v, then each cell's prev.
	vers, ref := b.vers[:0], b.ref[:0]
	idx := func(v Version) {
		if v.IsZero() {
			ref = append(ref, 0)
			return
		}
		for i, o := range vers {
			if o == v {
				ref = append(ref, int64(i+1))
				return
			}
		}
		vers = append(vers, v)
		ref = append(ref, int64(len(vers)))
	}
	idx(r.Live)
	idx(r.Tomb)
	idx(r.TombPrev)
	for i := range r.Cells {
		idx(r.Cells[i].V)
	}
	for i := range r.Cells {
		idx(r.Cells[i].Prev)
	}
	b.vers, b.ref = vers, ref
	// Newest first, ties in order of first use (a stable insertion sort:
	// rows have a handful of versions).
	perm := b.perm[:0]
	for i := range vers {
		perm = append(perm, i)
	}
	for i := 1; i < len(perm); i++ {
		for j := i; j > 0 && vers[perm[j]].HLC > vers[perm[j-1]].HLC; j-- {
			perm[j], perm[j-1] = perm[j-1], perm[j]
		}
	}
	b.perm = perm
	// The node indexes first: declaring a node may fail, and the block
	// must then be as it was.
	nodes := b.nodes[:0]
	for _, p := range perm {
		ni, err := nodeIndex(vers[p].Node)
		if err != nil {
			return err
		}
		nodes = append(nodes, int64(ni))
	}
	b.nodes = nodes
	b.n++
	b.seq = append(b.seq, seq)
	b.nver = append(b.nver, int64(len(vers)))
	for j, p := range perm {
		h := vers[p].HLC
		if j == 0 {
			b.first = append(b.first, h)
		} else {
			b.rest = append(b.rest, h)
			b.restRel = append(b.restRel, vers[perm[j-1]].HLC-h)
		}
	}
	b.node = append(b.node, nodes...)
	// pos[first-use index] = position in the sorted table, 1-based.
	var posBuf [16]int64
	pos := posBuf[:0]
	if len(vers)+1 > len(posBuf) {
		pos = make([]int64, 0, len(vers)+1)
	}
	pos = pos[:len(vers)+1]
	for to, from := range perm {
		pos[from+1] = int64(to + 1)
	}
	for s, x := range ref {
		b.refs[s] = append(b.refs[s], pos[x])
	}
	for i := range r.Key {
		b.cols[i].add(r.Key[i])
	}
	nk := len(r.Key)
	for i := range r.Cells {
		b.cols[nk+i].add(r.Cells[i].Value)
	}
	b.bytes += rowBytes(r)
	return nil
}

// encode appends the Rows frame payload of the block. The texts and blobs
// come last, from out[split:].
func (b *blockEncoder) encode(out []byte) (_ []byte, split int) {
	out = binary.AppendUvarint(out, uint64(b.n))
	out = appendInts(out, b.seq)
	out = appendInts(out, b.nver)
	out = appendInts(out, b.first)
	if len(b.rest) > 0 {
		_, abs, _, _ := intsLayout(b.rest)
		_, rel, _, _ := intsLayout(b.restRel)
		if rel < abs {
			out = append(out, restRelative)
			out = appendInts(out, b.restRel)
		} else {
			out = append(out, restAbsolute)
			out = appendInts(out, b.rest)
		}
	}
	out = appendInts(out, b.node)
	for _, r := range b.refs {
		out = appendInts(out, r)
	}
	for i := range b.cols {
		out = b.cols[i].encode(out)
	}
	split = len(out)
	for i := range b.cols {
		if len(b.cols[i].lens) > 0 {
			out = b.cols[i].appendMiddles(out)
		}
	}
	return out, split
}

// blockDecoder holds a decoded Rows frame, column by column, and makes its
// rows one at a time as they are asked for (a row made when it is used is
// cheaper than a block of them: its memory is still in cache). Its slices
// are kept from one frame to the next.
type blockDecoder struct {
	n, next  int
	seq      []int64
	nver     []int64
	off      int // the version table of row next starts at entries[off]
	entries  []Version
	refs     [][]int64
	cols     []columnDecoder
	ncells   int
	nkey     int
	scratchA []int64
	scratchB []int64
}

// columnDecoder is one column of a decoded Rows frame, with the position
// of the next row's value in each of its parts.
type columnDecoder struct {
	tags, ints, mant, lens []int64
	exp                    int
	raw                    []byte // points into the decoder's frame buffer
	pre, suf               []byte // the same
	sum                    uint64 // the bytes of the texts and blobs, less prefixes and suffixes
	data                   string
	ii, di, ri, si, at     int
}

// decodeRows checks and decodes a Rows frame's payload; its rows are then
// made by row.
func (d *Decoder) decodeRows(r *reader) error {
	bd := &d.blk
	bd.n, bd.next, bd.off = 0, 0, 0
	nkey, ncells := len(d.hdr.Key), d.ncells
	ncols := nkey + ncells
	n64 := r.uvarint("row count")
	if r.err != nil {
		return r.err
	}
	if n64 == 0 || n64 > MaxBlockRows || n64*uint64(ncols) > MaxBlockCells {
		return malformed("rows frame of %d rows of %d columns (at most %d rows and %d cells)", n64, ncols, MaxBlockRows, MaxBlockCells)
	}
	n := int(n64)
	bd.nkey, bd.ncells = nkey, ncells
	bd.seq = r.ints(n, bd.seq, "row seq")
	// The version tables.
	nver := r.ints(n, bd.nver, "version count")
	bd.nver = nver
	if r.err != nil {
		return r.err
	}
	maxVer := int64(2*ncells + 3)
	total, withVersions := 0, 0
	for _, v := range nver {
		if v < 0 || v > maxVer {
			return malformed("row with %d versions", v)
		}
		total += int(v)
		if v > 0 {
			withVersions++
		}
	}
	entries := bd.entries[:0]
	if cap(entries) < total {
		entries = make([]Version, 0, total)
	}
	entries = entries[:total]
	bd.entries = entries
	first := r.ints(withVersions, bd.scratchA, "hlc")
	bd.scratchA = first
	var restMode byte
	if total > withVersions {
		restMode = r.byte("hlc layout")
		if r.err == nil && restMode != restAbsolute && restMode != restRelative {
			return malformed("unknown hlc layout %d", restMode)
		}
	}
	rest := r.ints(total-withVersions, bd.scratchB, "hlc")
	bd.scratchB = rest
	if r.err != nil {
		return r.err
	}
	if total == withVersions {
		for i, h := range first {
			entries[i].HLC = h
		}
	} else {
		off, fi, ri := 0, 0, 0
		for _, v := range nver {
			for j := range int(v) {
				var h int64
				if j == 0 {
					h = first[fi]
					fi++
				} else {
					h = rest[ri]
					ri++
					if restMode == restRelative {
						h = entries[off+j-1].HLC - h
					}
				}
				entries[off+j].HLC = h
			}
			off += int(v)
		}
	}
	nodes := r.ints(total, bd.scratchA, "node index")
	bd.scratchA = nodes
	if r.err != nil {
		return r.err
	}
	for i, ni := range nodes {
		if ni <= 0 || ni > int64(len(d.nodes)) {
			return malformed("row version names unknown node %d", ni)
		}
		entries[i].Node = d.nodes[ni-1]
	}
	// Version indexes: live, tomb, tomb_prev, each cell's v, each cell's
	// prev.
	nslots := 3 + 2*ncells
	for len(bd.refs) < nslots {
		bd.refs = append(bd.refs, nil)
	}
	for s := range nslots {
		x := r.ints(n, bd.refs[s], "version index")
		bd.refs[s] = x
		if r.err != nil {
			return r.err
		}
		for i, x := range x {
			if x < 0 || x > nver[i] {
				return malformed("version index %d of %d", x, nver[i])
			}
		}
	}
	// The values, column by column.
	for len(bd.cols) < ncols {
		bd.cols = append(bd.cols, columnDecoder{})
	}
	for c := range ncols {
		if err := bd.cols[c].decode(r, n); err != nil {
			return err
		}
	}
	// Then the texts and blobs of each column.
	for c := range ncols {
		if err := bd.cols[c].decodeMiddles(r); err != nil {
			return err
		}
	}
	if r.err != nil {
		return r.err
	}
	bd.n = n
	return nil
}

// decode reads a column of n values.
func (cd *columnDecoder) decode(r *reader, n int) error {
	cd.ii, cd.di, cd.ri, cd.si, cd.at = 0, 0, 0, 0, 0
	cd.raw, cd.data = nil, ""
	cd.tags = r.ints(n, cd.tags, "value tag")
	if r.err != nil {
		return r.err
	}
	var count [tagDecimal + 1]int
	for _, t := range cd.tags {
		if t < 0 || t > tagDecimal {
			return malformed("bad value tag %d", t)
		}
		count[t]++
	}
	cd.ints = r.ints(count[tagInteger], cd.ints, "integer")
	cd.mant = cd.mant[:0]
	if count[tagDecimal] > 0 {
		cd.exp = int(r.byte("decimal exponent"))
		if r.err == nil && cd.exp > maxDecimalExp {
			return malformed("decimal exponent %d", cd.exp)
		}
		cd.mant = r.ints(count[tagDecimal], cd.mant, "decimal")
		for _, m := range cd.mant {
			if m > maxMantissa || m < -maxMantissa {
				return malformed("decimal mantissa %d", m)
			}
		}
	}
	cd.raw = r.bytes(8*uint64(count[tagReal]), "real")
	cd.lens, cd.pre, cd.suf, cd.sum = cd.lens[:0], nil, nil, 0
	if ns := count[tagText] + count[tagBlob]; ns > 0 {
		cd.pre = r.bytes(r.uvarint("text prefix"), "text prefix")
		cd.suf = r.bytes(r.uvarint("text suffix"), "text suffix")
		if len(cd.pre) > maxAffix || len(cd.suf) > maxAffix {
			return malformed("text prefix of %d bytes and suffix of %d (at most %d each)", len(cd.pre), len(cd.suf), maxAffix)
		}
		cd.lens = r.ints(ns, cd.lens, "text length")
		if r.err != nil {
			return r.err
		}
		for _, l := range cd.lens {
			if l < 0 || uint64(l) > uint64(len(r.b)) {
				return malformed("text or blob of %d bytes in a frame of %d left", l, len(r.b))
			}
			cd.sum += uint64(l)
		}
	}
	return r.err
}

// decodeMiddles reads the column's texts and blobs, whose lengths decode
// read, and puts their prefix and suffix back.
func (cd *columnDecoder) decodeMiddles(r *reader) error {
	ns := len(cd.lens)
	if ns == 0 {
		return nil
	}
	mid := r.bytes(cd.sum, "text")
	if r.err != nil {
		return r.err
	}
	if len(cd.pre)+len(cd.suf) == 0 {
		cd.data = string(mid)
		return nil
	}
	// Every text and blob of the column, whole, in one string.
	cut := int64(len(cd.pre) + len(cd.suf))
	buf := make([]byte, 0, int(cd.sum)+ns*int(cut))
	at := 0
	for i, l := range cd.lens {
		buf = append(buf, cd.pre...)
		buf = append(buf, mid[at:at+int(l)]...)
		buf = append(buf, cd.suf...)
		at += int(l)
		cd.lens[i] = l + cut
	}
	cd.data = unsafe.String(unsafe.SliceData(buf), len(buf))
	return nil
}

// value returns the column's value of row i; rows are asked for in order.
func (cd *columnDecoder) value(i int) Value {
	switch cd.tags[i] {
	case tagInteger:
		cd.ii++
		return Value{Kind: Integer, Int: cd.ints[cd.ii-1]}
	case tagReal:
		cd.ri++
		return Value{Kind: Real, Float: math.Float64frombits(binary.LittleEndian.Uint64(cd.raw[8*cd.ri-8:]))}
	case tagDecimal:
		cd.di++
		return Value{Kind: Real, Float: decimalValue(cd.mant[cd.di-1], cd.exp)}
	case tagText, tagBlob:
		l := int(cd.lens[cd.si])
		cd.si++
		cd.at += l
		return Value{Kind: Kind(cd.tags[i]), Str: cd.data[cd.at-l : cd.at]}
	}
	return Value{}
}

// row makes the next row of the decoded Rows frame.
func (bd *blockDecoder) row() *Frame {
	i := bd.next
	bd.next++
	off := bd.off - 1 // entries[off+x] is the row's version x (1-based)
	bd.off += int(bd.nver[i])
	ver := func(x int64) Version {
		if x == 0 {
			return Version{}
		}
		return bd.entries[off+int(x)]
	}
	fr := &struct {
		f Frame
		r Row
	}{}
	row := &fr.r
	*row = Row{Key: make([]Value, bd.nkey), Cells: make([]Cell, bd.ncells),
		Live: ver(bd.refs[0][i]), Tomb: ver(bd.refs[1][i]), TombPrev: ver(bd.refs[2][i])}
	for c := range row.Key {
		row.Key[c] = bd.cols[c].value(i)
	}
	for c := range row.Cells {
		row.Cells[c] = Cell{Value: bd.cols[bd.nkey+c].value(i), V: ver(bd.refs[3+c][i]), Prev: ver(bd.refs[3+bd.ncells+c][i])}
	}
	fr.f = Frame{Type: FrameRow, Seq: bd.seq[i], Row: row}
	return &fr.f
}
