package cloudinit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf16"
)

// ErrInvalidImage is returned by WriteISO for inputs it cannot represent.
var ErrInvalidImage = errors.New("invalid iso9660 image content")

// File is one file of a flat ISO9660 image.
type File struct {
	Name string
	Data []byte
}

// SectorSize is the ISO9660 logical block size.
const SectorSize = 2048

// Fixed sector numbers of the layout documented in the package comment.
const (
	sectorPVD        = 16
	sectorSVD        = 17
	sectorTerm       = 18
	sectorPathL      = 19
	sectorPathM      = 20
	sectorJolietL    = 21
	sectorJolietM    = 22
	sectorRoot       = 23
	sectorJolietRoot = 24
	sectorFirstFile  = 25
)

// maxNameLen is Joliet's limit on a file name (64 UCS-2 characters).
const maxNameLen = 64

// recordingTime is the fixed 7-byte directory record time: 1970-01-01
// 00:00:00 UTC. A fixed time makes the image a pure function of its files.
var recordingTime = [7]byte{70, 1, 1, 0, 0, 0, 0}

// WriteISO writes a single-directory ISO9660 image with a Joliet extension
// holding files, labelled volumeID. Names are 1-64 characters of [a-z0-9._-];
// the root directory must fit in one sector, which is ample for a seed.
func WriteISO(w io.Writer, volumeID string, files []File) error {
	if volumeID == "" || len(volumeID) > 16 || !isoName(volumeID) {
		return fmt.Errorf("%w: volume id %q must be 1-16 characters of [a-z0-9._-]", ErrInvalidImage, volumeID)
	}
	files = slices.Clone(files)
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.Name, b.Name) })
	for i, f := range files {
		if f.Name == "" || len(f.Name) > maxNameLen || !isoName(f.Name) {
			return fmt.Errorf("%w: file name %q must be 1-%d characters of [a-z0-9._-]", ErrInvalidImage, f.Name, maxNameLen)
		}
		if i > 0 && files[i-1].Name == f.Name {
			return fmt.Errorf("%w: duplicate file name %q", ErrInvalidImage, f.Name)
		}
		if int64(len(f.Data)) > 1<<31 {
			return fmt.Errorf("%w: file %q larger than 2 GiB", ErrInvalidImage, f.Name)
		}
	}

	// Place the files.
	extents := make([]uint32, len(files))
	next := uint32(sectorFirstFile)
	for i, f := range files {
		extents[i] = next
		next += sectors(len(f.Data))
	}
	total := next

	primaryNames := make([][]byte, len(files))
	jolietNames := make([][]byte, len(files))
	for i, f := range files {
		primaryNames[i] = []byte(f.Name)
		jolietNames[i] = ucs2(f.Name)
	}
	root, err := directory(sectorRoot, extents, files, primaryNames)
	if err != nil {
		return err
	}
	jroot, err := directory(sectorJolietRoot, extents, files, jolietNames)
	if err != nil {
		return err
	}

	img := make([]byte, sectorFirstFile*SectorSize)
	copy(img[sectorPVD*SectorSize:], volumeDescriptor(1, volumeID, total, sectorPathL, sectorPathM, sectorRoot))
	copy(img[sectorSVD*SectorSize:], volumeDescriptor(2, volumeID, total, sectorJolietL, sectorJolietM, sectorJolietRoot))
	term := img[sectorTerm*SectorSize:]
	term[0] = 255
	copy(term[1:6], "CD001")
	term[6] = 1
	copy(img[sectorPathL*SectorSize:], pathTable(sectorRoot, binary.LittleEndian))
	copy(img[sectorPathM*SectorSize:], pathTable(sectorRoot, binary.BigEndian))
	copy(img[sectorJolietL*SectorSize:], pathTable(sectorJolietRoot, binary.LittleEndian))
	copy(img[sectorJolietM*SectorSize:], pathTable(sectorJolietRoot, binary.BigEndian))
	copy(img[sectorRoot*SectorSize:], root)
	copy(img[sectorJolietRoot*SectorSize:], jroot)
	if _, err := w.Write(img); err != nil {
		return fmt.Errorf("writing iso9660 headers: %w", err)
	}
	for _, f := range files {
		pad := int(sectors(len(f.Data)))*SectorSize - len(f.Data)
		if _, err := w.Write(f.Data); err != nil {
			return fmt.Errorf("writing iso9660 file %s: %w", f.Name, err)
		}
		if _, err := w.Write(make([]byte, pad)); err != nil {
			return fmt.Errorf("writing iso9660 file %s: %w", f.Name, err)
		}
	}
	return nil
}

