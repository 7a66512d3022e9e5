package sink

import (
	"fmt"
	"sync"
	"time"
)

// colType is the ClickHouse type of a column the sink writes, and so the Go type of its
// values in a block and in an insert.
type colType uint8

const (
	colString  colType = iota // String (or LowCardinality(String)): string
	colTime                   // DateTime('UTC'): whole seconds, time.Time in an insert
	colFloat64                // Float64
	colUInt8                  // UInt8
	colUInt16                 // UInt16
	colUInt32                 // UInt32
	colUInt64                 // UInt64
	colInt8                   // Int8
)

// column is one column of a table the sink inserts into.
type column struct {
	name string
	typ  colType
}

// rowMeta is what the writer's filters need of a row: its id (de-duplication), and its
// tenant, user and event time (erasure).
type rowMeta struct {
	key    string
	tenant string
	user   string
	// at is the row's event time, compared with an erasure's requested_at.
	at time.Time
	// keep exempts the row from the erasure filter (the erasure's own audit record).
	keep bool
}

// block holds rows of one table column by column, as a message decodes to them: a
// column's values are in str, num or flt at the column's index (the other two are
// nil there). Integers are in num (an Int8 as its two's complement), DateTime columns
// as Unix seconds.
type block struct {
	t    *table
	meta []rowMeta
	str  [][]string
	num  [][]uint64
	flt  [][]float64
}

// newBlock returns an empty block for about n rows of t: the columns of each kind share
// one allocation.
func newBlock(t *table, n int) *block {
	b := &block{t: t, meta: make([]rowMeta, 0, n),
		str: make([][]string, len(t.cols)), num: make([][]uint64, len(t.cols)), flt: make([][]float64, len(t.cols))}
	strs := make([]string, t.kinds[0]*n)
	nums := make([]uint64, t.kinds[1]*n)
	flts := make([]float64, t.kinds[2]*n)
	for j, c := range t.cols {
		switch c.typ {
		case colString:
			b.str[j], strs = strs[:0:n], strs[n:]
		case colFloat64:
			b.flt[j], flts = flts[:0:n], flts[n:]
		default:
			b.num[j], nums = nums[:0:n], nums[n:]
		}
	}
	return b
}

// rows is how many rows b holds.
func (b *block) rows() int { return len(b.meta) }

// row starts a row: the returned appender takes its values in the table's column order.
func (b *block) row(m rowMeta) rowAppender {
	b.meta = append(b.meta, m)
	return rowAppender{b: b}
}

// rowAppender adds one row's values to a block, column after column. A value of the
// wrong type or count is a bug in a decoder: it panics (the runner's recovery turns
// that into a failed message).
type rowAppender struct {
	b *block
	j int
}

// col moves to the next column and returns it; wrong is called when its type is not
// what the value is.
func (a *rowAppender) col() (int, colType) {
	if a.j >= len(a.b.t.cols) {
		panic(fmt.Sprintf("sink: a %s row has more than its %d values", a.b.t.name, len(a.b.t.cols)))
	}
	a.j++
	return a.j - 1, a.b.t.cols[a.j-1].typ
}

func (a *rowAppender) wrong(j int, v any) {
	panic(fmt.Sprintf("sink: value %d of a %s row (%s) cannot be a %T", j, a.b.t.name, a.b.t.cols[j].name, v))
}

// s appends a String value.
func (a *rowAppender) s(v string) {
	j, typ := a.col()
	if typ != colString {
		a.wrong(j, v)
	}
	a.b.str[j] = append(a.b.str[j], v)
}

// t appends a DateTime value: whole seconds, a time before 1970 (not known) as 0.
func (a *rowAppender) t(v time.Time) {
	j, typ := a.col()
	if typ != colTime {
		a.wrong(j, v)
	}
	a.b.num[j] = append(a.b.num[j], uint64(max(v.Unix(), 0)))
}

// f appends a Float64 value.
func (a *rowAppender) f(v float64) {
	j, typ := a.col()
	if typ != colFloat64 {
		a.wrong(j, v)
	}
	a.b.flt[j] = append(a.b.flt[j], v)
}

// u appends an integer value (an Int8 as its two's complement), already checked to fit
// its column.
func (a *rowAppender) u(v uint64) {
	j, typ := a.col()
	if typ < colUInt8 {
		a.wrong(j, v)
	}
	a.b.num[j] = append(a.b.num[j], v)
}

// i8 appends an Int8 value.
func (a *rowAppender) i8(v int8) { a.u(uint64(v)) }

// done checks that the row had a value for every column.
func (a *rowAppender) done() {
	if a.j != len(a.b.t.cols) {
		panic(fmt.Sprintf("sink: a %s row has %d of its %d values", a.b.t.name, a.j, len(a.b.t.cols)))
	}
}

// ref names one row of a write: blocks[blk].meta[row].
type ref struct{ blk, row int32 }

