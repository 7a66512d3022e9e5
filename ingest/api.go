package ingest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	schemafiles "github.com/creativeai-studio/studio/schemas/jsonschema"
)

// APIVersion is the version of the OpenAPI document.
const APIVersion = "2.0.0"

// v1Deprecated is when v2 replaced the v1 job representation.
var v1Deprecated = time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)

// MigrationV1ToV2 is the migration note deprecated routes link to.
const MigrationV1ToV2 = "/docs/migrations/v1-to-v2"

const apiDescription = `Submit images for AI processing and follow the jobs.

**Versions.** ` + "`/v1/...`" + ` routes are stable: their shape never changes. Routes whose shape changed
have a ` + "`/v2/...`" + ` version; the v1 ones are deprecated (they answer with ` + "`Deprecation`" + `, ` + "`Sunset`" + ` and a
` + "`Link`" + ` to the migration note) and keep working until the sunset date. ` + "`/latest/...`" + ` follows the newest
version of every route (the ` + "`Studio-Api-Version`" + ` response header says which); pin a version in
production code.

**Errors** are RFC 9457 problem details (` + "`application/problem+json`" + `) with a stable ` + "`code`" + ` and ` + "`errors`" + `
naming each offending field and the constraint it broke. See [/docs/problems](/docs/problems).

**Progress** arrives on ` + "`GET /v1/jobs/{id}/events`" + ` as a WebSocket (send ` + "`Upgrade: websocket`" + `) or as
server-sent events. Job requests can also come over NATS on ` + "`studio.submit.<task>`" + `; results are
published on ` + "`studio.results.<tenant>.<task>`" + `.`

// Handler returns the HTTP API: the versioned routes, the OpenAPI document at
// /openapi.json, interactive docs at /docs, health, and the upload page at /.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	cfg := huma.DefaultConfig("CreativeAI Studio API", APIVersion)
	cfg.Info.Description = apiDescription
	cfg.DocsPath = ""     // huma's page loads its renderer from a CDN; /docs is our own
	cfg.CreateHooks = nil // no "$schema" field in every body
	indented := huma.Format{
		Marshal: func(w io.Writer, v any) error {
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			return enc.Encode(v)
		},
		Unmarshal: json.Unmarshal,
	}
	cfg.Formats = map[string]huma.Format{"application/json": indented, "json": indented}
	cfg.Transformers = []huma.Transformer{func(ctx huma.Context, _ string, v any) (any, error) {
		if p, ok := v.(*Problem); ok {
			p.Instance = ctx.URL().Path
			if p.RequestID == "" {
				p.RequestID = RequestIDFrom(ctx.Context())
			}
		}
		return v, nil
	}}
	// Every route is declared in table with its access (access.go): huma's operations
	// through the adapter, the rest through table.handle. huma's own document routes
	// are public.
	table := newRouteTable(s, mux)
	for _, ext := range []string{".json", "-3.0.json", ".yaml", "-3.0.yaml"} {
		table.expected["GET "+cfg.OpenAPIPath+ext] = public
	}
	table.expected["GET "+cfg.SchemasPath+"/{schema}"] = public
	api := huma.NewAPI(cfg, &accessAdapter{Adapter: humago.NewAdapter(mux, ""), t: table})
	comps := api.OpenAPI().Components
	if comps.SecuritySchemes == nil {
		comps.SecuritySchemes = map[string]*huma.SecurityScheme{}
	}
	comps.SecuritySchemes["bearer"] = &huma.SecurityScheme{Type: "http", Scheme: "bearer",
		Description: "an access token (POST /v1/auth/login) or an API key (csk_..., POST /v1/keys); an operation's list names the scope it needs (x-required-scope)"}
	s.documentRequestTypes(api)

	s.registerJobRoutes(api)
	s.registerPredictRoutes(api)
	s.registerBatchRoutes(api)
	s.registerRoutes(api)
	s.registerRolloutRoutes(api)
	if s.sec != nil {
		s.startWatches()
		s.registerAuthRoutes(api)
		s.registerTicketRoutes(api)
		s.registerWebhookSecretRoutes(api)
	}

	table.handle("GET /docs", public, http.HandlerFunc(s.handleDocs))
	table.handle("GET /docs/problems", public, http.HandlerFunc(s.handleProblemsDoc))
	table.handle("GET "+MigrationV1ToV2, public, http.HandlerFunc(s.handleMigrationDoc))
	if s.pages != nil {
		s.mountPages(table)
	} else {
		table.handle("GET /{$}", public, http.HandlerFunc(s.handleIndex))
	}
	s.routes = table
	return s.middleware(mux, table)
}

