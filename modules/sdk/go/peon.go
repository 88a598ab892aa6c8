// Package peon is the Go guest SDK for peon-wasm (wit/peon.wit, package peon:host@0.1.0, world
// agent), for GOOS=wasip1 GOARCH=wasm with -buildmode=c-shared (a reactor).
//
// The imports are declared with //go:wasmimport exactly as the canonical ABI lowers them for a
// core module; this package also exports cabi_realloc, run and cabi_post_run with
// //go:wasmexport. An agent registers its entry point in an init function:
//
//	func init() { peon.Handle(func(input string) (string, error) { ... }) }
//
// The host must call the module's _initialize export (Go's runtime and package init) before run.
//
// Memory: the host places every list it returns in Go memory through cabi_realloc, which may be
// called while an import is running. Go's garbage collector does not move heap objects, so
// cabi_realloc hands out heap buffers and pins them in a table until the SDK has copied their
// contents into ordinary Go values. Everything whose address is given to the host (arguments,
// return areas) is on the heap and kept alive for the call, never on a goroutine stack that
// could move.
package peon

import (
	"runtime"
	"unsafe"
)

// ErrorCode says why a host call did not succeed (enum error-code).
type ErrorCode uint8

const (
	Denied ErrorCode = iota
	InvalidArgument
	NotFound
	LimitExceeded
	IO
	Timeout
)

var codeNames = [...]string{"denied", "invalid-argument", "not-found", "limit-exceeded", "io", "timeout"}

func (c ErrorCode) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return "unknown"
}

// Error is a refusal or failure from the host (record error).
type Error struct {
	Code    ErrorCode
	Message string
}

func (e *Error) Error() string { return e.Code.String() + ": " + e.Message }

// ---- the imports, as the canonical ABI lowers them ----------------------------------------------

//go:wasmimport peon:host/fs@0.1.0 read
func rawRead(path, pathLen, ret uint32)

//go:wasmimport peon:host/fs@0.1.0 write
func rawWrite(path, pathLen, data, dataLen, ret uint32)

//go:wasmimport peon:host/fs@0.1.0 append
func rawAppend(path, pathLen, data, dataLen, ret uint32)

//go:wasmimport peon:host/fs@0.1.0 read-dir
func rawReadDir(path, pathLen, ret uint32)

//go:wasmimport peon:host/fs@0.1.0 remove
func rawRemove(path, pathLen, ret uint32)

// The request record flattens to method, url, headers, body: four (ptr, len) pairs.
//
//go:wasmimport peon:host/http@0.1.0 send
func rawSend(method, methodLen, url, urlLen, headers, headersLen, body, bodyLen, ret uint32)

//go:wasmimport peon:host/db@0.1.0 query
func rawQuery(db, dbLen, sql, sqlLen, params, paramsLen, ret uint32)

//go:wasmimport peon:host/db@0.1.0 execute
func rawExecute(db, dbLen, sql, sqlLen, params, paramsLen, ret uint32)

//go:wasmimport peon:host/exec@0.1.0 run
func rawExec(program, programLen, args, argsLen, stdin, stdinLen, ret uint32)

//go:wasmimport peon:host/log@0.1.0 log
func rawLog(level, message, messageLen uint32)

// ---- memory --------------------------------------------------------------------------------------

// pinned holds every buffer the host allocated through cabi_realloc until the SDK takes it.
var pinned = map[uint32][]uint64{}

//go:wasmexport cabi_realloc
func cabiRealloc(old, oldSize, align, newSize uint32) uint32 {
	if newSize == 0 {
		return align // an aligned, never-dereferenced address for an empty list
	}
	// []uint64 is 8-aligned, which covers every alignment in the interface.
	buf := make([]uint64, (newSize+7)/8)
	ptr := uint32(uintptr(unsafe.Pointer(&buf[0])))
	if old != 0 {
		n := min(oldSize, newSize)
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&buf[0])), n), view(old, n))
		delete(pinned, old)
	}
	pinned[ptr] = buf
	return ptr
}

// view is the guest memory at [ptr, ptr+n) without copying.
func view(ptr, n uint32) []byte {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(uintptr(ptr))), n)
}