// insertCols are the typed column slices of one INSERT, reused from one write of a
// table to the next (columnPool).
type insertCols struct {
	data []any // data[j] is column j: []string, []time.Time, []float64, []uint8, ...
	str  [][]string
	tm   [][]time.Time
	f64  [][]float64
	u8   [][]uint8
	u16  [][]uint16
	u32  [][]uint32
	u64  [][]uint64
	i8   [][]int8
}

// columnPools keeps insertCols per table.
var columnPools sync.Map // *table -> *sync.Pool

func getCols(t *table) *insertCols {
	p, _ := columnPools.LoadOrStore(t, &sync.Pool{})
	if c, ok := p.(*sync.Pool).Get().(*insertCols); ok {
		return c
	}
	n := len(t.cols)
	return &insertCols{data: make([]any, n), str: make([][]string, n), tm: make([][]time.Time, n),
		f64: make([][]float64, n), u8: make([][]uint8, n), u16: make([][]uint16, n),
		u32: make([][]uint32, n), u64: make([][]uint64, n), i8: make([][]int8, n)}
}

func putCols(t *table, c *insertCols) {
	for j := range c.str {
		clear(c.str[j]) // drop the references to the batch's strings
		c.str[j] = c.str[j][:0]
	}
	clear(c.data)
	p, _ := columnPools.Load(t)
	p.(*sync.Pool).Put(c)
}

// span is rows from..to-1 of blocks[blk]: refs in runs, so gather copies slices.
type span struct{ blk, from, to int32 }

// spans groups refs into runs of consecutive rows of one block; a batch without
// duplicates or erased rows is one span per block.
func spans(refs []ref) []span {
	var out []span
	for _, r := range refs {
		if n := len(out); n > 0 && out[n-1].blk == r.blk && out[n-1].to == r.row {
			out[n-1].to++
			continue
		}
		out = append(out, span{blk: r.blk, from: r.row, to: r.row + 1})
	}
	return out
}

// gather copies the rows refs of blocks into c, column by column, in t's types.
func (c *insertCols) gather(t *table, blocks []*block, refs []ref) {
	runs := spans(refs)
	for j, col := range t.cols {
		switch col.typ {
		case colString:
			d := c.str[j][:0]
			for _, s := range runs {
				d = append(d, blocks[s.blk].str[j][s.from:s.to]...)
			}
			c.str[j], c.data[j] = d, d
		case colFloat64:
			d := c.f64[j][:0]
			for _, s := range runs {
				d = append(d, blocks[s.blk].flt[j][s.from:s.to]...)
			}
			c.f64[j], c.data[j] = d, d
		case colUInt64:
			d := c.u64[j][:0]
			for _, s := range runs {
				d = append(d, blocks[s.blk].num[j][s.from:s.to]...)
			}
			c.u64[j], c.data[j] = d, d
		case colTime:
			c.tm[j] = gatherNum(c.tm[j][:0], blocks, runs, j, func(v uint64) time.Time { return time.Unix(int64(v), 0).UTC() })
			c.data[j] = c.tm[j]
		case colUInt8:
			c.u8[j] = gatherNum(c.u8[j][:0], blocks, runs, j, func(v uint64) uint8 { return uint8(v) })
			c.data[j] = c.u8[j]
		case colUInt16:
			c.u16[j] = gatherNum(c.u16[j][:0], blocks, runs, j, func(v uint64) uint16 { return uint16(v) })
			c.data[j] = c.u16[j]
		case colUInt32:
			c.u32[j] = gatherNum(c.u32[j][:0], blocks, runs, j, func(v uint64) uint32 { return uint32(v) })
			c.data[j] = c.u32[j]
		case colInt8:
			c.i8[j] = gatherNum(c.i8[j][:0], blocks, runs, j, func(v uint64) int8 { return int8(v) })
			c.data[j] = c.i8[j]
		}
	}
}

// gatherNum appends column j of runs, stored as uint64, to d converted to T.
func gatherNum[T any](d []T, blocks []*block, runs []span, j int, conv func(uint64) T) []T {
	for _, s := range runs {
		for _, v := range blocks[s.blk].num[j][s.from:s.to] {
			d = append(d, conv(v))
		}
	}
	return d
}

// columnValue returns row i of a column of an insert as a single value.
func columnValue(col any, i int) any {
	switch d := col.(type) {
	case []string:
		return d[i]
	case []time.Time:
		return d[i]
	case []float64:
		return d[i]
	case []uint8:
		return d[i]
	case []uint16:
		return d[i]
	case []uint32:
		return d[i]
	case []uint64:
		return d[i]
	case []int8:
		return d[i]
	}
	panic(fmt.Sprintf("sink: no column of %T", col))
}

// rowValues returns row i of an insert's columns.
func rowValues(cols []any, i int) []any {
	vals := make([]any, len(cols))
	for j, c := range cols {
		vals[j] = columnValue(c, i)
	}
	return vals
}