func isoName(s string) bool {
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
		default:
			return false
		}
	}
	return true
}

// sectors is how many sectors n bytes take; an empty file takes none.
func sectors(n int) uint32 { return uint32((n + SectorSize - 1) / SectorSize) }

func ucs2(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.BigEndian.PutUint16(b[2*i:], c)
	}
	return b
}

func both16(b []byte, v uint16) {
	binary.LittleEndian.PutUint16(b, v)
	binary.BigEndian.PutUint16(b[2:], v)
}

func both32(b []byte, v uint32) {
	binary.LittleEndian.PutUint32(b, v)
	binary.BigEndian.PutUint32(b[4:], v)
}

// dirRecord encodes one directory record (ECMA-119 9.1).
func dirRecord(extent, size uint32, dir bool, ident []byte) []byte {
	n := 33 + len(ident)
	if n%2 == 1 {
		n++ // records are padded to an even length
	}
	r := make([]byte, n)
	r[0] = byte(n)
	both32(r[2:], extent)
	both32(r[10:], size)
	copy(r[18:25], recordingTime[:])
	if dir {
		r[25] = 0x02
	}
	both16(r[28:], 1) // volume sequence number
	r[32] = byte(len(ident))
	copy(r[33:], ident)
	return r
}

// directory encodes the single-sector root directory at sector self.
func directory(self uint32, extents []uint32, files []File, names [][]byte) ([]byte, error) {
	out := make([]byte, 0, SectorSize)
	out = append(out, dirRecord(self, SectorSize, true, []byte{0})...)
	out = append(out, dirRecord(self, SectorSize, true, []byte{1})...)
	for i, f := range files {
		out = append(out, dirRecord(extents[i], uint32(len(f.Data)), false, names[i])...)
	}
	if len(out) > SectorSize {
		return nil, fmt.Errorf("%w: %d files do not fit one directory sector", ErrInvalidImage, len(files))
	}
	return out, nil
}

// pathTable encodes a path table holding only the root (ECMA-119 9.4).
func pathTable(root uint32, order binary.ByteOrder) []byte {
	r := make([]byte, 10)
	r[0] = 1 // identifier length: the root's is a single 0 byte
	order.PutUint32(r[2:], root)
	order.PutUint16(r[6:], 1) // parent: itself
	return r
}

// pathTableSize is the size of the path tables pathTable writes.
const pathTableSize = 10

// volumeDescriptor encodes a primary (kind 1) or Joliet supplementary
// (kind 2) volume descriptor (ECMA-119 8.4 and 8.5).
func volumeDescriptor(kind byte, volumeID string, total, pathL, pathM, root uint32) []byte {
	d := make([]byte, SectorSize)
	d[0] = kind
	copy(d[1:6], "CD001")
	d[6] = 1
	text := func(off, n int, s string) {
		if kind == 1 {
			field := []byte(strings.Repeat(" ", n))
			copy(field, s)
			copy(d[off:off+n], field)
			return
		}
		// Joliet text fields are UCS-2 big-endian, space padded.
		for i := 0; i+1 < n; i += 2 {
			d[off+i], d[off+i+1] = 0, ' '
		}
		copy(d[off:off+n], ucs2(s))
	}
	text(8, 32, "LINUX")
	text(40, 32, volumeID)
	both32(d[80:], total)
	if kind == 2 {
		copy(d[88:91], "%/E") // UCS-2 level 3
	}
	both16(d[120:], 1)          // volume set size
	both16(d[124:], 1)          // volume sequence number
	both16(d[128:], SectorSize) // logical block size
	both32(d[132:], pathTableSize)
	binary.LittleEndian.PutUint32(d[140:], pathL)
	binary.BigEndian.PutUint32(d[148:], pathM)
	copy(d[156:190], dirRecord(root, SectorSize, true, []byte{0}))
	text(190, 128, "")
	text(318, 128, "")
	text(446, 128, "")
	text(574, 128, "NKUDO")
	text(702, 37, "")
	text(739, 37, "")
	text(776, 37, "")
	// Dates "not specified": sixteen ASCII zeros and a zero offset.
	for _, off := range []int{813, 830, 847, 864} {
		copy(d[off:off+16], "0000000000000000")
	}
	d[881] = 1 // file structure version
	return d
}