// takeBytes copies a host-allocated list<u8> into Go memory and unpins it.
func takeBytes(ptr, n uint32) []byte {
	if n == 0 {
		return []byte{}
	}
	out := append([]byte(nil), view(ptr, n)...)
	delete(pinned, ptr)
	return out
}

func takeString(ptr, n uint32) string { return string(takeBytes(ptr, n)) }

func le32(b []byte, at int) uint32 {
	return uint32(b[at]) | uint32(b[at+1])<<8 | uint32(b[at+2])<<16 | uint32(b[at+3])<<24
}

func le64(b []byte, at int) uint64 { return uint64(le32(b, at)) | uint64(le32(b, at+4))<<32 }

func put32(b []byte, at int, v uint32) {
	b[at], b[at+1], b[at+2], b[at+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}

func put64(b []byte, at int, v uint64) { put32(b, at, uint32(v)); put32(b, at+4, uint32(v>>32)) }

// takeStrings copies a host-allocated list<string> (8-byte elements) and unpins it.
func takeStrings(ptr, n uint32) []string {
	elems := takeBytes(ptr, n*8)
	out := make([]string, n)
	for i := range out {
		out[i] = takeString(le32(elems, i*8), le32(elems, i*8+4))
	}
	return out
}

// call holds what one import call hands the host: argument buffers and the return area, all on
// the heap (package-level, so they escape) and alive until the call returns.
type call struct {
	keep []any
	ret  []uint64 // 32 bytes, 8-aligned: every result area in the interface fits
}

var current *call

func begin() *call {
	c := &call{ret: make([]uint64, 4)}
	current = c
	return c
}

func (c *call) end() {
	runtime.KeepAlive(c.keep)
	current = nil
}

// str gives the host (ptr, len) of a heap copy of s.
func (c *call) str(s string) (uint32, uint32) { return c.bytes([]byte(s)) }

func (c *call) bytes(b []byte) (uint32, uint32) {
	if len(b) == 0 {
		return 1, 0
	}
	buf := append(make([]byte, 0, len(b)), b...)
	c.keep = append(c.keep, buf)
	return uint32(uintptr(unsafe.Pointer(&buf[0]))), uint32(len(b))
}

// area is a byte view of the return area.
func (c *call) area() []byte { return unsafe.Slice((*byte)(unsafe.Pointer(&c.ret[0])), 32) }

func (c *call) retPtr() uint32 { return uint32(uintptr(unsafe.Pointer(&c.ret[0]))) }

// error reads a record error at offset `at` of the return area.
func (c *call) error(at int) error {
	a := c.area()
	return &Error{Code: ErrorCode(a[at]), Message: takeString(le32(a, at+4), le32(a, at+8))}
}

// unit reads a result<_, error>.
func (c *call) unit() error {
	defer c.end()
	if c.area()[0] == 0 {
		return nil
	}
	return c.error(4)
}

// ---- fs ------------------------------------------------------------------------------------------

// ReadFile reads a whole file.
func ReadFile(path string) ([]byte, error) {
	c := begin()
	defer c.end()
	p, n := c.str(path)
	rawRead(p, n, c.retPtr())
	a := c.area()
	if a[0] != 0 {
		return nil, c.error(4)
	}
	return takeBytes(le32(a, 4), le32(a, 8)), nil
}

// WriteFile creates or replaces a file.
func WriteFile(path string, data []byte) error {
	c := begin()
	p, n := c.str(path)
	d, dn := c.bytes(data)
	rawWrite(p, n, d, dn, c.retPtr())
	return c.unit()
}

// AppendFile creates a file or appends to it.
func AppendFile(path string, data []byte) error {
	c := begin()
	p, n := c.str(path)
	d, dn := c.bytes(data)
	rawAppend(p, n, d, dn, c.retPtr())
	return c.unit()
}

// ReadDir lists the names in a directory.
func ReadDir(path string) ([]string, error) {
	c := begin()
	defer c.end()
	p, n := c.str(path)
	rawReadDir(p, n, c.retPtr())
	a := c.area()
	if a[0] != 0 {
		return nil, c.error(4)
	}
	return takeStrings(le32(a, 4), le32(a, 8)), nil
}

// Remove removes a file or an empty directory.
func Remove(path string) error {
	c := begin()
	p, n := c.str(path)
	rawRemove(p, n, c.retPtr())
	return c.unit()
}

// ---- http ----------------------------------------------------------------------------------------

// Header is an HTTP header.
type Header struct{ Name, Value string }

// Request is an outgoing HTTP request.
type Request struct {
	Method  string
	URL     string
	Headers []Header
	Body    []byte
}

// Response is what the host returned (redirects are not followed).
type Response struct {
	Status  uint16
	Headers []Header
	Body    []byte
}

// Send sends a request and waits for the whole response.
func Send(req Request) (Response, error) {
	c := begin()
	defer c.end()
	m, mn := c.str(req.Method)
	u, un := c.str(req.URL)
	hs := make([]byte, 16*len(req.Headers)) // record header: name (ptr, len), value (ptr, len)
	for i, h := range req.Headers {
		np, nn := c.str(h.Name)
		vp, vn := c.str(h.Value)
		put32(hs, i*16, np)
		put32(hs, i*16+4, nn)
		put32(hs, i*16+8, vp)
		put32(hs, i*16+12, vn)
	}
	h, _ := c.bytes(hs)
	b, bn := c.bytes(req.Body)
	rawSend(m, mn, u, un, h, uint32(len(req.Headers)), b, bn, c.retPtr())
	a := c.area()
	if a[0] != 0 {
		return Response{}, c.error(4)
	}
	// response @4: status u16 @4, headers @8/@12, body @16/@20
	resp := Response{Status: uint16(a[4]) | uint16(a[5])<<8}
	raw := takeBytes(le32(a, 8), le32(a, 12)*16)
	for i := 0; i < len(raw)/16; i++ {
		resp.Headers = append(resp.Headers, Header{
			Name:  takeString(le32(raw, i*16), le32(raw, i*16+4)),
			Value: takeString(le32(raw, i*16+8), le32(raw, i*16+12)),
		})
	}
	resp.Body = takeBytes(le32(a, 16), le32(a, 20))
	return resp, nil
}

// ---- db ------------------------------------------------------------------------------------------

// Kind tells which case of variant value a Value holds.
type Kind uint8

const (
	KindNull Kind = iota
	KindInteger
	KindReal
	KindText
	KindBlob
)

// Value is a SQLite value (variant value).
type Value struct {
	Kind    Kind
	Integer int64
	Real    float64
	Text    string
	Blob    []byte
}

func Null() Value           { return Value{Kind: KindNull} }
func Integer(v int64) Value { return Value{Kind: KindInteger, Integer: v} }
func Real(v float64) Value  { return Value{Kind: KindReal, Real: v} }
func Text(v string) Value   { return Value{Kind: KindText, Text: v} }
func Blob(v []byte) Value   { return Value{Kind: KindBlob, Blob: v} }

// Rows are query results.
type Rows struct {
	Columns []string
	Rows    [][]Value
}

// lowerValues lays out list<value>: 16 bytes each, tag @0, payload @8, align 8.
func (c *call) lowerValues(params []Value) (uint32, uint32) {
	if len(params) == 0 {
		return 8, 0
	}
	words := make([]uint64, 2*len(params))
	c.keep = append(c.keep, words)
	b := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), 16*len(params))
	for i, v := range params {
		b[i*16] = byte(v.Kind)
		switch v.Kind {
		case KindInteger:
			put64(b, i*16+8, uint64(v.Integer))
		case KindReal:
			put64(b, i*16+8, *(*uint64)(unsafe.Pointer(&v.Real)))
		case KindText:
			p, n := c.str(v.Text)
			put32(b, i*16+8, p)
			put32(b, i*16+12, n)
		case KindBlob:
			p, n := c.bytes(v.Blob)
			put32(b, i*16+8, p)
			put32(b, i*16+12, n)
		}
	}
	return uint32(uintptr(unsafe.Pointer(&words[0]))), uint32(len(params))
}

