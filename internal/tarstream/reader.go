// Package tarstream reads the tar stream of `sign --tar` strictly, member by
// member as it streams past, and writes the tar of signatures that answers
// it.
//
// It reads what GNU tar and bsdtar write for plain files: ustar headers, pax
// extended headers ('x') and GNU long names ('L'), and nothing else. A
// member is a regular file with a relative name; anything an extractor could
// turn into something other than one plain file (a link, a device, a
// directory, a sparse map, a global header, an absolute name, a "..") is
// refused by name, as are a second member of the same name, a truncated
// archive and anything after its end but the zero padding of the last
// record. archive/tar is not used: it accepts V7 headers, sparse files and
// ends without end-of-archive blocks, each of which would need undoing.
//
// Memory is constant in the size of members (bodies stream through Read)
// and bounded in their number (the names seen, for the duplicate check).
package tarstream

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits on what one archive may hold.
const (
	// MaxName bounds a member's name in bytes (Linux's PATH_MAX is 4096;
	// the name goes into every audit record of the member).
	MaxName = 1024
	// MaxPAX bounds one pax extended header.
	MaxPAX = 64 << 10
	// MaxPadding bounds the zeros after the two end-of-archive blocks:
	// the rest of the last record (10 KiB for GNU tar and bsdtar by
	// default, at most 64 KiB with -b 128).
	MaxPadding = 64 << 10
	// MaxSize bounds a member's size, as the configuration's max_size.
	MaxSize = 1 << 62
)

const blockSize = 512

// Member is one regular file of the archive.
type Member struct {
	Name  string
	Size  int64
	Index int // 1 for the first member
}

// Error refuses the archive. Name is the member it concerns, "" when the
// fault is in the archive around the members (a bad block, trailing data).
type Error struct {
	Name string
	// Truncated says the archive ended before it should have: in a header,
	// a body or before its end-of-archive blocks.
	Truncated bool
	Msg       string
}

func (e *Error) Error() string {
	if e.Name != "" {
		return fmt.Sprintf("member %s: %s", strconv.Quote(e.Name), e.Msg)
	}
	return e.Msg
}

// Reader reads members. Next returns each member's header, Read its body;
// Next at the end of the archive checks the end-of-archive blocks and the
// padding to the end of the input and returns io.EOF. Errors of the
// underlying reader other than io.EOF are returned as they are; faults of
// the archive are *Error, and stay: every later call returns the same.
type Reader struct {
	br    *bufio.Reader
	off   int64 // bytes taken from the stream
	blk   [blockSize]byte
	cur   *Member
	left  int64 // body bytes of cur not yet read
	pad   int64 // padding after cur's body
	names map[string]bool
	count int
	max   int
	err   error
}

// NewReader reads the archive from r; more than maxMembers members (when
// > 0) are refused.
func NewReader(r io.Reader, maxMembers int) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, 256<<10), names: map[string]bool{}, max: maxMembers}
}

// Offset is how many bytes of the input the reader has taken.
func (t *Reader) Offset() int64 { return t.off }

// Count is the number of members returned so far.
func (t *Reader) Count() int { return t.count }

func (t *Reader) fail(err error) error {
	if t.err == nil {
		t.err = err
	}
	return t.err
}

func (t *Reader) refuse(name string, format string, args ...any) error {
	return t.fail(&Error{Name: name, Msg: fmt.Sprintf(format, args...)})
}

func (t *Reader) truncated(name string, format string, args ...any) error {
	return t.fail(&Error{Name: name, Truncated: true, Msg: "truncated archive: " + fmt.Sprintf(format, args...)})
}

// readFull reads len(p) bytes; io.EOF when none came, io.ErrUnexpectedEOF
// when some did.
func (t *Reader) readFull(p []byte) error {
	n, err := io.ReadFull(t.br, p)
	t.off += int64(n)
	return err
}

// Read reads the body of the member Next returned last; io.EOF at its end.
func (t *Reader) Read(p []byte) (int, error) {
	if t.err != nil {
		return 0, t.err
	}
	if t.cur == nil || t.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > t.left {
		p = p[:t.left]
	}
	n, err := t.br.Read(p)
	t.off += int64(n)
	t.left -= int64(n)
	if err == io.EOF {
		if t.left > 0 {
			return n, t.truncated(t.cur.Name, "the member ends after %d of its %d bytes", t.cur.Size-t.left, t.cur.Size)
		}
		err = nil
	}
	if err != nil {
		return n, t.fail(err)
	}
	return n, nil
}

