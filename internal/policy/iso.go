package policy

import "bytes"

// The ISO 9660 primary volume descriptor is the first descriptor, in the
// sector at byte 32768 (sector 16 of 2048 bytes) whatever the logical block
// size, and the system area before it is free for boot code.
const (
	pvdOffset = 16 * 2048
	pvdSize   = 2048
)

// parsePVD checks a primary volume descriptor sector and returns the size of
// the volume it describes. Besides the type, "CD001" and the version, it
// wants the both-endian fields to agree: data that only carries the magic
// is not taken for an image.
func parsePVD(s []byte) (volume int64, ok bool) {
	if len(s) < pvdSize || s[0] != 1 || !bytes.Equal(s[1:6], []byte("CD001")) || s[6] != 1 {
		return 0, false
	}
	blocks, ok1 := both32(s[80:88])
	setSize, ok2 := both16(s[120:124])
	seqNo, ok3 := both16(s[124:128])
	blockSize, ok4 := both16(s[128:132])
	if !ok1 || !ok2 || !ok3 || !ok4 || setSize == 0 || seqNo == 0 || seqNo > setSize {
		return 0, false
	}
	switch blockSize {
	case 512, 1024, 2048:
	default:
		return 0, false
	}
	// Version of the file structure, and the root directory record's length.
	if s[881] != 1 || s[156] != 34 {
		return 0, false
	}
	volume = int64(blocks) * int64(blockSize)
	if volume < pvdOffset+pvdSize {
		return 0, false
	}
	return volume, true
}

func both32(b []byte) (uint32, bool) {
	le := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
	be := uint32(b[7]) | uint32(b[6])<<8 | uint32(b[5])<<16 | uint32(b[4])<<24
	return le, le == be
}

func both16(b []byte) (uint16, bool) {
	le := uint16(b[0]) | uint16(b[1])<<8
	be := uint16(b[3]) | uint16(b[2])<<8
	return le, le == be
}
