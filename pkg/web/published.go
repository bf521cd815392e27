package web

import (
	"cmp"

	"github.com/piseduce/piseduce/pkg/apijson"
	"github.com/piseduce/piseduce/pkg/publish"
	"github.com/piseduce/piseduce/pkg/store"
)

// published is how a user outside the nodes' network reaches d's node through the pimaster's
// nginx (README, "Publishing nodes"): the ssh command and the web address, each empty when
// not published. pitasks publishes only deployed nodes, so neither shows before.
func (s *Server) published(d *store.Deployment, v apijson.Deployment) (sshCmd, webURL string) {
	n := s.cfg.Nginx
	if !v.Reachable || d.Node.PublicPort == 0 {
		return "", ""
	}
	if addr := cmp.Or(n.PublicAddress, d.Node.PublicIP); n.StreamConf != "" && addr != "" {
		sshCmd = publish.SSHCommand(cmp.Or(v.SSHUser, "root"), addr, d.Node.PublicPort)
	}
	if d.Environment.Web && n.HTTPConf != "" {
		webURL = publish.WebURL(d.Node.Name, publish.Options{HTTPPort: n.HTTPPort, HTTPDomain: n.HTTPDomain})
	}
	return sshCmd, webURL
}
