package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// answers tells systemd's watchdog whether the server at addr (its own listener) still
// serves: a GET /healthz gets an answer, whatever it says (a database that is down is not a
// wedged server, and a restart would not bring it back), within half the watchdog's timeout.
func answers(addr net.Addr) func(context.Context, time.Duration) error {
	host, port, _ := net.SplitHostPort(addr.String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1" // listening on every address: loopback is one of them
	}
	url := "http://" + net.JoinHostPort(host, port) + "/healthz"
	return func(ctx context.Context, timeout time.Duration) error {
		ctx, cancel := context.WithTimeout(ctx, timeout/2)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("server does not answer: %w", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	}
}
