package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Events is an open stream of the site's server-sent events (GET /api/v1/events): the
// deployments watched, each time one changes.
type Events struct {
	body   io.ReadCloser
	sc     *bufio.Scanner
	cancel context.CancelFunc
	// quiet ends the stream when nothing came for a while (see Next).
	quiet *time.Timer
}

// ErrNoEvents: the site's event stream gave nothing in time, or is not a stream at all (a
// proxy that buffers answers, or another site): poll instead.
var ErrNoEvents = errors.New("no event stream from the site")

// Events opens the stream of deployments ids (none: the user's current ones) and returns
// once the site said it works (its first event, "ready"); ErrNoEvents when that did not
// come within wait.
func (c *Client) Events(ctx context.Context, ids []uint, wait time.Duration) (*Events, error) {
	path := "/events"
	if len(ids) > 0 {
		s := make([]string, len(ids))
		for i, id := range ids {
			s[i] = strconv.FormatUint(uint64(id), 10)
		}
		path += "?ids=" + strings.Join(s, ",")
	}
	ctx, cancel := context.WithCancel(ctx)
	e := &Events{cancel: cancel, quiet: time.AfterFunc(wait, cancel)}
	req, err := c.request(ctx, http.MethodGet, path, nil)
	if err != nil {
		e.Close()
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	h := *c.httpClient()
	h.Timeout = 0 // the stream stays open: quiet bounds the wait instead
	res, err := h.Do(req)
	if err != nil {
		e.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: no answer within %s", ErrNoEvents, wait)
		}
		return nil, err
	}
	e.body = res.Body
	if res.StatusCode >= 400 {
		data, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
		e.Close()
		return nil, c.answerError(http.MethodGet, path, res, data)
	}
	if mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type")); mt != "text/event-stream" {
		e.Close()
		return nil, fmt.Errorf("%w: GET %s answered %q", ErrNoEvents, path, mt)
	}
	e.sc = bufio.NewScanner(res.Body)
	e.sc.Buffer(nil, 1<<20)
	typ, _, err := e.next(wait)
	if err == nil && typ != "ready" {
		err = fmt.Errorf("the stream began with %q, not ready", typ)
	}
	if err != nil {
		e.Close()
		return nil, fmt.Errorf("%w: %v", ErrNoEvents, err)
	}
	return e, nil
}

// next reads the next event: its type and data. quiet ends the stream when no line came
// within wait.
func (e *Events) next(wait time.Duration) (string, string, error) {
	var typ string
	var data []string
	for {
		e.quiet.Reset(wait)
		if !e.sc.Scan() {
			if err := e.sc.Err(); err != nil {
				return "", "", err
			}
			return "", "", io.EOF
		}
		line := e.sc.Text()
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch {
		case line == "":
			if typ != "" || data != nil {
				return typ, strings.Join(data, "\n"), nil
			}
		case field == "event":
			typ = value
		case field == "data":
			data = append(data, value)
		}
	}
}

// Next waits for the next deployment that changed. The stream ends (an error) when the site
// ends it, which it does after a few minutes (open a new one), or when nothing came for
// quiet (the site says something every 20 s).
func (e *Events) Next(quiet time.Duration) (*Deployment, error) {
	for {
		typ, data, err := e.next(quiet)
		if err != nil {
			return nil, err
		}
		if typ != "deployment" {
			continue
		}
		var d Deployment
		if err := json.Unmarshal([]byte(data), &d); err != nil {
			return nil, fmt.Errorf("an event that is not a deployment: %v", err)
		}
		return &d, nil
	}
}

// Close ends the stream.
func (e *Events) Close() {
	e.quiet.Stop()
	e.cancel()
	if e.body != nil {
		e.body.Close()
	}
}
