package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/piseduce/piseduce/pkg/process"
)

// Errors of the web's store methods.
var (
	// ErrDuplicate: a row with the same unique value (an e-mail, a name) exists.
	ErrDuplicate = errors.New("store: already exists")
	// ErrInUse: the row is still referenced (a switch with nodes, a node or environment with deployments).
	ErrInUse = errors.New("store: still in use")
	// ErrLastAdmin: the change would leave no active admin.
	ErrLastAdmin = errors.New("store: the last active admin cannot be removed")
)

// deletedDomain marks the tombstone of a deleted user whose nodes are still being destroyed:
// the row keeps the foreign keys of its reservations consistent, with no personal data left.
// ".invalid" is a reserved top-level domain, so no one can sign up with it.
const deletedDomain = "@deleted.invalid"

// IsDeleted reports whether u is the tombstone of a deleted user.
func (u *User) IsDeleted() bool { return strings.HasSuffix(u.Email, deletedDomain) }

// DisplayName is the name shown to other users (never the e-mail).
func (u *User) DisplayName() string {
	if u.IsDeleted() {
		return "deleted user"
	}
	n := strings.TrimSpace(u.FirstName + " " + u.LastName)
	if n == "" {
		return fmt.Sprintf("user %d", u.ID)
	}
	return n
}

// NormalizeEmail is the form e-mails are stored and looked up in.
func NormalizeEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

// CreateUser inserts u; ErrDuplicate when the e-mail is taken.
func (s *Store) CreateUser(ctx context.Context, u *User) error {
	u.Email = NormalizeEmail(u.Email)
	if err := s.db.WithContext(ctx).Create(u).Error; err != nil {
		if errors.Is(err, gorm.ErrDuplicatedKey) {
			return ErrDuplicate
		}
		return fmt.Errorf("store: unable to create user: %w", err)
	}
	return nil
}

// User returns the user with id.
func (s *Store) User(ctx context.Context, id uint) (*User, error) {
	var u User
	if err := s.db.WithContext(ctx).First(&u, id).Error; err != nil {
		return nil, notFound(err)
	}
	return &u, nil
}

// UserByEmail returns the user with that e-mail (case-insensitive).
func (s *Store) UserByEmail(ctx context.Context, email string) (*User, error) {
	var u User
	if err := s.db.WithContext(ctx).Where("email = ?", NormalizeEmail(email)).First(&u).Error; err != nil {
		return nil, notFound(err)
	}
	return &u, nil
}

// Users returns every user but the tombstones, oldest first.
func (s *Store) Users(ctx context.Context) ([]User, error) {
	var us []User
	err := s.db.WithContext(ctx).Where("email NOT LIKE ?", "%"+deletedDomain).Order("id").Find(&us).Error
	if err != nil {
		return nil, fmt.Errorf("store: unable to list users: %w", err)
	}
	return us, nil
}

// CountUsers counts every user row.
func (s *Store) CountUsers(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.WithContext(ctx).Model(&User{}).Count(&n).Error
	return n, err
}

// activeAdmins counts the admins who can log in, other than except.
func activeAdmins(tx *gorm.DB, except uint) (int64, error) {
	var n int64
	err := tx.Model(&User{}).Where("admin = ? AND authorized = ? AND id <> ? AND email NOT LIKE ?",
		true, true, except, "%"+deletedDomain).Count(&n).Error
	return n, err
}

// lockUser reads user id, locking its row on MariaDB until the end of tx.
func (s *Store) lockUser(tx *gorm.DB, id uint) (*User, error) {
	var u User
	q := tx
	if s.Dialect == "mysql" {
		q = q.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	if err := q.First(&u, id).Error; err != nil {
		return nil, notFound(err)
	}
	if u.IsDeleted() {
		return nil, ErrNotFound
	}
	return &u, nil
}

// SetUserAuthorized approves (true) or revokes (false) a user. Revoking ends their sessions
// and revokes their API tokens; the last active admin cannot be revoked.
func (s *Store) SetUserAuthorized(ctx context.Context, id uint, authorized bool) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		u, err := s.lockUser(tx, id)
		if err != nil {
			return err
		}
		if !authorized && u.Admin {
			n, err := activeAdmins(tx, id)
			if err != nil {
				return err
			}
			if n == 0 {
				return ErrLastAdmin
			}
		}
		if err := tx.Model(&User{}).Where("id = ?", id).Update("authorized", authorized).Error; err != nil {
			return fmt.Errorf("store: unable to update user %d: %w", id, err)
		}
		if !authorized {
			return deleteCredentials(tx, id, "")
		}
		return nil
	})
}

