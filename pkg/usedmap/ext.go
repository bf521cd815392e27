package usedmap

import "encoding/binary"

// ext2/3/4 superblock fields and features this reading depends on.
const (
	extMagic          = 0xef53
	incompatMetaBG    = 0x10
	incompat64Bit     = 0x80
	roCompatGDTCsum   = 0x10
	roCompatBigalloc  = 0x200
	roCompatMetaCsum  = 0x400
	bgBlockUninit     = 0x2
	extMaxBlockLog    = 6 // 64 KiB blocks
	extMinDescSize    = 32
	extMaxDescSize    = 1024
	extSuperblockSize = 1024
)

func isExt(sb []byte) bool {
	return len(sb) >= extSuperblockSize && binary.LittleEndian.Uint16(sb[0x38:]) == extMagic
}

// ext maps an ext2/3/4 file system of partition p from its superblock sb: it reads the group
// descriptors, then each group's block bitmap; a clear bit is a free block. A group whose
// bitmap is not initialised (BLOCK_UNINIT, trusted only with group descriptor checksums, as
// the kernel does) holds only its own metadata: its first blocks (superblock and descriptor
// copies) and its bitmaps and inode table wherever they are. Meta_bg and bigalloc layouts are
// not read: those file systems count as used.
func (m *Mapper) ext(p Extent, sb []byte) {
	le := binary.LittleEndian
	logBlock := le.Uint32(sb[0x18:])
	if logBlock > extMaxBlockLog {
		return
	}
	bs := int64(1024) << logBlock
	blocks := int64(le.Uint32(sb[0x4:]))
	firstData := int64(le.Uint32(sb[0x14:]))
	perGroup := int64(le.Uint32(sb[0x20:]))
	inodesPerGroup := int64(le.Uint32(sb[0x28:]))
	incompat, roCompat := le.Uint32(sb[0x60:]), le.Uint32(sb[0x64:])
	descSize := int64(extMinDescSize)
	if incompat&incompat64Bit != 0 {
		blocks |= int64(le.Uint32(sb[0x150:])) << 32
		descSize = int64(le.Uint16(sb[0xfe:]))
	}
	inodeSize := int64(128)
	if le.Uint32(sb[0x4c:]) >= 1 { // dynamic revision: inode size given
		inodeSize = int64(le.Uint16(sb[0x58:]))
	}
	reservedGDT := int64(le.Uint16(sb[0xce:]))
	if incompat&incompatMetaBG != 0 || roCompat&roCompatBigalloc != 0 ||
		perGroup <= 0 || perGroup > 8*bs || firstData > 1 || blocks <= firstData ||
		descSize < extMinDescSize || descSize > extMaxDescSize || descSize&(descSize-1) != 0 ||
		inodeSize < 128 || inodeSize > bs || blocks > p.Size/bs+1 {
		return
	}
	uninitOK := roCompat&(roCompatGDTCsum|roCompatMetaCsum) != 0
	groups := (blocks - firstData + perGroup - 1) / perGroup
	gdtBlocks := (groups*descSize + bs - 1) / bs
	if groups*descSize > maxTable {
		return
	}
	// The blocks from a group's start that may hold a superblock and descriptor copy.
	baseMeta := 1 + gdtBlocks + reservedGDT
	itableBlocks := (inodesPerGroup*inodeSize + bs - 1) / bs
	m.want(p.Start+(firstData+1)*bs, groups*descSize, func(gdt []byte) {
		for g := int64(0); g < groups; g++ {
			d := gdt[g*descSize : (g+1)*descSize]
			bitmap := int64(le.Uint32(d[0x0:]))
			inodeBitmap := int64(le.Uint32(d[0x4:]))
			itable := int64(le.Uint32(d[0x8:]))
			flags := le.Uint16(d[0x12:])
			if descSize >= 64 {
				bitmap |= int64(le.Uint32(d[0x20:])) << 32
				inodeBitmap |= int64(le.Uint32(d[0x24:])) << 32
				itable |= int64(le.Uint32(d[0x28:])) << 32
			}
			first := firstData + g*perGroup
			n := min(perGroup, blocks-first)
			if uninitOK && flags&bgBlockUninit != 0 {
				m.uninitGroup(p, bs, first, n, baseMeta, []Range{
					{bitmap, bitmap + 1}, {inodeBitmap, inodeBitmap + 1}, {itable, itable + itableBlocks}})
				continue
			}
			if bitmap <= firstData || bitmap >= blocks {
				continue
			}
			m.want(p.Start+bitmap*bs, (n+7)/8, func(bits []byte) {
				m.freeBlocks(p, bs, first, bits, n)
			})
		}
	})
}

// freeBlocks marks the clear bits of a group's block bitmap free: n blocks from block first.
func (m *Mapper) freeBlocks(p Extent, bs, first int64, bits []byte, n int64) {
	run := int64(-1)
	for i := int64(0); i <= n; i++ {
		used := i == n || bits[i/8]&(1<<(i%8)) != 0
		switch {
		case !used && run < 0:
			run = i
		case used && run >= 0:
			m.markFree(p, (first+run)*bs, (first+i)*bs)
			run = -1
		}
	}
}

// uninitGroup marks free the blocks of a group without a bitmap, but for its first baseMeta
// blocks and the metadata ranges meta (in blocks).
func (m *Mapper) uninitGroup(p Extent, bs, first, n, baseMeta int64, meta []Range) {
	used := []Range{{first, first + baseMeta}}
	used = append(used, meta...)
	free := usedOf(used, first+n, 1) // [0, group's end) less used
	for _, f := range free {
		m.markFree(p, max(f.Start, first)*bs, f.End*bs)
	}
}
