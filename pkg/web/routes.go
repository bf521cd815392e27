package web

import (
	"io/fs"
	"net"
	"net/http"

	"github.com/labstack/echo/v4"
)

// Access levels of routes. A route registered without one is refused to everybody: the guard
// (middleware.go) looks every request's route up in Server.access and denies what it does not find.
type access int

const (
	denied   access = iota // the zero value: no route gets it on purpose
	open                   // anyone; no session, no cookie (health check, static files)
	public                 // anyone, no session needed (login, sign-up…)
	user                   // a logged-in, approved user (session cookie)
	admin                  // a logged-in admin
	apiUser                // /api/v1 with a user's Bearer token
	apiAdmin               // /api/v1 with an admin's Bearer token
)

func (a access) String() string {
	return [...]string{"denied", "open", "public", "user", "admin", "apiUser", "apiAdmin"}[a]
}

// clientIP says where the client's address comes from: the peer's address, or, when the peer
// is one of [frontend] trusted_proxies, the last address of X-Forwarded-For that is not one of
// them (what a client sends in the header itself is never believed).
func (s *Server) clientIP() echo.IPExtractor {
	proxies := s.cfg.Frontend.TrustedProxies
	if len(proxies) == 0 {
		return echo.ExtractIPDirect()
	}
	trust := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range proxies {
		trust = append(trust, echo.TrustIPRange(&net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}))
	}
	return echo.ExtractIPFromXFFHeader(trust...)
}