// finishBody reads what is left of the current body and its padding, which
// must be zeros.
func (t *Reader) finishBody() error {
	if t.cur == nil {
		return nil
	}
	if _, err := io.Copy(io.Discard, t); err != nil {
		return err
	}
	if t.pad > 0 {
		pad := t.blk[:t.pad]
		if err := t.readFull(pad); err != nil {
			return t.truncatedOr(err, t.cur.Name, "the padding after the member's body is cut off")
		}
		if !allZero(pad) {
			return t.refuse(t.cur.Name, "the padding after the member's body is not zeros")
		}
	}
	t.cur = nil
	return nil
}

// truncatedOr is a truncation for an EOF, the error itself otherwise.
func (t *Reader) truncatedOr(err error, name, format string, args ...any) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return t.truncated(name, format, args...)
	}
	return t.fail(err)
}

// ext is what the extended headers before a member said.
type ext struct {
	pax              bool
	path, long       string
	hasPath, hasLong bool
	size             int64
	hasSize          bool
}

// Next returns the next member, or io.EOF once the archive has ended as it
// must.
func (t *Reader) Next() (*Member, error) {
	if t.err != nil {
		return nil, t.err
	}
	if err := t.finishBody(); err != nil {
		return nil, err
	}
	var x ext
	for {
		err := t.readFull(t.blk[:])
		if err != nil {
			if x.pax || x.hasLong {
				return nil, t.truncatedOr(err, "", "the archive ends after an extended header, before its member")
			}
			if err == io.EOF {
				return nil, t.truncated("", "the archive ends without its two end-of-archive blocks (after %d bytes)", t.off)
			}
			return nil, t.truncatedOr(err, "", "the archive ends inside a header block (after %d bytes)", t.off)
		}
		if allZero(t.blk[:]) {
			if x.pax || x.hasLong {
				return nil, t.refuse("", "an extended header is followed by the end of the archive")
			}
			return nil, t.end()
		}
		h := t.blk[:]
		if !checksumOK(h) {
			return nil, t.refuse("", "the block at byte %d is not a tar header (bad checksum)", t.off-blockSize)
		}
		gnu := false
		switch string(h[257:265]) {
		case "ustar\x0000":
		case "ustar  \x00":
			gnu = true
		default:
			return nil, t.refuse("", "the header at byte %d is neither ustar, pax nor GNU tar (V7 and other formats are refused)", t.off-blockSize)
		}
		size, ok := parseNumeric(h[124:136])
		if !ok {
			return nil, t.refuse("", "the header at byte %d has an invalid size field", t.off-blockSize)
		}
		typ := h[156]
		switch typ {
		case 'x':
			if x.pax {
				return nil, t.refuse("", "two pax extended headers for one member at byte %d", t.off-blockSize)
			}
			if size > MaxPAX {
				return nil, t.refuse("", "a pax extended header of %d bytes (at most %d)", size, MaxPAX)
			}
			data, err := t.readExt(size)
			if err != nil {
				return nil, err
			}
			if err := t.parsePAX(data, &x); err != nil {
				return nil, err
			}
			x.pax = true
			continue
		case 'L':
			if x.hasLong {
				return nil, t.refuse("", "two GNU long names for one member at byte %d", t.off-blockSize)
			}
			if size > MaxName+1 {
				return nil, t.refuse("", "a GNU long name of %d bytes (at most %d)", size, MaxName)
			}
			data, err := t.readExt(size)
			if err != nil {
				return nil, err
			}
			x.long, x.hasLong = cString(data), true
			continue
		}
		name := headerName(h, gnu)
		if x.hasLong {
			name = x.long
		}
		if x.hasPath {
			name = x.path
		}
		if x.hasSize {
			size = x.size
		}
		shown := name
		if what := typeRefusal(typ); what != "" {
			return nil, t.refuse(shown, "%s: only regular files are signed", what)
		}
		if msg := nameRefusal(name); msg != "" {
			return nil, t.refuse(shown, "%s", msg)
		}
		if t.names[name] {
			return nil, t.refuse(shown, "a second member of the same name")
		}
		if size > MaxSize {
			return nil, t.refuse(shown, "a size of %d bytes", size)
		}
		t.count++
		if t.max > 0 && t.count > t.max {
			return nil, t.refuse(shown, "more than max_files %d members", t.max)
		}
		t.names[name] = true
		t.cur = &Member{Name: name, Size: size, Index: t.count}
		t.left = size
		t.pad = (blockSize - size%blockSize) % blockSize
		return t.cur, nil
	}
}

