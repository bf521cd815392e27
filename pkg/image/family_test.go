package image_test

import (
	"context"
	"testing"

	"github.com/piseduce/piseduce/lab"
	"github.com/piseduce/piseduce/pkg/image"
	"github.com/piseduce/piseduce/pkg/testenv"
)

// The lab's images of each family, compressed as they are shipped, are told apart by what their
// partitions hold.
func TestExamineOSTellsFamilies(t *testing.T) {
	testenv.NeedCommand(t, "sfdisk", "mkfs.vfat", "mcopy", "mkfs.ext4", "debugfs", "openssl", "xz", "busybox")
	dir := t.TempDir()
	for _, c := range []struct{ kind, family, name string }{
		{lab.ImageTestOS, image.FamilyPlain, "PiSeduce lab test OS"},
		{lab.ImageRaspiOS, image.FamilyFirstboot, "Raspbian GNU/Linux 12 (bookworm)"},
		{lab.ImageCloudInit, image.FamilyCloudInit, "Ubuntu 24.04.1 LTS"},
		{lab.ImageBusybox, image.FamilyPlain, "Busybox lab system"},
	} {
		var im *lab.Image
		var err error
		if c.kind == lab.ImageTestOS {
			im, err = lab.BuildImage(dir)
		} else {
			im, err = lab.BuildFamilyImage(dir, c.kind)
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{im.Xz, im.Gz} {
			if f == "" {
				continue
			}
			info, o, err := image.ExamineOS(context.Background(), f, t.TempDir())
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if o.Family != c.family || o.Name != c.name || info.Layout.RootStart != int64(im.SectorStart) {
				t.Errorf("%s: family %q (%s), name %q, root at %d; want %q, %q, %d", f, o.Family, o.Why, o.Name,
					info.Layout.RootStart, c.family, c.name, im.SectorStart)
			}
		}
	}
}