// routes registers every route, grouped by access level. Every state change is a POST (PUT
// and DELETE only in the API, which is not reachable with cookies).
func (s *Server) routes(static fs.FS) *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.IPExtractor = s.clientIP()
	e.HTTPErrorHandler = s.handleError
	s.access = map[string]access{}
	e.Use(s.observe, s.recoverer, s.securityHeaders, s.noteWrites, s.guard)
	add := func(level access, method, path string, h echo.HandlerFunc) {
		e.Add(method, path, h)
		s.access[method+" "+path] = level
	}
	get := http.MethodGet
	post := http.MethodPost

	// Public: the allow-list.
	add(open, get, "/healthz", s.healthz)
	add(open, get, "/static/*", echo.StaticDirectoryHandler(static, false))
	add(public, get, "/login", s.showLogin)
	add(public, post, "/login", s.checkLogin)
	add(public, get, "/signup", s.showSignup)
	add(public, post, "/signup", s.saveSignup)
	add(public, get, "/confirm/:token", s.showConfirm)
	add(public, post, "/confirm", s.saveConfirm)
	add(public, get, "/docs/api", s.showAPIDocs)
	add(open, get, "/api/v1/openapi.json", s.apiDescription)
	add(open, post, "/api/v1/tokens", s.apiCreateToken)
	add(public, get, "/password-reset", s.showPasswordReset)
	add(public, post, "/password-reset", s.savePasswordReset)
	add(public, get, "/password-reset/:token", s.showPasswordResetToken)
	add(public, post, "/password-reset/choose", s.saveNewPassword)

	// Users.
	add(user, post, "/logout", s.logout)
	add(user, get, "/", s.home)
	add(user, get, "/resources", s.showResources)
	add(user, get, "/nodes/:id", s.showNode)
	add(user, get, "/reserve", s.showReserve)
	add(user, post, "/reserve", s.saveReserve)
	add(user, get, "/availability", s.showAvailability)
	add(user, post, "/reservations/:id/extend", s.extendReservation)
	add(user, post, "/reservations/:id/end", s.endReservation)
	add(user, post, "/reservations/:id/nodes/:node/release", s.releaseNode)
	add(user, get, "/reservations/:id/deploy", s.showDeploy)
	add(user, post, "/reservations/:id/deploy", s.saveDeploy)
	add(user, get, "/deployments", s.showDeployments)
	add(user, get, "/deployments/status.json", s.deploymentsStatus)
	add(user, get, "/deployments/events", s.deploymentEvents)
	add(user, get, "/deployments/:id", s.showDeployment)
	add(user, post, "/deployments/:id/reboot", s.rebootDeployment)
	add(user, post, "/deployments/:id/redeploy", s.redeployDeployment)
	add(user, post, "/deployments/:id/destroy", s.destroyDeployment)
	add(user, post, "/deployments/:id/save", s.saveAsEnvironment)
	add(user, get, "/account", s.showAccount)
	add(user, post, "/account/password", s.saveAccountPassword)
	add(user, post, "/account/sshkey", s.saveAccountSSHKey)
	add(user, post, "/account/notifications", s.saveNotify)
	add(user, post, "/account/tokens", s.createToken)
	add(user, post, "/account/tokens/:id/revoke", s.revokeToken)

	// Admins.
	add(admin, get, "/admin/users", s.showAdminUsers)
	add(admin, post, "/admin/users/:id/approve", s.approveUser)
	add(admin, post, "/admin/users/:id/revoke", s.revokeUser)
	add(admin, post, "/admin/users/:id/admin", s.makeAdmin)
	add(admin, post, "/admin/users/:id/unadmin", s.unmakeAdmin)
	add(admin, post, "/admin/users/:id/delete", s.deleteUser)
	add(admin, post, "/admin/users/:id/password", s.giveOneTimePassword)
	add(admin, get, "/admin/settings", s.showAdminSettings)
	add(admin, post, "/admin/settings", s.saveAdminSettings)
	add(admin, get, "/admin/switches", s.showAdminSwitches)
	add(admin, get, "/admin/switches/new", s.showSwitchForm)
	add(admin, post, "/admin/switches", s.saveSwitch)
	add(admin, get, "/admin/switches/:id", s.showSwitchPorts)
	add(admin, get, "/admin/switches/:id/edit", s.showSwitchForm)
	add(admin, post, "/admin/switches/:id", s.saveSwitch)
	add(admin, post, "/admin/switches/:id/delete", s.deleteSwitch)
	add(admin, post, "/admin/switches/:id/ports/:port", s.powerPort)
	add(admin, post, "/admin/switches/:id/status", s.readPorts)
	add(admin, get, "/admin/port-requests/:id", s.showPortRequest)
	add(admin, get, "/admin/port-requests/:id/status.json", s.portRequestStatus)
	add(admin, post, "/admin/switches/:id/discover", s.startDiscovery)
	add(admin, get, "/admin/discovery/:id", s.showDiscovery)
	add(admin, get, "/admin/discovery/:id/status.json", s.discoveryStatus)
	add(admin, get, "/admin/nodes", s.showAdminNodes)
	add(admin, get, "/admin/nodes/new", s.showNodeForm)
	add(admin, post, "/admin/nodes", s.saveNode)
	add(admin, get, "/admin/nodes/:id/edit", s.showNodeForm)
	add(admin, post, "/admin/nodes/:id", s.saveNode)
	add(admin, post, "/admin/nodes/:id/delete", s.deleteNode)
	add(admin, get, "/admin/environments", s.showAdminEnvironments)
	add(admin, get, "/admin/environments/new", s.showEnvironmentForm)
	add(admin, get, "/admin/environments/register", s.showRegisterEnvironment)
	add(admin, post, "/admin/environments/register", s.registerEnvironment)
	add(admin, post, "/admin/environments", s.saveEnvironment)
	add(admin, get, "/admin/environments/:id/edit", s.showEnvironmentForm)
	add(admin, post, "/admin/environments/:id", s.saveEnvironment)
	add(admin, post, "/admin/environments/:id/delete", s.deleteEnvironment)
	add(admin, get, "/admin/import", s.showImport)
	add(admin, post, "/admin/import", s.saveImport)
	add(admin, get, "/admin/deployments", s.showAdminDeployments)
	add(admin, post, "/admin/reservations/:id/end", s.adminEndReservation)
	add(admin, post, "/admin/deployments/:id/state", s.forceState)
	add(admin, get, "/admin/stats", s.showAdminStats)
	add(admin, get, "/admin/stats/nodes/:id", s.showNodeStats)
	add(admin, get, "/admin/stats/environments/:id", s.showEnvironmentStats)
	add(admin, get, "/metrics", s.showMetrics)

	// JSON API, Bearer tokens only (no cookies, so no CSRF).
	add(apiUser, get, "/api/v1/nodes", s.apiNodes)
	add(apiUser, http.MethodDelete, "/api/v1/tokens/current", s.apiRevokeCurrentToken)
	add(apiUser, get, "/api/v1/events", s.deploymentEvents)
	add(apiUser, get, "/api/v1/environments", s.apiEnvironments)
	add(apiUser, get, "/api/v1/availability", s.apiAvailability)
	add(apiUser, get, "/api/v1/reservations", s.apiReservations)
	add(apiUser, post, "/api/v1/reservations", s.apiCreateReservation)
	add(apiUser, post, "/api/v1/reservations/:id/extend", s.apiExtendReservation)
	add(apiUser, post, "/api/v1/reservations/:id/end", s.apiEndReservation)
	add(apiUser, post, "/api/v1/reservations/:id/nodes/:node/release", s.apiReleaseNode)
	add(apiUser, get, "/api/v1/deployments", s.apiDeployments)
	add(apiUser, post, "/api/v1/deployments", s.apiCreateDeployments)
	add(apiUser, get, "/api/v1/deployments/:id", s.apiDeployment)
	add(apiUser, post, "/api/v1/deployments/:id/destroy", s.apiDestroy)
	add(apiUser, post, "/api/v1/deployments/:id/reboot", s.apiReboot)
	add(apiUser, post, "/api/v1/deployments/:id/redeploy", s.apiRedeploy)

	add(apiAdmin, get, "/api/v1/admin/users", s.apiAdminUsers)
	add(apiAdmin, post, "/api/v1/admin/users/:id/approve", s.apiApproveUser)
	add(apiAdmin, post, "/api/v1/admin/users/:id/revoke", s.apiRevokeUser)
	add(apiAdmin, post, "/api/v1/admin/users/:id/admin", s.apiMakeAdmin)
	add(apiAdmin, post, "/api/v1/admin/users/:id/unadmin", s.apiUnmakeAdmin)
	add(apiAdmin, http.MethodDelete, "/api/v1/admin/users/:id", s.apiDeleteUser)
	add(apiAdmin, post, "/api/v1/admin/users/:id/password", s.apiGiveOneTimePassword)
	add(apiAdmin, get, "/api/v1/admin/quotas", s.apiAdminQuotas)
	add(apiAdmin, http.MethodPut, "/api/v1/admin/quotas", s.apiUpdateQuotas)
	add(apiAdmin, get, "/api/v1/admin/switches", s.apiAdminSwitches)
	add(apiAdmin, post, "/api/v1/admin/switches", s.apiCreateSwitch)
	add(apiAdmin, get, "/api/v1/admin/switches/:id", s.apiAdminSwitch)
	add(apiAdmin, http.MethodPut, "/api/v1/admin/switches/:id", s.apiUpdateSwitch)
	add(apiAdmin, http.MethodDelete, "/api/v1/admin/switches/:id", s.apiDeleteSwitch)
	add(apiAdmin, post, "/api/v1/admin/switches/:id/ports/:port/:action", s.apiPowerPort)
	add(apiAdmin, post, "/api/v1/admin/switches/:id/status", s.apiReadPorts)
	add(apiAdmin, get, "/api/v1/admin/port-requests/:id", s.portRequestStatus)
	add(apiAdmin, post, "/api/v1/admin/switches/:id/discover", s.apiStartDiscovery)
	add(apiAdmin, get, "/api/v1/admin/discovery/:id", s.apiDiscovery)
	add(apiAdmin, get, "/api/v1/admin/nodes", s.apiAdminNodes)
	add(apiAdmin, post, "/api/v1/admin/nodes", s.apiCreateNode)
	add(apiAdmin, http.MethodPut, "/api/v1/admin/nodes/:id", s.apiUpdateNode)
	add(apiAdmin, http.MethodDelete, "/api/v1/admin/nodes/:id", s.apiDeleteNode)
	add(apiAdmin, get, "/api/v1/admin/environments", s.apiAdminEnvironments)
	add(apiAdmin, post, "/api/v1/admin/environments", s.apiCreateEnvironment)
	add(apiAdmin, http.MethodPut, "/api/v1/admin/environments/:id", s.apiUpdateEnvironment)
	add(apiAdmin, http.MethodDelete, "/api/v1/admin/environments/:id", s.apiDeleteEnvironment)
	add(apiAdmin, get, "/api/v1/admin/deployments", s.apiAdminDeployments)
	add(apiAdmin, post, "/api/v1/admin/deployments/:id/state", s.apiForceState)
	add(apiAdmin, post, "/api/v1/admin/reservations/:id/end", s.apiAdminEndReservation)
	return e
}
