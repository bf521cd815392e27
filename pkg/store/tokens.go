package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// Everything here stores only a hash (hex SHA-256) of a random token; the caller hashes.

// CreateAPIToken stores a token of user userID; it must have an expiry.
func (s *Store) CreateAPIToken(ctx context.Context, t *APIToken) error {
	if t.ExpiresAt.IsZero() {
		return fmt.Errorf("store: API token %q of user %d has no expiry", t.Name, t.UserID)
	}
	if err := s.db.WithContext(ctx).Create(t).Error; err != nil {
		return fmt.Errorf("store: unable to create API token: %w", err)
	}
	return nil
}

// APITokens returns the tokens of a user, newest first.
func (s *Store) APITokens(ctx context.Context, userID uint) ([]APIToken, error) {
	var ts []APIToken
	err := s.db.WithContext(ctx).Where("user_id = ?", userID).Order("id DESC").Find(&ts).Error
	return ts, err
}

// DeleteAPIToken revokes token id of user userID; ErrNotFound when it is not theirs.
func (s *Store) DeleteAPIToken(ctx context.Context, userID, id uint) error {
	res := s.db.WithContext(ctx).Where("id = ? AND user_id = ?", id, userID).Delete(&APIToken{})
	if res.Error != nil {
		return fmt.Errorf("store: unable to delete API token: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// ErrTokenExpired: the API token exists but its time is over.
var ErrTokenExpired = errors.New("store: API token expired")

// UserByAPIToken returns the token with that hash and its owner, ErrTokenExpired when it
// expired, and notes its use (at most once a minute, to keep API calls read-only most of the
// time).
func (s *Store) UserByAPIToken(ctx context.Context, hash string, now time.Time) (*User, *APIToken, error) {
	var t APIToken
	db := s.db.WithContext(ctx)
	if err := db.Where("hash = ?", hash).First(&t).Error; err != nil {
		return nil, nil, notFound(err)
	}
	now = now.UTC()
	if !now.Before(t.ExpiresAt) {
		return nil, nil, ErrTokenExpired
	}
	u, err := s.User(ctx, t.UserID)
	if err != nil {
		return nil, nil, err
	}
	if t.LastUsedAt == nil || now.Sub(*t.LastUsedAt) > time.Minute {
		db.Model(&APIToken{}).Where("id = ?", t.ID).Update("last_used_at", now)
	}
	return u, &t, nil
}

// CreateSession stores a new session.
func (s *Store) CreateSession(ctx context.Context, se *Session) error {
	if err := s.db.WithContext(ctx).Omit("User").Create(se).Error; err != nil {
		return fmt.Errorf("store: unable to create session: %w", err)
	}
	return nil
}

// SessionByHash returns the unexpired session with that hash, with its user.
func (s *Store) SessionByHash(ctx context.Context, hash string, now time.Time) (*Session, error) {
	var se Session
	err := s.db.WithContext(ctx).Preload("User").Where("hash = ? AND expires_at > ?", hash, now.UTC()).First(&se).Error
	if err != nil {
		return nil, notFound(err)
	}
	return &se, nil
}

// DeleteSession ends the session with that hash.
func (s *Store) DeleteSession(ctx context.Context, hash string) error {
	return s.db.WithContext(ctx).Where("hash = ?", hash).Delete(&Session{}).Error
}

// DeleteExpiredSessions removes the sessions that expired before now, the e-mail tokens a day
// after and the API tokens a month after (their owners see them as expired until then).
func (s *Store) DeleteExpiredSessions(ctx context.Context, now time.Time) error {
	db := s.db.WithContext(ctx)
	now = now.UTC()
	if err := db.Where("expires_at <= ?", now).Delete(&Session{}).Error; err != nil {
		return err
	}
	if err := db.Where("expires_at <= ?", now.Add(-24*time.Hour)).Delete(&EmailToken{}).Error; err != nil {
		return err
	}
	return db.Where("expires_at <= ?", now.Add(-30*24*time.Hour)).Delete(&APIToken{}).Error
}

// CreateEmailToken stores a token to send by e-mail.
func (s *Store) CreateEmailToken(ctx context.Context, t *EmailToken) error {
	if err := s.db.WithContext(ctx).Omit("User").Create(t).Error; err != nil {
		return fmt.Errorf("store: unable to create e-mail token: %w", err)
	}
	return nil
}

// ErrTokenInvalid: the e-mail token is unknown, used or expired.
var ErrTokenInvalid = errors.New("store: this link is invalid, already used or expired")

// useEmailToken marks the unexpired, unused token with that hash and purpose used, and returns
// it; ErrTokenInvalid otherwise.
func useEmailToken(tx *gorm.DB, hash, purpose string, now time.Time) (*EmailToken, error) {
	var t EmailToken
	if err := tx.Where("hash = ? AND purpose = ?", hash, purpose).First(&t).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, ErrTokenInvalid
		}
		return nil, err
	}
	// The guarded update is what makes the token single-use, even under concurrent clicks.
	res := tx.Model(&EmailToken{}).Where("id = ? AND used_at IS NULL AND expires_at > ?", t.ID, now).
		Update("used_at", now)
	if res.Error != nil {
		return nil, res.Error
	}
	if res.RowsAffected == 0 {
		return nil, ErrTokenInvalid
	}
	return &t, nil
}

// ResetPassword uses the password reset token with that hash, once, before it expires: the
// user's password becomes hash, as a password change does (every session ends, every API
// token is revoked). A revoked or deleted user's link does nothing.
func (s *Store) ResetPassword(ctx context.Context, tokenHash, hash string, now time.Time) (*User, error) {
	now = now.UTC()
	var u *User
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		t, err := useEmailToken(tx, tokenHash, TokenResetPassword, now)
		if err != nil {
			return err
		}
		if u, err = s.lockUser(tx, t.UserID); err != nil {
			return ErrTokenInvalid
		}
		if !u.Authorized {
			return ErrTokenInvalid
		}
		return setPassword(tx, u.ID, hash, false, "")
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// ConfirmEmail uses the confirmation token with that hash, once, before it expires: the user's
// e-mail becomes confirmed, and authorized too when autoApprove is set.
func (s *Store) ConfirmEmail(ctx context.Context, hash string, now time.Time, autoApprove bool) (*User, error) {
	now = now.UTC()
	var u User
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		t, err := useEmailToken(tx, hash, TokenConfirmEmail, now)
		if err != nil {
			return err
		}
		updates := map[string]any{"email_confirmed": true}
		if autoApprove {
			updates["authorized"] = true
		}
		if err := tx.Model(&User{}).Where("id = ?", t.UserID).Updates(updates).Error; err != nil {
			return err
		}
		return tx.First(&u, t.UserID).Error
	})
	if err != nil {
		return nil, err
	}
	return &u, nil
}