// mountPages serves the web studio and the operations dashboard (MountPages) on their
// patterns. The pages are public; the operations data under opsAPIPrefix is for
// operators (admins of the operator tenant: it spans every tenant), also where a broader page pattern ("GET /ops/") would
// serve it: its own patterns, more specific, declare that.
func (s *Service) mountPages(table *routeTable) {
	patterns := slices.Clone(s.pageRoutes)
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		if p := method + " " + opsAPIPrefix; !slices.Contains(patterns, p) {
			patterns = append(patterns, p)
		}
	}
	for _, pattern := range patterns {
		a, h := public, s.pages
		if _, path, _ := strings.Cut(pattern, " "); strings.HasPrefix(path, opsAPIPrefix) {
			a, h = operator(), s.analyticsLimited(s.pages)
		}
		table.handle(pattern, a, h)
	}
}

// versioned describes where a route lives: its version, whether /latest/ serves it,
// and whether it is deprecated.
type versioned struct {
	version    string // "v1", "v2"
	latest     bool
	deprecated bool
}

// route registers op at /<version><path> and, when it is the newest version, again at
// /latest<path> (left out of the OpenAPI document, which describes each route once).
//
// op declares its access in Metadata (declare); route panics without one. The
// declaration goes into the OpenAPI document and is enforced, for both paths, before
// the handler runs (accessAdapter).
func route[I, O any](s *Service, api huma.API, v versioned, op huma.Operation, h func(context.Context, *I) (*O, error)) {
	documentAccess(&op, mustDeclare(&op))
	path := op.Path
	op.Path = "/" + v.version + path
	op.OperationID = v.version + "-" + op.OperationID
	op.Tags = append(op.Tags, v.version)
	mws := huma.Middlewares{func(ctx huma.Context, next func(huma.Context)) {
		ctx.SetHeader("Studio-Api-Version", v.version)
		next(ctx)
	}}
	if v.deprecated {
		op.Deprecated = true
		op.Description += "\n\nDeprecated: use the v2 route; see " + MigrationV1ToV2 + ". Works until " + s.cfg.V1Sunset.Format(time.DateOnly) + "."
		mws = append(mws, s.deprecation)
	}
	op.Middlewares = append(mws, op.Middlewares...)
	// A documented request body makes huma read and decode the body itself; the
	// handlers that declare one here stream or sniff it themselves, so it is attached
	// to the OpenAPI operation only after registering.
	docBody := op.RequestBody
	op.RequestBody = nil
	huma.Register(api, op, h)
	if docBody != nil {
		if item := api.OpenAPI().Paths[op.Path]; item != nil {
			for _, o := range []*huma.Operation{item.Post, item.Put} {
				if o != nil && o.OperationID == op.OperationID {
					o.RequestBody = docBody
				}
			}
		}
	}
	if v.latest {
		alias := op
		alias.Path = "/latest" + path
		alias.OperationID = "latest-" + op.OperationID
		alias.Hidden = true
		alias.Deprecated = false
		alias.Middlewares = mws[:1]
		huma.Register(api, alias, h)
	}
}

// register is huma.Register for an operation outside the versioned routes (health):
// it declares its access like every route (see route).
func register[I, O any](api huma.API, op huma.Operation, h func(context.Context, *I) (*O, error)) {
	documentAccess(&op, mustDeclare(&op))
	huma.Register(api, op, h)
}

// deprecation marks a response as coming from a deprecated route (RFC 9745 Deprecation,
// RFC 8594 Sunset) and links the migration note and the successor.
func (s *Service) deprecation(ctx huma.Context, next func(huma.Context)) {
	ctx.SetHeader("Deprecation", "@"+strconv.FormatInt(v1Deprecated.Unix(), 10))
	ctx.SetHeader("Sunset", s.cfg.V1Sunset.UTC().Format(http.TimeFormat))
	ctx.AppendHeader("Link", "<"+MigrationV1ToV2+`>; rel="deprecation"; type="text/html"`)
	if p := ctx.URL().Path; strings.HasPrefix(p, "/v1/") {
		ctx.AppendHeader("Link", "</v2/"+strings.TrimPrefix(p, "/v1/")+`>; rel="successor-version"`)
	}
	next(ctx)
}

