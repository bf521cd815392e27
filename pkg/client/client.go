// Package client calls PiSeduce's JSON API (/api/v1) with typed requests and answers, as
// pkg/web/openapi.json describes them. It is what the piseduce command line is built on, and
// it links nothing of the daemons.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client calls one PiSeduce site with one API token.
type Client struct {
	// BaseURL is the site's address, e.g. http://pimaster:9000 (without /api/v1).
	BaseURL string
	// Token is the API token (psd_…); empty for CreateToken.
	Token string
	// HTTP is the client used (a 60 s timeout when nil).
	HTTP *http.Client
	// UserAgent names the program in the site's access log.
	UserAgent string
}

// New is a client of the site at baseURL with token.
func New(baseURL, token string) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), Token: token}
}

var defaultHTTP = &http.Client{Timeout: 60 * time.Second}

// Error is an answer of the API with an error status: the status and the site's message.
type Error struct {
	Status  int
	Message string
	// RetryAfter is the Retry-After header (throttled logins, a busy site), if any.
	RetryAfter string
}

func (e *Error) Error() string {
	if e.RetryAfter != "" {
		return fmt.Sprintf("%s (retry after %s s)", e.Message, e.RetryAfter)
	}
	return e.Message
}

// IsStatus reports whether err is an API answer with that status.
func IsStatus(err error, status int) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == status
}

// request is method path with body, as the API wants it.
func (c *Client) request(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+"/api/v1"+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if c.UserAgent != "" {
		req.Header.Set("User-Agent", c.UserAgent)
	}
	return req, nil
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP == nil {
		return defaultHTTP
	}
	return c.HTTP
}

// do sends method path with in as its JSON body (none when nil) and decodes the answer into
// out (when not nil). An answer with an error status is an *Error.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := c.request(ctx, method, path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.httpClient().Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if res.StatusCode >= 400 {
		return c.answerError(method, path, res, data)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: the answer is not PiSeduce's API (%v): is %s a PiSeduce site?", method, path, err, c.BaseURL)
	}
	return nil
}

// answerError is the *Error of an answer with an error status, whose body is data.
func (c *Client) answerError(method, path string, res *http.Response, data []byte) error {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(data, &e) != nil || e.Error == "" {
		// Not the API answering (a proxy, another site): say what came back.
		e.Error = fmt.Sprintf("%s %s: %s from %s", method, path, res.Status, c.BaseURL)
	}
	return &Error{Status: res.StatusCode, Message: e.Error, RetryAfter: res.Header.Get("Retry-After")}
}

func (c *Client) get(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodGet, path, nil, out)
}

func (c *Client) post(ctx context.Context, path string, in, out any) error {
	return c.do(ctx, http.MethodPost, path, in, out)
}

// CreateToken asks for a token with an e-mail and password (no token needed).
func (c *Client) CreateToken(ctx context.Context, r TokenRequest) (*NewToken, error) {
	var t NewToken
	return &t, c.post(ctx, "/tokens", r, &t)
}

// RevokeToken revokes the client's own token.
func (c *Client) RevokeToken(ctx context.Context) error {
	return c.do(ctx, http.MethodDelete, "/tokens/current", nil, nil)
}

// Nodes lists every node with its state.
func (c *Client) Nodes(ctx context.Context) ([]Node, error) {
	var out struct {
		Nodes []Node `json:"nodes"`
	}
	return out.Nodes, c.get(ctx, "/nodes", &out)
}

// Environments lists the environments the user may deploy.
func (c *Client) Environments(ctx context.Context) ([]Environment, error) {
	var out struct {
		Environments []Environment `json:"environments"`
	}
	return out.Environments, c.get(ctx, "/environments", &out)
}

// Reservations lists the user's current and future reservations.
func (c *Client) Reservations(ctx context.Context) ([]Reservation, error) {
	var out struct {
		Reservations []Reservation `json:"reservations"`
	}
	return out.Reservations, c.get(ctx, "/reservations", &out)
}

// Reserve reserves nodes.
func (c *Client) Reserve(ctx context.Context, r ReservationRequest) (*Reservation, error) {
	var out Reservation
	return &out, c.post(ctx, "/reservations", r, &out)
}

// Extend makes reservation id longer by hours.
func (c *Client) Extend(ctx context.Context, id uint, hours int) (*Reservation, error) {
	var out Reservation
	return &out, c.post(ctx, fmt.Sprintf("/reservations/%d/extend", id), map[string]int{"hours": hours}, &out)
}

// EndReservation ends reservation id now (cancels a future one); its nodes are destroyed.
func (c *Client) EndReservation(ctx context.Context, id uint) error {
	return c.post(ctx, fmt.Sprintf("/reservations/%d/end", id), nil, nil)
}

// Deployments lists the user's current deployments.
func (c *Client) Deployments(ctx context.Context) ([]Deployment, error) {
	var out struct {
		Deployments []Deployment `json:"deployments"`
	}
	return out.Deployments, c.get(ctx, "/deployments", &out)
}

// Deployment is one deployment, with its host key for its owner once deployed.
func (c *Client) Deployment(ctx context.Context, id uint) (*Deployment, error) {
	var out Deployment
	return &out, c.get(ctx, fmt.Sprintf("/deployments/%d", id), &out)
}

// Deploy deploys an environment on every node of a reservation: one deployment per node.
func (c *Client) Deploy(ctx context.Context, r DeploymentRequest) ([]Deployment, error) {
	var out struct {
		Deployments []Deployment `json:"deployments"`
	}
	return out.Deployments, c.post(ctx, "/deployments", r, &out)
}

// Destroy asks for deployment id to be destroyed (its node wiped and powered off).
func (c *Client) Destroy(ctx context.Context, id uint) (*Deployment, error) {
	var out Deployment
	return &out, c.post(ctx, fmt.Sprintf("/deployments/%d/destroy", id), nil, &out)
}

// URL checks a site address typed by a user: http or https, a host, no query.
func URL(s string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	switch {
	case err != nil:
		return "", fmt.Errorf("%q is not a URL: %v", s, err)
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		return "", fmt.Errorf("%q is not a site address: give http://host:port or https://host", s)
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return "", fmt.Errorf("%q: give the site address only, without a query, fragment or user", s)
	}
	return strings.TrimRight(u.String(), "/"), nil
}