// Query runs one read statement with bound parameters.
func Query(database, sql string, params ...Value) (Rows, error) {
	c := begin()
	defer c.end()
	d, dn := c.str(database)
	s, sn := c.str(sql)
	p, pn := c.lowerValues(params)
	rawQuery(d, dn, s, sn, p, pn, c.retPtr())
	a := c.area()
	if a[0] != 0 {
		return Rows{}, c.error(4)
	}
	// rows @4: columns @4/@8, rows @12/@16 (each row a list<value>)
	out := Rows{Columns: takeStrings(le32(a, 4), le32(a, 8))}
	rows := takeBytes(le32(a, 12), le32(a, 16)*8)
	for r := 0; r < len(rows)/8; r++ {
		n := le32(rows, r*8+4)
		vals := takeBytes(le32(rows, r*8), n*16)
		row := make([]Value, n)
		for i := range row {
			v := vals[i*16:]
			row[i].Kind = Kind(v[0])
			switch row[i].Kind {
			case KindInteger:
				row[i].Integer = int64(le64(v, 8))
			case KindReal:
				bits := le64(v, 8)
				row[i].Real = *(*float64)(unsafe.Pointer(&bits))
			case KindText:
				row[i].Text = takeString(le32(v, 8), le32(v, 12))
			case KindBlob:
				row[i].Blob = takeBytes(le32(v, 8), le32(v, 12))
			}
		}
		out.Rows = append(out.Rows, row)
	}
	return out, nil
}

