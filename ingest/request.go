package ingest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sort"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/creativeai-studio/studio/schemas"
	schemafiles "github.com/creativeai-studio/studio/schemas/jsonschema"
)

// maxJSONBody bounds a JSON job request: an inline image plus its base64 overhead and
// room for the other fields.
const maxJSONBody = schemas.MaxInlineImageBytes*4/3 + 64<<10

// requestSchema is the committed job-request.json, compiled once. Requests are checked
// against the very file upstream publishers validate with, so the two cannot disagree.
var requestSchema = sync.OnceValues(func() (*jsonschema.Schema, error) {
	raw, err := schemafiles.File(schemafiles.JobRequest)
	if err != nil {
		return nil, err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("ingest: %s: %w", schemafiles.JobRequest, err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(schemafiles.JobRequest, doc); err != nil {
		return nil, err
	}
	return c.Compile(schemafiles.JobRequest)
})

var printer = message.NewPrinter(language.English)

// decodeJobRequest parses and validates a JSON job request. subjectTask, when set (the
// NATS entry), is the task named by the subject: a body without a task gets it, and a
// body naming another task is refused. Problems name every offending field with the
// JSON Schema keyword it broke.
//
// An inline image is most of a request (67 KB of base64 for a 50 KB image), and a
// general JSON parser reads it byte by byte, twice. So the base64 strings are first cut
// out of the raw body (cutInlineData) and the small rest goes through the full parse
// and validation; a request the cut cannot handle, or one that is refused, goes through
// the full parse whole, so its answer is exactly what the full parse gives.
func decodeJobRequest(data []byte, subjectTask schemas.Task) (schemas.JobRequest, *Problem) {
	if rest, image, style, ok := cutInlineData(data); ok {
		if jr, p := decodeJobRequestDoc(rest, subjectTask, image, style); p == nil {
			return jr, nil
		}
	}
	return decodeJobRequestDoc(data, subjectTask, nil, nil)
}

// decodeJobRequestDoc is decodeJobRequest on a body whose inline base64 strings were
// cut out (cutInlineData) and are given as image and style (nil when none was cut).
func decodeJobRequestDoc(data []byte, subjectTask schemas.Task, cutImage, cutStyle []byte) (schemas.JobRequest, *Problem) {
	var jr schemas.JobRequest
	if len(bytes.TrimSpace(data)) == 0 {
		return jr, problem(400, "bad_json", "the body is empty: send a JSON job request", FieldProblem{Field: "", Constraint: "type", Message: "expected a JSON object"})
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return jr, problem(400, "bad_json", "the body is not valid JSON: "+err.Error())
	}
	if obj, ok := doc.(map[string]any); ok && subjectTask != "" {
		switch t, _ := obj["task"].(string); {
		case t == "":
			obj["task"] = string(subjectTask)
		case t != string(subjectTask):
			return jr, problem(422, "task_mismatch", fmt.Sprintf("the body asks for %q but was sent on the %s subject", t, schemas.SubmitSubject(subjectTask)),
				FieldProblem{Field: "task", Constraint: "const", Message: "must match the subject's task " + string(subjectTask)})
		}
	}
	sch, err := requestSchema()
	if err != nil {
		return jr, problem(500, "internal", "the request schema does not compile: "+err.Error())
	}
	// The inline images are set aside while the rest is validated and read: the schema
	// asks of them only a non-empty string (a short stand-in meets the same rules), and
	// their base64 is decoded once, below, instead of being counted, re-encoded and
	// parsed again with the rest. A string cut out before parsing has the stand-in in
	// its place already.
	imageData, styleData := setAsideData(doc, "image"), setAsideData(doc, "style")
	if cutImage != nil {
		imageData = cutImage
	}
	if cutStyle != nil {
		styleData = cutStyle
	}
	if err := sch.Validate(doc); err != nil {
		fields := schemaErrors(err)
		return jr, problem(http.StatusUnprocessableEntity, codeForField(fields[0]), "the job request is invalid: "+fieldsDetail(fields), fields...)
	}
	normalized, err := json.Marshal(doc)
	if err != nil {
		return jr, problem(400, "bad_json", err.Error())
	}
	if err := json.Unmarshal(normalized, &jr); err != nil {
		// The schema admits every shape the Go type reads except bad base64.
		return jr, problem(422, "invalid_image", "image.data is not base64: "+err.Error(),
			FieldProblem{Field: "image.data", Constraint: "contentEncoding", Message: "must be standard base64"})
	}
	if p := decodeData(jr.Image, imageData, "image.data"); p != nil {
		return jr, p
	}
	if p := decodeData(jr.Style, styleData, "style.data"); p != nil {
		return jr, p
	}
	if jr.Style != nil && len(jr.Style.Data) > schemas.MaxInlineImageBytes {
		return jr, problem(413, "image_too_large", fmt.Sprintf("an inline style image may be at most %d bytes; upload larger ones (POST /v1/uploads) and send the key", schemas.MaxInlineImageBytes),
			FieldProblem{Field: "style.data", Constraint: "maxBytes", Message: "too large to send inline"})
	}
	if jr.Image != nil && len(jr.Image.Data) > schemas.MaxInlineImageBytes {
		return jr, problem(413, "image_too_large", fmt.Sprintf("an inline image may be at most %d bytes; upload larger ones (POST /v1/uploads) and send the key", schemas.MaxInlineImageBytes),
			FieldProblem{Field: "image.data", Constraint: "maxBytes", Message: "too large to send inline"})
	}
	return jr, nil
}

// dataStandIn replaces an inline image's base64 while the request is validated and
// read: a non-empty string of valid base64, as the schema and the Go type ask.
const dataStandIn = "AA=="

// setAsideData takes the base64 string out of doc[field].data, when it is a non-empty
// string, and puts dataStandIn in its place. It returns the string, or nil when there
// was none (the schema then judges the field as sent).
func setAsideData(doc any, field string) []byte {
	obj, _ := doc.(map[string]any)
	img, _ := obj[field].(map[string]any)
	data, _ := img["data"].(string)
	if data == "" {
		return nil
	}
	img["data"] = dataStandIn
	return []byte(data)
}

// decodeData decodes the base64 set aside for in (the image or style input read
// with the stand-in) into in.Data, as encoding/json decodes a []byte.
func decodeData(in *schemas.ImageInput, data []byte, field string) *Problem {
	if in == nil || len(data) == 0 {
		return nil
	}
	b := make([]byte, base64.StdEncoding.DecodedLen(len(data)))
	n, err := base64.StdEncoding.Decode(b, data)
	b = b[:n]
	if err != nil {
		return problem(422, "invalid_image", field+" is not base64: "+err.Error(),
			FieldProblem{Field: field, Constraint: "contentEncoding", Message: "must be standard base64"})
	}
	in.Data = b
	return nil
}

// submitRequestOf turns a decoded JSON request into a SubmitRequest.
func submitRequestOf(jr schemas.JobRequest) SubmitRequest {
	req := SubmitRequest{
		Tenant: jr.Tenant, User: jr.User, Tier: jr.Tier, Task: jr.Task, Model: jr.Model, Version: jr.Version,
		Params: jr.Params, CallbackURL: jr.CallbackURL, IdempotencyKey: jr.IdempotencyKey, TraceParent: jr.TraceParent,
		Steps: jr.Steps,
	}
	if jr.Image != nil {
		if jr.Image.Key != "" {
			req.ImageKey, req.ImageField = jr.Image.Key, "image.key"
		} else {
			req.Image, req.ImageField = jr.Image.Data, "image.data"
			if req.Image == nil {
				req.Image = []byte{}
			}
		}
	}
	if jr.Style != nil {
		if jr.Style.Key != "" {
			req.StyleKey, req.StyleField = jr.Style.Key, "style.key"
		} else {
			req.Style, req.StyleField = jr.Style.Data, "style.data"
			if req.Style == nil {
				req.Style = []byte{}
			}
		}
	}
	return req
}

// schemaErrors flattens a validation error tree into one entry per offending field.
func schemaErrors(err error) []FieldProblem {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return []FieldProblem{{Message: err.Error()}}
	}
	var out []FieldProblem
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		loc := strings.Join(e.InstanceLocation, ".")
		join := func(name string) string {
			if loc == "" {
				return name
			}
			return loc + "." + name
		}
		switch k := e.ErrorKind.(type) {
		case *kind.OneOf:
			out = append(out, FieldProblem{Field: loc, Constraint: "oneOf", Message: "set exactly one of " + loc + ".key and " + loc + ".data"})
			return
		case *kind.Required:
			for _, m := range k.Missing {
				out = append(out, FieldProblem{Field: join(m), Constraint: "required", Message: "is required"})
			}
			return
		case *kind.FalseSchema:
			out = append(out, FieldProblem{Field: loc, Constraint: "not", Message: "must be left out for this task"})
			return
		case *kind.AdditionalProperties:
			for _, p := range k.Properties {
				out = append(out, FieldProblem{Field: join(p), Constraint: "additionalProperties", Message: "is not a known field"})
			}
			return
		}
		if len(e.Causes) == 0 {
			kp := e.ErrorKind.KeywordPath()
			constraint := ""
			if len(kp) > 0 {
				constraint = kp[len(kp)-1]
			}
			out = append(out, FieldProblem{Field: loc, Constraint: constraint, Message: e.ErrorKind.LocalizedString(printer)})
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Field < out[j].Field })
	dedup := out[:0]
	for i, f := range out {
		if i == 0 || f != out[i-1] {
			dedup = append(dedup, f)
		}
	}
	return dedup
}