// readExt reads an extended header's data and its padding.
func (t *Reader) readExt(size int64) ([]byte, error) {
	n := (size + blockSize - 1) / blockSize * blockSize
	data := make([]byte, n)
	if err := t.readFull(data); err != nil {
		return nil, t.truncatedOr(err, "", "the archive ends inside an extended header")
	}
	return data[:size], nil
}

// end checks what follows the first zero block: a second one, then at most
// MaxPadding zeros ending on a block, then the end of the input.
func (t *Reader) end() error {
	if err := t.readFull(t.blk[:]); err != nil {
		return t.truncatedOr(err, "", "the archive ends after one of its two end-of-archive blocks")
	}
	if !allZero(t.blk[:]) {
		return t.refuse("", "a zero block at byte %d is followed by data (an archive holds no zero blocks but its end)", t.off-2*blockSize)
	}
	endAt := t.off
	buf := make([]byte, 32<<10)
	for {
		n, err := t.br.Read(buf)
		t.off += int64(n)
		if n > 0 && (!allZero(buf[:n]) || t.off-endAt > MaxPadding) {
			return t.refuse("", "trailing data after the end of the archive at byte %d: send only the archive", endAt)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return t.fail(err)
		}
	}
	if t.off%blockSize != 0 {
		return t.refuse("", "trailing data after the end of the archive at byte %d: the padding does not end on a %d-byte block", endAt, blockSize)
	}
	t.err = io.EOF
	return io.EOF
}

// parsePAX reads the records "LEN key=value\n" of a pax extended header.
func (t *Reader) parsePAX(data []byte, x *ext) error {
	for len(data) > 0 {
		sp := bytes.IndexByte(data, ' ')
		if sp <= 0 || sp > 10 {
			return t.refuse("", "a pax extended header record without a length")
		}
		n, err := strconv.Atoi(string(data[:sp]))
		if err != nil || n <= sp+1 || n > len(data) || data[0] == '0' || data[n-1] != '\n' {
			return t.refuse("", "a pax extended header record whose length is wrong")
		}
		rec := data[sp+1 : n-1]
		data = data[n:]
		k, v, ok := strings.Cut(string(rec), "=")
		if !ok || k == "" {
			return t.refuse("", "a pax extended header record without a keyword")
		}
		switch {
		case k == "path":
			if x.hasPath {
				return t.refuse("", "a pax extended header gives the path twice")
			}
			x.path, x.hasPath = v, true
		case k == "size":
			if x.hasSize {
				return t.refuse("", "a pax extended header gives the size twice")
			}
			s, ok := decimal(v)
			if !ok {
				return t.refuse("", "a pax extended header has an invalid size %q", v)
			}
			x.size, x.hasSize = s, true
		case k == "linkpath":
			return t.refuse("", "a pax extended header names a link target: links are not signed")
		case strings.HasPrefix(k, "GNU.sparse.") || k == "SCHILY.realsize" || strings.HasPrefix(k, "SCHILY.sparse"):
			return t.refuse("", "a sparse file (pax keyword %s): only plain regular files are signed", k)
		case paxIgnored[k] || strings.HasPrefix(k, "SCHILY.") || strings.HasPrefix(k, "LIBARCHIVE."):
			// Times, owners, extended attributes, ACLs, file flags: what
			// extraction would apply to the file, not what is signed.
		default:
			return t.refuse("", "pax keyword %q is not one signstar reads: send ustar or pax as GNU tar or bsdtar write them", clip(k))
		}
	}
	return nil
}

