package units

import (
	"fmt"
	"testing"
)

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 76 << 20: "76.0 MiB", 1_800_000_000: "1.7 GiB",
		3 << 40: "3.0 TiB", 5 << 50: "5120.0 TiB",
	} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
	if got := Rate(10_000_000); got != "9.5 MiB/s" {
		t.Errorf("Rate(10 MB/s) = %q", got)
	}
	for n, want := range map[int64]float64{10_000_000: 9.5, 9_500_000: 9.1, 1 << 20: 1} {
		if got := MiBs(n); got != want || Rate(n) != fmt.Sprintf("%.1f MiB/s", want) {
			t.Errorf("MiBs(%d) = %v, Rate = %s: they must agree", n, got, Rate(n))
		}
	}
}