// codeForField is the problem code of a request whose first bad field is f; the codes
// match what the multipart form reports for the same mistakes.
func codeForField(f FieldProblem) string {
	switch {
	case f.Constraint == "required":
		return "missing_field"
	case f.Field == "tier":
		return "invalid_tier"
	case f.Field == "task":
		return "unknown_model"
	case strings.HasPrefix(f.Field, "params"):
		return "invalid_params"
	case strings.HasPrefix(f.Field, "image"):
		return "invalid_image"
	case f.Field == "callback_url":
		return "invalid_callback_url"
	}
	return "invalid_field"
}

// readJSONBody reads a JSON request body within maxJSONBody.
func readJSONBody(w http.ResponseWriter, r *http.Request) ([]byte, *Problem) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxJSONBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, problem(413, "image_too_large", fmt.Sprintf("a JSON job request may be at most %d bytes; upload large images first (POST /v1/uploads) and send their key", maxJSONBody),
				FieldProblem{Field: "image.data", Constraint: "maxBytes", Message: "too large to send inline"})
		}
		return nil, problem(400, "bad_json", "reading the body: "+err.Error())
	}
	return body, nil
}

// parseSubmitBody reads POST /vN/jobs: multipart/form-data or application/json.
func (s *Service) parseSubmitBody(w http.ResponseWriter, r *http.Request) (SubmitRequest, *Problem) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case err == nil && mt == "multipart/form-data":
		lim := s.cfg.Limits.MaxBytes
		// The form around the file costs a little; anything past that is refused while
		// reading instead of after buffering it.
		// A style-transfer job may carry a style image beside the image.
		r.Body = http.MaxBytesReader(w, r.Body, 2*lim+64<<10)
		return s.parseMultipart(r, lim)
	case err == nil && mt == "application/json":
		body, p := readJSONBody(w, r)
		if p != nil {
			return SubmitRequest{}, p
		}
		jr, p := decodeJobRequest(body, "")
		if p != nil {
			return SubmitRequest{}, p
		}
		req := submitRequestOf(jr)
		if jr.Task == "" && len(jr.Steps) == 0 {
			return req, problem(422, "missing_field", "the task field is required", FieldProblem{Field: "task", Constraint: "required", Message: "required: e.g. remove-background"})
		}
		return req, nil
	}
	return SubmitRequest{}, problem(415, "unsupported_media_type",
		"send multipart/form-data with an image part and a task field, or application/json with the image as an uploaded key or base64 data",
		FieldProblem{Field: "Content-Type", Constraint: "enum", Message: "must be multipart/form-data or application/json"})
}