// Execute runs one write statement with bound parameters; it returns the rows changed.
func Execute(database, sql string, params ...Value) (uint64, error) {
	c := begin()
	defer c.end()
	d, dn := c.str(database)
	s, sn := c.str(sql)
	p, pn := c.lowerValues(params)
	rawExecute(d, dn, s, sn, p, pn, c.retPtr())
	a := c.area()
	if a[0] != 0 {
		return 0, c.error(8) // result<u64, error>: payload 8-aligned, @8
	}
	return le64(a, 8), nil
}

// ---- exec ----------------------------------------------------------------------------------------

// Output is what a program produced.
type Output struct {
	Code   int32
	Stdout []byte
	Stderr []byte
}

// Exec runs a program (no shell) with arguments and standard input.
func Exec(program string, args []string, stdin []byte) (Output, error) {
	c := begin()
	defer c.end()
	p, pn := c.str(program)
	list := make([]byte, 8*len(args))
	for i, arg := range args {
		ap, an := c.str(arg)
		put32(list, i*8, ap)
		put32(list, i*8+4, an)
	}
	l, _ := c.bytes(list)
	s, sn := c.bytes(stdin)
	rawExec(p, pn, l, uint32(len(args)), s, sn, c.retPtr())
	a := c.area()
	if a[0] != 0 {
		return Output{}, c.error(4)
	}
	return Output{
		Code:   int32(le32(a, 4)),
		Stdout: takeBytes(le32(a, 8), le32(a, 12)),
		Stderr: takeBytes(le32(a, 16), le32(a, 20)),
	}, nil
}

// ---- log -----------------------------------------------------------------------------------------

// Level is how important a log line is.
type Level uint32

const (
	Debug Level = iota
	Info
	Warn
	ErrorLevel
)

// Log writes one line to the host's log.
func Log(level Level, message string) {
	c := begin()
	defer c.end()
	m, mn := c.str(message)
	rawLog(uint32(level), m, mn)
}

// ---- the world export run ------------------------------------------------------------------------

var handler func(string) (string, error)

// Handle registers the agent's entry point: the returned string is the ok answer, an error's
// text the error answer. Call it from an init function.
func Handle(f func(input string) (string, error)) { handler = f }

// runResult is the 12-byte result<string, string> area run returns: tag @0, ptr @4, len @8.
var runResult = make([]uint32, 3)
var runAnswer []byte

//go:wasmexport run
func run(ptr, n uint32) uint32 {
	input := takeString(ptr, n)
	var answer string
	tag := uint32(0)
	if handler == nil {
		tag, answer = 1, "the agent registered no handler (peon.Handle)"
	} else if out, err := handler(input); err != nil {
		tag, answer = 1, err.Error()
	} else {
		answer = out
	}
	runAnswer = []byte(answer)
	runResult[0], runResult[1], runResult[2] = tag, 0, uint32(len(runAnswer))
	if len(runAnswer) > 0 {
		runResult[1] = uint32(uintptr(unsafe.Pointer(&runAnswer[0])))
	}
	return uint32(uintptr(unsafe.Pointer(&runResult[0])))
}

//go:wasmexport cabi_post_run
func postRun(uint32) { runAnswer = nil }