var paxIgnored = map[string]bool{
	"mtime": true, "atime": true, "ctime": true, "uid": true, "gid": true,
	"uname": true, "gname": true, "comment": true, "charset": true, "hdrcharset": true,
}

// typeRefusal says why a header type is not a member; "" for a regular file.
func typeRefusal(typ byte) string {
	switch typ {
	case '0', 0:
		return ""
	case '1':
		return "a hard link"
	case '2':
		return "a symbolic link"
	case '3':
		return "a character device"
	case '4':
		return "a block device"
	case '5':
		return "a directory"
	case '6':
		return "a FIFO"
	case '7':
		return "a contiguous file"
	case 'g':
		return "a pax global extended header"
	case 'K':
		return "a GNU long link name"
	case 'S':
		return "a GNU sparse file"
	case 'M':
		return "a GNU multi-volume continuation"
	case 'V':
		return "a GNU volume label"
	case 'D':
		return "a GNU dump directory"
	}
	if typ >= 0x20 && typ < 0x7f {
		return fmt.Sprintf("an entry of unknown type %q", typ)
	}
	return fmt.Sprintf("an entry of unknown type 0x%02x", typ)
}

// nameRefusal says what is wrong with a member's name; "" when nothing.
func nameRefusal(name string) string {
	switch {
	case name == "":
		return "a member without a name"
	case len(name) > MaxName:
		return fmt.Sprintf("a name of %d bytes (at most %d)", len(name), MaxName)
	case !utf8.ValidString(name):
		return "the name is not UTF-8"
	case strings.HasPrefix(name, "/"):
		return "an absolute name: names must be relative"
	case strings.HasSuffix(name, "/"):
		return "the name ends in '/' (a directory): only regular files are signed"
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return "the name holds a control character"
		}
	}
	for _, c := range strings.Split(name, "/") {
		switch c {
		case "":
			return "the name has an empty component ('//')"
		case ".":
			return "the name has a '.' component: send it as a plain relative name"
		case "..":
			return "the name has a '..' component"
		}
	}
	return ""
}

// headerName is the name in a header block: ustar's prefix and name, or a
// GNU header's name (GNU keeps other fields where ustar has the prefix).
func headerName(h []byte, gnu bool) string {
	name := cString(h[0:100])
	if gnu {
		return name
	}
	if prefix := cString(h[345:500]); prefix != "" {
		return prefix + "/" + name
	}
	return name
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// parseNumeric reads a numeric field: octal digits, optionally led by
// spaces and ended by NUL or space, as ustar writes them, or GNU's
// base-256 (a first byte 0x80) for large values. Negative values are not.
func parseNumeric(b []byte) (int64, bool) {
	if len(b) > 0 && b[0] == 0x80 {
		var v int64
		for _, c := range b[1:] {
			if v > (MaxSize >> 8) {
				return 0, false
			}
			v = v<<8 | int64(c)
		}
		return v, true
	}
	i := 0
	for i < len(b) && b[i] == ' ' {
		i++
	}
	start := i
	var v int64
	for i < len(b) && b[i] >= '0' && b[i] <= '7' {
		if v > MaxSize>>3 {
			return 0, false
		}
		v = v*8 + int64(b[i]-'0')
		i++
	}
	if i == start {
		return 0, false
	}
	for ; i < len(b); i++ {
		if b[i] != 0 && b[i] != ' ' {
			return 0, false
		}
	}
	return v, true
}

func decimal(s string) (int64, bool) {
	if s == "" || len(s) > 19 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil && v <= MaxSize
}

// checksumOK checks a header's checksum field against the block, counting
// the field as spaces, in the unsigned sum or (as some old writers did) the
// signed one.
func checksumOK(h []byte) bool {
	want, ok := parseNumeric(h[148:156])
	if !ok {
		return false
	}
	var u, s int64
	for i, c := range h[:blockSize] {
		if i >= 148 && i < 156 {
			c = ' '
		}
		u += int64(c)
		s += int64(int8(c))
	}
	return want == u || want == s
}

var zeros [32 << 10]byte

func allZero(b []byte) bool { return bytes.Equal(b, zeros[:len(b)]) }

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// IsTruncated reports whether err says the archive was cut short.
func IsTruncated(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Truncated
}