// parseMultipart reads the form fields and the image part, refusing an oversized body
// while it streams in.
func (s *Service) parseMultipart(r *http.Request, maxImage int64) (SubmitRequest, *Problem) {
	var req SubmitRequest
	mr, err := r.MultipartReader()
	if err != nil {
		return req, problem(400, "bad_multipart", err.Error())
	}
	tooLarge := func(what string) *Problem {
		return problem(413, "image_too_large", fmt.Sprintf("the %s is larger than the %d byte limit", what, maxImage), FieldProblem{Field: "image", Constraint: "maxBytes", Message: "over the size limit"})
	}
	sawImage := false
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return req, tooLarge("upload")
			}
			return req, problem(400, "bad_multipart", "the multipart body is malformed: "+err.Error())
		}
		name := part.FormName()
		switch name {
		case "image":
			data, err := readPart(part, maxImage, r.ContentLength)
			if err != nil {
				var mbe *http.MaxBytesError
				if errors.As(err, &mbe) {
					return req, tooLarge("upload")
				}
				return req, problem(400, "bad_multipart", "reading the image part: "+err.Error())
			}
			if int64(len(data)) > maxImage {
				p := tooLarge("image")
				p.Detail += ": compress or resize it, or upload it first (POST /v1/uploads)"
				return req, p
			}
			if data == nil {
				data = []byte{}
			}
			req.Image, sawImage = data, true
		case "style":
			data, err := readPart(part, maxImage, r.ContentLength)
			if err != nil {
				var mbe *http.MaxBytesError
				if errors.As(err, &mbe) {
					return req, tooLarge("upload")
				}
				return req, problem(400, "bad_multipart", "reading the style part: "+err.Error())
			}
			if int64(len(data)) > maxImage {
				return req, problem(413, "image_too_large", fmt.Sprintf("the style image is larger than the %d byte limit: compress or resize it", maxImage),
					FieldProblem{Field: "style", Constraint: "maxBytes", Message: "over the size limit"})
			}
			if data == nil {
				data = []byte{}
			}
			req.Style = data
		case "task", "model", "version", "tier", "params", "callback_url", "steps":
			v, err := io.ReadAll(io.LimitReader(part, 64<<10))
			if err != nil {
				return req, problem(400, "bad_multipart", "reading field "+name+": "+err.Error())
			}
			val := strings.TrimSpace(string(v))
			switch name {
			case "task":
				req.Task = schemas.Task(val)
			case "model":
				req.Model = val
			case "version":
				req.Version = val
			case "tier":
				req.Tier = schemas.Tier(val)
			case "callback_url":
				req.CallbackURL = val
			case "steps":
				steps, err := schemas.ParseSteps(val)
				if err != nil {
					return req, problem(422, "invalid_chain", err.Error(), FieldProblem{Field: "steps", Constraint: "format", Message: "task[@model[@version]][:name=value;…], steps separated by commas, or a JSON array"})
				}
				req.Steps = steps
			case "params":
				if val != "" {
					if err := json.Unmarshal([]byte(val), &req.Params); err != nil {
						return req, problem(422, "invalid_params", "params must be a JSON object: "+err.Error(), FieldProblem{Field: "params", Constraint: "type", Message: "must be a JSON object"})
					}
				}
			}
		}
		part.Close()
	}
	if req.Task == "" && len(req.Steps) > 0 {
		req.Task = req.Steps[0].Task
	}
	if !sawImage && schemas.TakesImage(req.Task) {
		return req, problem(422, "missing_field", "the image part is required", FieldProblem{Field: "image", Constraint: "required", Message: "required: a JPEG, PNG or WebP file"})
	}
	return req, nil
}

// readPart reads a file part of at most maxImage bytes (one more tells it was larger)
// into one buffer sized from the request's Content-Length when that is known, instead
// of growing it by doubling, which copies an upload several times.
func readPart(part io.Reader, maxImage, contentLength int64) ([]byte, error) {
	var buf bytes.Buffer
	if contentLength > 0 {
		buf.Grow(int(min(contentLength, maxImage+1)) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(io.LimitReader(part, maxImage+1))
	return buf.Bytes(), err
}
