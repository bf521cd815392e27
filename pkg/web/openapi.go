package web

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// openAPISpec is the OpenAPI 3.1 description of /api/v1: the contract the API tests check
// every answer against (openapi_test.go), served as is at /api/v1/openapi.json and rendered
// for people at /docs/api.
//
//go:embed openapi.json
var openAPISpec []byte

// openAPIETag changes whenever the description does, so clients may cache it.
var openAPIETag = func() string {
	sum := sha256.Sum256(openAPISpec)
	return `"` + hex.EncodeToString(sum[:12]) + `"`
}()

// apiDescription serves the description: public, cacheable, 304 to a matching If-None-Match.
func (s *Server) apiDescription(c echo.Context) error {
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	h.Set("Cache-Control", "public, max-age=3600")
	h.Set("ETag", openAPIETag)
	http.ServeContent(c.Response(), c.Request(), "openapi.json", time.Time{}, bytes.NewReader(openAPISpec))
	return nil
}

// showAPIDocs is the description as a page, rendered on the server.
func (s *Server) showAPIDocs(c echo.Context) error {
	return s.render(c, http.StatusOK, "api_docs", &page{Title: "API", Data: s.apiDocs})
}

// The subset of OpenAPI the docs page shows. Objects whose key order matters to a reader
// (paths, properties, responses) keep the document's order.
type (
	oaDoc struct {
		Info struct {
			Title       string `json:"title"`
			Version     string `json:"version"`
			Summary     string `json:"summary"`
			Description string `json:"description"`
		} `json:"info"`
		Tags       []struct{ Name string }   `json:"tags"`
		Paths      ordered[map[string]*oaOp] `json:"paths"`
		Components struct {
			Schemas         ordered[*oaSchema] `json:"schemas"`
			Responses       map[string]oaResp  `json:"responses"`
			SecuritySchemes map[string]struct {
				Description string `json:"description"`
			} `json:"securitySchemes"`
		} `json:"components"`
	}
	oaOp struct {
		Summary     string          `json:"summary"`
		Description string          `json:"description"`
		Tags        []string        `json:"tags"`
		Access      string          `json:"x-piseduce-access"`
		Parameters  []oaParam       `json:"parameters"`
		RequestBody *oaBody         `json:"requestBody"`
		Responses   ordered[oaResp] `json:"responses"`
	}
	oaParam struct {
		Name        string    `json:"name"`
		In          string    `json:"in"`
		Required    bool      `json:"required"`
		Description string    `json:"description"`
		Schema      *oaSchema `json:"schema"`
	}
	oaBody struct {
		Required bool `json:"required"`
		Content  map[string]struct {
			Schema *oaSchema `json:"schema"`
		} `json:"content"`
	}
	oaResp struct {
		Ref         string `json:"$ref"`
		Description string `json:"description"`
		Content     map[string]struct {
			Schema *oaSchema `json:"schema"`
		} `json:"content"`
	}
	oaSchema struct {
		Ref         string             `json:"$ref"`
		Type        string             `json:"type"`
		Format      string             `json:"format"`
		Description string             `json:"description"`
		Enum        []any              `json:"enum"`
		Minimum     *float64           `json:"minimum"`
		Maximum     *float64           `json:"maximum"`
		Items       *oaSchema          `json:"items"`
		Properties  ordered[*oaSchema] `json:"properties"`
		Required    []string           `json:"required"`
	}
)

// ordered is a JSON object decoded with its keys in the document's order.
type ordered[T any] []struct {
	Key string
	Val T
}

func (o *ordered[T]) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return fmt.Errorf("want a JSON object, got %s", b[:min(len(b), 20)])
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		var v T
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("%v: %w", t, err)
		}
		*o = append(*o, struct {
			Key string
			Val T
		}{t.(string), v})
	}
	return nil
}

// What the docs page shows.
type (
	apiDocs struct {
		Title, Version, Summary, Description, Auth string
		Sections                                   []apiSection
		Schemas                                    []apiSchema
	}
	apiSection struct {
		Tag, ID string
		Ops     []apiOp
	}
	apiOp struct {
		Method, Path, Anchor, Summary, Description, Access string
		Params                                             []apiField
		Body                                               *apiField // Type names the schema
		Responses                                          []apiField
	}
	// apiField is a row: a parameter, a property, a response (Name: the status code).
	apiField struct {
		Name, In, Type, Ref, Description string
		Required                         bool
	}
	apiSchema struct {
		Name, Description string
		Fields            []apiField
	}
)

