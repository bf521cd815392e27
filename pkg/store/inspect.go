package store

import (
	"context"
	"fmt"
)

// SwitchByName returns the switch called name; ErrNotFound when there is none.
func (s *Store) SwitchByName(ctx context.Context, name string) (*Switch, error) {
	var sw Switch
	if err := s.db.WithContext(ctx).Where("name = ?", name).First(&sw).Error; err != nil {
		return nil, notFound(err)
	}
	return &sw, nil
}

// NodeInspection is what an admin sees of one node: where it is plugged, its latest
// deployment (nil when it never had one) and the last state events of that deployment,
// oldest first.
type NodeInspection struct {
	Node       Node
	Deployment *Deployment
	Events     []StateEvent
}

// InspectNodes returns the node called name, or every node when name is empty (by switch and
// port), each with its latest deployment and at most events of that deployment's last state
// events. ErrNotFound when name names no node.
func (s *Store) InspectNodes(ctx context.Context, name string, events int) ([]NodeInspection, error) {
	db := s.db.WithContext(ctx)
	var nodes []Node
	if name == "" {
		var err error
		if nodes, err = s.Nodes(ctx); err != nil {
			return nil, err
		}
	} else {
		n, err := s.NodeByName(ctx, name)
		if err != nil {
			return nil, err
		}
		nodes = []Node{*n}
	}
	ids := make([]uint, len(nodes))
	for i, n := range nodes {
		ids[i] = n.ID
	}
	var deps []Deployment
	if len(ids) > 0 {
		latest := db.Model(&Deployment{}).Select("MAX(id)").Where("node_id IN ?", ids).Group("node_id")
		if err := db.Preload("Environment").Where("id IN (?)", latest).Find(&deps).Error; err != nil {
			return nil, fmt.Errorf("store: unable to read deployments: %w", err)
		}
	}
	byNode := make(map[uint]*Deployment, len(deps))
	for i := range deps {
		byNode[deps[i].NodeID] = &deps[i]
	}
	out := make([]NodeInspection, len(nodes))
	for i, n := range nodes {
		out[i] = NodeInspection{Node: n, Deployment: byNode[n.ID]}
		d := out[i].Deployment
		if d == nil || events <= 0 {
			continue
		}
		var evs []StateEvent
		if err := db.Where("deployment_id = ?", d.ID).Order("id DESC").Limit(events).Find(&evs).Error; err != nil {
			return nil, fmt.Errorf("store: unable to list events of deployment %d: %w", d.ID, err)
		}
		for l, r := 0, len(evs)-1; l < r; l, r = l+1, r-1 {
			evs[l], evs[r] = evs[r], evs[l]
		}
		out[i].Events = evs
	}
	return out, nil
}
