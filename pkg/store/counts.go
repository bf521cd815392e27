package store

import (
	"context"
	"time"
)

// ReservationCounts is what the reservations hold at one moment.
type ReservationCounts struct {
	Reservations int64 // reservations that have started and not ended
	Nodes        int64 // nodes they hold
}

// HeldReservations counts the reservations running at now and their nodes, for metrics.
func (s *Store) HeldReservations(ctx context.Context, now time.Time) (ReservationCounts, error) {
	var out ReservationCounts
	now = now.UTC()
	err := s.db.WithContext(ctx).Model(&Reservation{}).
		Select("COUNT(DISTINCT reservations.id) AS reservations, COUNT(reservation_nodes.node_id) AS nodes").
		Joins("LEFT JOIN reservation_nodes ON reservation_nodes.reservation_id = reservations.id").
		Where("reservations.starts_at <= ? AND reservations.ends_at > ?", now, now).
		Scan(&out).Error
	return out, err
}
