package usedmap

import "encoding/binary"

// isFAT tells a FAT boot sector by its signature and a sane BIOS parameter block.
func isFAT(b []byte) bool {
	if len(b) < 512 || b[510] != 0x55 || b[511] != 0xaa {
		return false
	}
	_, ok := parseBPB(b)
	return ok
}

type bpb struct {
	sectorSize, clusterSize int64 // bytes
	fatStart, fatSize       int64 // bytes from the partition's start, of the first FAT
	dataStart               int64 // bytes from the partition's start
	clusters                int64
	bits                    int // 12, 16 or 32
}

func parseBPB(b []byte) (bpb, bool) {
	le := binary.LittleEndian
	bps := int64(le.Uint16(b[0x0b:]))
	spc := int64(b[0x0d])
	reserved := int64(le.Uint16(b[0x0e:]))
	fats := int64(b[0x10])
	rootEntries := int64(le.Uint16(b[0x11:]))
	total := int64(le.Uint16(b[0x13:]))
	if total == 0 {
		total = int64(le.Uint32(b[0x20:]))
	}
	fatSectors := int64(le.Uint16(b[0x16:]))
	if fatSectors == 0 {
		fatSectors = int64(le.Uint32(b[0x24:]))
	}
	if bps < 512 || bps > 4096 || bps&(bps-1) != 0 || spc == 0 || spc&(spc-1) != 0 ||
		reserved == 0 || fats == 0 || fatSectors == 0 || total == 0 {
		return bpb{}, false
	}
	rootSectors := (rootEntries*32 + bps - 1) / bps
	data := reserved + fats*fatSectors + rootSectors
	if data >= total {
		return bpb{}, false
	}
	f := bpb{sectorSize: bps, clusterSize: spc * bps, fatStart: reserved * bps, fatSize: fatSectors * bps,
		dataStart: data * bps, clusters: (total - data) / spc}
	switch { // the FAT type follows from the cluster count alone
	case f.clusters < 4085:
		f.bits = 12
	case f.clusters < 65525:
		f.bits = 16
	default:
		f.bits = 32
	}
	if (f.clusters+2)*int64(f.bits) > f.fatSize*8 {
		return bpb{}, false // the FAT cannot describe every cluster
	}
	return f, true
}

// fat maps a FAT12/16/32 file system of partition p from its boot sector: the clusters its
// first FAT marks free (entry 0) are free; the reserved sectors, the FATs and the FAT12/16
// root directory are used.
func (m *Mapper) fat(p Extent, boot []byte) {
	f, ok := parseBPB(boot)
	if !ok || f.fatSize > maxTable || f.dataStart+f.clusters*f.clusterSize > p.Size {
		return
	}
	m.want(p.Start+f.fatStart, f.fatSize, func(table []byte) {
		run := int64(-1)
		for c := int64(2); c <= f.clusters+2; c++ {
			used := c == f.clusters+2 || fatEntry(table, f.bits, c) != 0
			switch {
			case !used && run < 0:
				run = c
			case used && run >= 0:
				m.markFree(p, f.dataStart+(run-2)*f.clusterSize, f.dataStart+(c-2)*f.clusterSize)
				run = -1
			}
		}
	})
}

func fatEntry(table []byte, bits int, c int64) uint32 {
	le := binary.LittleEndian
	switch bits {
	case 12:
		v := uint32(le.Uint16(table[c*3/2:]))
		if c%2 == 1 {
			return v >> 4
		}
		return v & 0xfff
	case 16:
		return uint32(le.Uint16(table[c*2:]))
	}
	return le.Uint32(table[c*4:]) & 0x0fffffff
}
