package clusterdesc

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"gorm.io/gorm"

	"github.com/piseduce/piseduce/pkg/image"
	"github.com/piseduce/piseduce/pkg/store"
)

// Summary counts what an import created and updated.
type Summary struct {
	Created, Updated int
}

func (s Summary) String() string { return fmt.Sprintf("%d created, %d updated", s.Created, s.Updated) }

// Import writes d into the store in one transaction: switches, nodes and environments are
// matched by name (created or updated, so importing twice changes nothing), the sign-up rules
// of main.json become settings. On any error nothing is written.
func Import(ctx context.Context, s *store.Store, d *Desc) (Summary, error) {
	var sum Summary
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		switchIDs := map[string]uint{}
		for _, in := range d.Switches {
			sw := store.Switch{Name: in.Name, IP: in.IP, SNMPPort: in.SNMPPort, SNMPVersion: "2c",
				Community: in.Community, PortCount: in.PortNb, MasterPort: in.MasterPort, OID: in.OID, OIDOffset: in.OIDOffset}
			if err := upsert(tx, &sw, &sw.ID, in.Name, &sum); err != nil {
				return fmt.Errorf("clusterdesc: switch %s: %w", in.Name, err)
			}
			switchIDs[in.Name] = sw.ID
		}
		for _, in := range d.Nodes {
			n := store.Node{Name: in.Name, SwitchID: switchIDs[in.Switch], Port: in.PortNumber, IP: in.IP,
				MAC: strings.ToLower(in.MAC), Serial: strings.ToLower(in.ID), Model: in.Model}
			if err := upsert(tx, &n, &n.ID, in.Name, &sum); err != nil {
				return fmt.Errorf("clusterdesc: node %s: %w", in.Name, err)
			}
		}
		for _, in := range d.Environments {
			e := store.Environment{Name: in.Name, Type: in.Type, Description: strings.Join(in.Desc, "\n"),
				ImageName: in.ImgName, ImageSize: in.ImgSize, ImageFormat: image.FormatOf(in.ImgName),
				DecompressOn: "node", SectorStart: in.SectorStart, SSHUser: in.SSHUser, Shell: in.Shell,
				Web: in.Web, ScriptTest: in.ScriptTest}
			if err := upsert(tx, &e, &e.ID, in.Name, &sum); err != nil {
				return fmt.Errorf("clusterdesc: environment %s: %w", in.Name, err)
			}
		}
		settings := map[string]string{
			store.SettingSignupDomains: strings.Join(d.Main.EmailFilters, "\n"),
			store.SettingEmailSignup:   strconv.FormatBool(d.Main.EmailSignup),
		}
		for k, v := range settings {
			if err := tx.Where("`key` = ?", k).Assign(store.Setting{Value: v}).FirstOrCreate(&store.Setting{Key: k}).Error; err != nil {
				return fmt.Errorf("clusterdesc: setting %s: %w", k, err)
			}
		}
		return nil
	})
	if err != nil {
		return Summary{}, err
	}
	return sum, nil
}

// upsert saves row (a model whose primary key is *id) under its unique name: an existing row
// of that name is overwritten, keeping its id and creation time.
func upsert(tx *gorm.DB, row any, id *uint, name string, sum *Summary) error {
	var existing struct{ ID uint }
	err := tx.Model(row).Select("id").Where("name = ?", name).Take(&existing).Error
	switch {
	case err == gorm.ErrRecordNotFound:
		sum.Created++
		return tx.Create(row).Error
	case err != nil:
		return err
	}
	*id = existing.ID
	sum.Updated++
	return tx.Model(row).Omit("created_at").Select("*").Updates(row).Error
}