// multipartJob documents the multipart form of POST /vN/jobs.
type multipartJob struct {
	Image       []byte `json:"image" format:"binary" contentMediaType:"image/*" doc:"the image: JPEG, PNG or WebP, recognised by content; at most the configured size (10 MB by default)"`
	Style       []byte `json:"style,omitempty" format:"binary" contentMediaType:"image/*" doc:"the style image of a style-transfer job whose model takes one (GET /v1/models: takes_style); same formats and limits as image"`
	Task        string `json:"task,omitempty" doc:"what to do: remove-background, upscale, style-transfer, ocr, generate (GET /v1/tasks); required unless steps is given"`
	Model       string `json:"model,omitempty" doc:"model name (default: the task's default)"`
	Version     string `json:"version,omitempty" doc:"model version (GET /v1/models)"`
	Tier        string `json:"tier,omitempty" enum:"premium,normal,free" doc:"priority tier (default normal)"`
	Params      string `json:"params,omitempty" doc:"task parameters as a JSON object, e.g. {\"threshold\":0.5}; ranges in GET /v1/tasks"`
	CallbackURL string `json:"callback_url,omitempty" format:"uri" doc:"receives the final state as a signed POST"`
	Steps       string `json:"steps,omitempty" doc:"chained steps, each run on the previous step's image: task[@model[@version]][:name=value;…] separated by commas (remove-background,upscale:scale=2), or the JSON array of the steps field; at most 4; replaces task, model, version and params"`
}

// documentRequestTypes puts the request bodies huma does not parse itself into the
// OpenAPI components: the multipart form from its Go type, and the JSON job request
// from the committed JSON Schema (the one requests are validated against), so the
// document shows the same enums, patterns and per-task parameter ranges.
func (s *Service) documentRequestTypes(api huma.API) {
	reg := api.OpenAPI().Components.Schemas
	reg.Schema(reflect.TypeFor[multipartJob](), true, "")
	raw, err := schemafiles.File(schemafiles.JobRequest)
	if err != nil {
		return
	}
	var doc struct {
		Defs map[string]any `json:"$defs"`
	}
	if json.Unmarshal([]byte(strings.ReplaceAll(string(raw), "#/$defs/", "#/components/schemas/")), &doc) != nil {
		return
	}
	for name, def := range doc.Defs {
		reg.Map()[name] = schemaOf(def)
	}
}

// schemaOf converts a JSON Schema object (as decoded from JSON) into a huma schema,
// keeping the keywords huma has no field for as extensions, which it writes verbatim.
func schemaOf(v any) *huma.Schema {
	m, ok := v.(map[string]any)
	if !ok {
		return &huma.Schema{}
	}
	s := &huma.Schema{Extensions: map[string]any{}}
	for k, val := range m {
		switch k {
		case "type":
			s.Type, _ = val.(string)
		case "description":
			s.Description, _ = val.(string)
		case "$ref":
			s.Ref, _ = val.(string)
		case "format":
			s.Format, _ = val.(string)
		case "pattern":
			s.Pattern, _ = val.(string)
		case "enum":
			s.Enum, _ = val.([]any)
		case "required":
			for _, r := range val.([]any) {
				if name, ok := r.(string); ok {
					s.Required = append(s.Required, name)
				}
			}
		case "properties":
			s.Properties = map[string]*huma.Schema{}
			for name, p := range val.(map[string]any) {
				s.Properties[name] = schemaOf(p)
			}
		case "oneOf", "allOf", "anyOf":
			var list []*huma.Schema
			for _, item := range val.([]any) {
				list = append(list, schemaOf(item))
			}
			switch k {
			case "oneOf":
				s.OneOf = list
			case "allOf":
				s.AllOf = list
			default:
				s.AnyOf = list
			}
		case "additionalProperties":
			if b, ok := val.(bool); ok {
				s.AdditionalProperties = b
			} else {
				s.AdditionalProperties = schemaOf(val)
			}
		case "minimum", "maximum", "minLength", "maxLength":
			f, _ := val.(float64)
			switch k {
			case "minimum":
				s.Minimum = &f
			case "maximum":
				s.Maximum = &f
			case "minLength":
				n := int(f)
				s.MinLength = &n
			default:
				n := int(f)
				s.MaxLength = &n
			}
		case "if", "then":
			s.Extensions[k] = schemaOf(val)
		default:
			s.Extensions[k] = val
		}
	}
	return s
}

// jsonAndMultipart is the request body of POST /vN/jobs.
func jsonAndMultipart() *huma.RequestBody {
	return &huma.RequestBody{
		Required:    true,
		Description: "A multipart form with the image file, or a JSON job request whose image is an uploaded object's key (POST /v1/uploads) or small base64 data. The same JSON is accepted on NATS (studio.submit.<task>).",
		Content: map[string]*huma.MediaType{
			"multipart/form-data": {Schema: &huma.Schema{Ref: "#/components/schemas/MultipartJob"}},
			"application/json":    {Schema: &huma.Schema{Ref: "#/components/schemas/JobRequest"}},
		},
	}
}