// deleteCredentials ends the sessions of user id, but keepSessionHash's, and revokes their API tokens.
func deleteCredentials(tx *gorm.DB, id uint, keepSessionHash string) error {
	if err := tx.Where("user_id = ? AND hash <> ?", id, keepSessionHash).Delete(&Session{}).Error; err != nil {
		return fmt.Errorf("store: unable to end the sessions of user %d: %w", id, err)
	}
	if err := tx.Where("user_id = ?", id).Delete(&APIToken{}).Error; err != nil {
		return fmt.Errorf("store: unable to revoke the API tokens of user %d: %w", id, err)
	}
	return nil
}

// SetUserAdmin makes (true) or unmakes (false) an admin; the last active admin stays one.
func (s *Store) SetUserAdmin(ctx context.Context, id uint, admin bool) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		u, err := s.lockUser(tx, id)
		if err != nil {
			return err
		}
		if !admin && u.Admin {
			n, err := activeAdmins(tx, id)
			if err != nil {
				return err
			}
			if n == 0 {
				return ErrLastAdmin
			}
		}
		return tx.Model(&User{}).Where("id = ?", id).Update("admin", admin).Error
	})
}

// SetUserPassword stores a new bcrypt hash chosen by the user, ends every other session of the
// user (keepSessionHash, when not empty, is the session that made the change) and revokes all
// their API tokens.
func (s *Store) SetUserPassword(ctx context.Context, id uint, hash, keepSessionHash string) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		return setPassword(tx, id, hash, false, keepSessionHash)
	})
}

// SetOneTimePassword stores the hash of a password given to the user (by an admin or
// pitasks), which they must change at their next login; all their sessions end and their API
// tokens are revoked.
func (s *Store) SetOneTimePassword(ctx context.Context, id uint, hash string) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if _, err := s.lockUser(tx, id); err != nil {
			return err
		}
		return setPassword(tx, id, hash, true, "")
	})
}