var methodOrder = []string{"get", "post", "put", "delete"}

// parseAPIDocs turns the description into the docs page's model.
func parseAPIDocs(spec []byte) (*apiDocs, error) {
	var d oaDoc
	if err := json.Unmarshal(spec, &d); err != nil {
		return nil, fmt.Errorf("web: openapi.json: %w", err)
	}
	out := &apiDocs{Title: d.Info.Title, Version: d.Info.Version, Summary: d.Info.Summary, Description: d.Info.Description,
		Auth: d.Components.SecuritySchemes["bearer"].Description}
	byTag := map[string]*apiSection{}
	for _, t := range d.Tags {
		out.Sections = append(out.Sections, apiSection{Tag: t.Name, ID: "tag-" + anchor(t.Name)})
	}
	for i := range out.Sections {
		byTag[out.Sections[i].Tag] = &out.Sections[i]
	}
	for _, p := range d.Paths {
		for _, m := range methodOrder {
			o := p.Val[m]
			if o == nil {
				continue
			}
			if len(o.Tags) == 0 || byTag[o.Tags[0]] == nil {
				return nil, fmt.Errorf("web: openapi.json: %s %s: its tag is not one of the document's tags", m, p.Key)
			}
			op := apiOp{Method: strings.ToUpper(m), Path: "/api/v1" + p.Key, Summary: o.Summary, Description: o.Description,
				Access: o.Access, Anchor: anchor(m + p.Key)}
			for _, pa := range o.Parameters {
				typ, ref := schemaType(pa.Schema)
				op.Params = append(op.Params, apiField{Name: pa.Name, In: pa.In, Type: typ, Ref: ref, Description: pa.Description, Required: pa.Required})
			}
			if o.RequestBody != nil {
				typ, ref := schemaType(o.RequestBody.Content["application/json"].Schema)
				op.Body = &apiField{Type: typ, Ref: ref, Required: o.RequestBody.Required}
			}
			for _, r := range o.Responses {
				resp := r.Val
				if name, ok := strings.CutPrefix(resp.Ref, "#/components/responses/"); ok {
					resp = d.Components.Responses[name]
				}
				f := apiField{Name: r.Key, Description: resp.Description}
				if c, ok := resp.Content["application/json"]; ok {
					f.Type, f.Ref = schemaType(c.Schema)
				}
				op.Responses = append(op.Responses, f)
			}
			sec := byTag[o.Tags[0]]
			sec.Ops = append(sec.Ops, op)
		}
	}
	for _, sc := range d.Components.Schemas {
		req := map[string]bool{}
		for _, r := range sc.Val.Required {
			req[r] = true
		}
		s := apiSchema{Name: sc.Key, Description: sc.Val.Description}
		for _, p := range sc.Val.Properties {
			typ, ref := schemaType(p.Val)
			s.Fields = append(s.Fields, apiField{Name: p.Key, Type: typ, Ref: ref, Description: p.Val.Description, Required: req[p.Key]})
		}
		out.Schemas = append(out.Schemas, s)
	}
	return out, nil
}

// schemaType says a schema's type in words, and the component it refers to (if any).
func schemaType(s *oaSchema) (typ, ref string) {
	switch {
	case s == nil:
		return "", ""
	case s.Ref != "":
		name := strings.TrimPrefix(s.Ref, "#/components/schemas/")
		return name, name
	case s.Type == "array":
		t, r := schemaType(s.Items)
		return "array of " + t, r
	}
	typ = s.Type
	if s.Format != "" {
		typ += " (" + s.Format + ")"
	}
	if len(s.Enum) > 0 {
		vals := make([]string, len(s.Enum))
		for i, v := range s.Enum {
			vals[i] = fmt.Sprint(v)
		}
		typ += ": " + strings.Join(vals, " | ")
	}
	switch {
	case s.Minimum != nil && s.Maximum != nil:
		typ += fmt.Sprintf(", %v to %v", *s.Minimum, *s.Maximum)
	case s.Minimum != nil:
		typ += fmt.Sprintf(", ≥ %v", *s.Minimum)
	}
	return typ, ""
}

// anchor makes an HTML id of s: its letters and digits, the rest as dashes.
func anchor(s string) string {
	return strings.Trim(strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, s), "-")
}
