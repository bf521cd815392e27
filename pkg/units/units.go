// Package units writes sizes and rates for people, the same way in every page, API answer and
// command: binary units labelled as such (KiB, MiB, GiB, TiB = 2^10, 2^20, 2^30, 2^40 bytes),
// the units partition sizes, cards and images are measured in.
package units

import (
	"fmt"
	"math"
)

// MiB is 2^20 bytes.
const MiB = 1 << 20

// Bytes writes n bytes as "512 B", "76.0 MiB" or "1.5 GiB".
func Bytes(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	f, i := float64(n), 0
	for f >= 1024 && i < 4 {
		f /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %ciB", f, " KMGT"[i])
}

// Rate writes a throughput in bytes per second as "9.5 MiB/s".
func Rate(bytesPerSec int64) string { return Bytes(bytesPerSec) + "/s" }

// MiBs is n bytes in MiB rounded to one decimal as Bytes does, for JSON fields named *_mib*.
func MiBs(n int64) float64 { return math.Round(float64(n)*10/MiB) / 10 }