// setPassword is what every password change does: the new hash, whether it is a one-time
// password, every session but keepSessionHash ended, every API token and pending password
// reset link revoked.
func setPassword(tx *gorm.DB, id uint, hash string, oneTime bool, keepSessionHash string) error {
	res := tx.Model(&User{}).Where("id = ?", id).
		Updates(map[string]any{"password_hash": hash, "must_change_password": oneTime})
	if res.Error != nil {
		return fmt.Errorf("store: unable to set password of user %d: %w", id, res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	if err := tx.Where("user_id = ? AND purpose = ?", id, TokenResetPassword).Delete(&EmailToken{}).Error; err != nil {
		return fmt.Errorf("store: unable to revoke the password reset links of user %d: %w", id, err)
	}
	return deleteCredentials(tx, id, keepSessionHash)
}

// SetUserSSHKey stores the user's account SSH public key ("" removes it).
func (s *Store) SetUserSSHKey(ctx context.Context, id uint, key string) error {
	res := s.db.WithContext(ctx).Model(&User{}).Where("id = ?", id).Update("ssh_key", key)
	if res.Error != nil {
		return fmt.Errorf("store: unable to set SSH key of user %d: %w", id, res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// unfinished selects the deployments that are not destroyed yet.
func unfinished(q *gorm.DB) *gorm.DB {
	return q.Where("NOT (process = ? AND state = ?)", process.Destroy, process.Destroyed)
}

// DeleteUser deletes a user. Their reservations end now, their future ones are dropped, and every
// node they still hold is sent to destroy. When nothing is left to destroy the user and all their
// rows are deleted at once (deleted is true); otherwise the row becomes an anonymous tombstone
// (no e-mail, name, key or password, unable to log in) that PurgeDeletedUsers removes once
// pitasks has destroyed the last node. The last active admin cannot be deleted.
func (s *Store) DeleteUser(ctx context.Context, id uint, now time.Time) (deleted bool, err error) {
	now = now.UTC()
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		u, err := s.lockUser(tx, id)
		if err != nil {
			return err
		}
		if u.Admin {
			n, err := activeAdmins(tx, id)
			if err != nil {
				return err
			}
			if n == 0 {
				return ErrLastAdmin
			}
		}
		for _, m := range []any{&Session{}, &APIToken{}, &EmailToken{}} {
			if err := tx.Where("user_id = ?", id).Delete(m).Error; err != nil {
				return fmt.Errorf("store: unable to delete the credentials of user %d: %w", id, err)
			}
		}
		if err := tx.Model(&Environment{}).Where("owner_id = ?", id).Update("owner_id", 0).Error; err != nil {
			return err
		}
		// Future reservations never started: drop them. Current ones end now.
		var future []uint
		if err := tx.Model(&Reservation{}).Where("user_id = ? AND starts_at > ?", id, now).Pluck("id", &future).Error; err != nil {
			return err
		}
		if err := deleteReservations(tx, future); err != nil {
			return err
		}
		if err := tx.Model(&Reservation{}).Where("user_id = ? AND ends_at > ?", id, now).
			Updates(map[string]any{"ends_at": now, "updated_at": now}).Error; err != nil {
			return err
		}
		if err := s.destroyDeployments(ctx, tx, "user_id = ?", id); err != nil {
			return err
		}
		var left int64
		if err := unfinished(tx.Model(&Deployment{}).Where("user_id = ?", id)).Count(&left).Error; err != nil {
			return err
		}
		if left == 0 {
			deleted = true
			return hardDeleteUser(tx, id)
		}
		return tx.Model(&User{}).Where("id = ?", id).Updates(map[string]any{
			"email": fmt.Sprintf("deleted-%d%s", id, deletedDomain), "password_hash": "!",
			"first_name": "", "last_name": "", "ssh_key": "", "authorized": false, "admin": false,
			"email_confirmed": false, "updated_at": now,
		}).Error
	})
	return deleted, err
}

// destroyDeployments asks for destroy on every deployment selected by the condition that is
// not already being destroyed (a lost, failed or held destroy is asked again).
func (s *Store) destroyDeployments(ctx context.Context, tx *gorm.DB, cond string, args ...any) error {
	var ids []uint
	err := tx.Model(&Deployment{}).Where(cond, args...).
		Where("NOT (process = ? AND state NOT IN ? AND hold = '')", process.Destroy, []process.StateName{process.Lost, process.Failed}).
		Pluck("id", &ids).Error
	if err != nil {
		return fmt.Errorf("store: unable to find deployments to destroy: %w", err)
	}
	inTx := &Store{db: tx, Dialect: s.Dialect}
	for _, id := range ids {
		if err := inTx.RequestProcess(ctx, id, process.Destroy); err != nil {
			return fmt.Errorf("store: unable to destroy deployment %d: %w", id, err)
		}
	}
	return nil
}

// deleteReservations deletes reservations (their deployments, events and node links too).
func deleteReservations(tx *gorm.DB, ids []uint) error {
	if len(ids) == 0 {
		return nil
	}
	var depIDs []uint
	if err := tx.Model(&Deployment{}).Where("reservation_id IN ?", ids).Pluck("id", &depIDs).Error; err != nil {
		return err
	}
	if len(depIDs) > 0 {
		if err := tx.Where("deployment_id IN ?", depIDs).Delete(&StateEvent{}).Error; err != nil {
			return err
		}
		if err := tx.Where("id IN ?", depIDs).Delete(&Deployment{}).Error; err != nil {
			return err
		}
	}
	if err := tx.Exec("DELETE FROM reservation_nodes WHERE reservation_id IN ?", ids).Error; err != nil {
		return err
	}
	return tx.Where("id IN ?", ids).Delete(&Reservation{}).Error
}

func hardDeleteUser(tx *gorm.DB, id uint) error {
	var resIDs []uint
	if err := tx.Model(&Reservation{}).Where("user_id = ?", id).Pluck("id", &resIDs).Error; err != nil {
		return err
	}
	if err := deleteReservations(tx, resIDs); err != nil {
		return fmt.Errorf("store: unable to delete the reservations of user %d: %w", id, err)
	}
	// Deployments whose reservation is gone already went with it; none should be left.
	if err := tx.Where("user_id = ?", id).Delete(&Deployment{}).Error; err != nil {
		return err
	}
	if err := tx.Delete(&User{}, id).Error; err != nil {
		return fmt.Errorf("store: unable to delete user %d: %w", id, err)
	}
	return nil
}

// PurgeDeletedUsers removes the tombstones whose nodes are all destroyed; it returns how many.
func (s *Store) PurgeDeletedUsers(ctx context.Context) (int, error) {
	var ids []uint
	if err := s.db.WithContext(ctx).Model(&User{}).Where("email LIKE ?", "%"+deletedDomain).Pluck("id", &ids).Error; err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			var left int64
			if err := unfinished(tx.Model(&Deployment{}).Where("user_id = ?", id)).Count(&left).Error; err != nil {
				return err
			}
			if left > 0 {
				return nil
			}
			n++
			return hardDeleteUser(tx, id)
		})
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
