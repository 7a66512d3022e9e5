package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/schemas"
)

func runSubmit(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("studio submit", flag.ContinueOnError)
	var sf serverFlags
	sf.register(fs)
	task := fs.String("task", "remove-background", "task to run (`studio submit -tasks` lists them with their parameters)")
	model := fs.String("model", "", "model name (default: the task's default)")
	version := fs.String("version", "", "model version")
	tier := fs.String("tier", "", "priority tier: premium, normal or free")
	callback := fs.String("callback-url", "", "URL that receives the final state as a signed POST")
	out := fs.String("o", ".", "directory for the results")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up waiting after this long")
	tasks := fs.Bool("tasks", false, "list the tasks and their parameter ranges, then exit")
	wait := fs.Bool("wait", false, "run each image with POST /v2/predict: the server waits for the result (up to 60 s, within --timeout); a job that takes longer is followed as without --wait")
	steps := fs.String("steps", "", "chain of steps, each run on the previous step's image: task[@model[@version]][:name=value;…], comma-separated, e.g. remove-background,upscale:scale=2 (replaces --task, --model, --version and --param)")
	var params paramFlags
	fs.Var(&params, "param", "task parameter name=value (repeatable)")
	prompt := fs.String("prompt", "", "what to draw (task generate; no image is sent); --param seed=, steps=, guidance=, width=, height=, num_images= set the rest")
	negative := fs.String("negative-prompt", "", "what to steer away from (task generate)")
	style := fs.String("style", "", "style image `FILE` sent with each image (task style-transfer with an arbitrary-style model: GET /v1/models, takes_style)")
	format := fs.String("format", "", "file format of the image results: png (default, lossless), jpeg or webp (the params format, quality and background)")
	quality := fs.Int("quality", 0, "jpeg or webp quality, 1-100 (server default 90)")
	background := fs.String("background", "", "colour #rrggbb that transparency is flattened onto (jpeg: default #ffffff)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: studio submit [flags] IMAGE... | DIR")
		fmt.Fprintln(fs.Output(), "       studio submit --task generate --prompt TEXT [--param seed=42 ...]")
		fmt.Fprintln(fs.Output(), "A directory is submitted as one batch (POST /v2/batches) of its .png, .jpg, .jpeg and .webp files.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for name, v := range map[string]any{"format": *format, "quality": float64(*quality), "background": *background} {
		if !set[name] {
			continue
		}
		if *steps != "" {
			return fmt.Errorf("--%s: with --steps, set it in the step whose images it is for (--steps 'remove-background,upscale:%s=…')", name, name)
		}
		if _, dup := params[name]; dup {
			return fmt.Errorf("--%s and --param %s= both set %s: keep one", name, name, name)
		}
		if params == nil {
			params = paramFlags{}
		}
		params[name] = v
	}
	chainField := ""
	if *steps != "" {
		chain, err := schemas.ParseSteps(*steps)
		if err != nil {
			return fmt.Errorf("--steps: %w", err)
		}
		if len(params) > 0 || *model != "" || *version != "" {
			return errors.New("--steps carries each step's model and parameters (upscale@realesrgan:scale=2): drop --model, --version and --param")
		}
		*task, chainField = string(chain[0].Task), *steps
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	c := sf.client()
	c.style = *style
	if *tasks {
		return c.listTasks(ctx, stdout)
	}
	if !schemas.TakesImage(schemas.Task(*task)) {
		if fs.NArg() > 0 {
			return fmt.Errorf("%s takes no image: drop %s and describe the picture with --prompt", *task, strings.Join(fs.Args(), " "))
		}
		if params == nil {
			params = paramFlags{}
		}
		if *prompt != "" {
			params["prompt"] = *prompt // always a string, even "42"
		}
		if *negative != "" {
			params["negative_prompt"] = *negative
		}
		return c.runGenerate(ctx, map[string]string{
			"task": *task, "model": *model, "version": *version, "tier": *tier,
			"params": params.json(), "callback_url": *callback,
		}, *out, stdout)
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("name at least one image file")
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	if fs.NArg() == 1 {
		if st, err := os.Stat(fs.Arg(0)); err == nil && st.IsDir() {
			if *style != "" {
				return errors.New("a batch (a directory) takes no style image: name the image files instead")
			}
			if chainField != "" {
				return errors.New("--steps takes image files, not a directory: a batch runs one task")
			}
			fields := map[string]string{"task": *task, "model": *model, "version": *version, "params": params.json()}
			return c.runBatch(ctx, fs.Arg(0), fields, *out, stdout)
		}
	}
	for _, path := range fs.Args() {
		start := time.Now()
		fields := map[string]string{
			"task": *task, "model": *model, "version": *version, "tier": *tier,
			"params": params.json(), "callback_url": *callback,
		}
		if chainField != "" {
			fields["steps"], fields["params"] = chainField, ""
		}
		var job *ingest.JobV2
		var err error
		if *wait {
			job, err = c.predict(ctx, path, fields)
		} else {
			job, err = c.submit(ctx, path, fields)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		final := job
		if job.Status.Final() {
			fmt.Fprintf(stdout, "%s: job %s %s (the server waited)\n", path, job.ID, job.Status)
		} else {
			pos := 0
			if job.Queue != nil {
				pos = job.Queue.Position
			}
			fmt.Fprintf(stdout, "%s: job %s queued (position %d)\n", path, job.ID, pos)
			if final, err = c.follow(ctx, job, printProgress(stdout)); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
		}
		if err := failure(final); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		base := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
		if err := c.saveResults(ctx, final, *out, base, stdout); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "  done in %s\n", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// serverFlags are the flags of the commands that call a running studio over HTTP
// (submit, jobs).
type serverFlags struct {
	server, token string
}

func (f *serverFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.server, "server", envOr("STUDIO_SERVER", "http://127.0.0.1:8080"), "studio HTTP address [STUDIO_SERVER]")
	fs.StringVar(&f.token, "token", os.Getenv("STUDIO_TOKEN"), "access token or API key (studio up prints one; studio users token makes one) [STUDIO_TOKEN]")
}

// client returns an HTTP client of the server that sends the token with every request.
func (f *serverFlags) client() *client {
	return &client{base: strings.TrimRight(f.server, "/"), token: f.token, http: &http.Client{Transport: bearer{token: f.token, next: http.DefaultTransport}}}
}

// printProgress returns a progress callback for client.follow that writes one line a
// frame.
func printProgress(w io.Writer) func(ingest.EventFrame) {
	return func(f ingest.EventFrame) {
		if f.Type == ingest.FrameQueue {
			fmt.Fprintf(w, "  queued    position %d\n", f.QueuePosition)
			return
		}
		if f.Steps > 0 {
			fmt.Fprintf(w, "  %-9s %-11s %3d%%  step %d/%d\n", f.Status, f.Stage, f.Percent, f.Step, f.Steps)
			return
		}
		if rec := f.Job.JobRecord; rec != nil && len(rec.Chain) > 1 && rec.ChainStep < len(rec.Chain) {
			fmt.Fprintf(w, "  %-9s %-11s %3d%%  chain step %d/%d %s\n", f.Status, f.Stage, f.Percent, rec.ChainStep+1, len(rec.Chain), rec.Chain[rec.ChainStep].Task)
			return
		}
		fmt.Fprintf(w, "  %-9s %-11s %3d%%\n", f.Status, f.Stage, f.Percent)
	}
}

// failure returns why a final job did not succeed, or nil when it did.
func failure(job *ingest.JobV2) error {
	if job.Status == schemas.StatusSucceeded {
		return nil
	}
	msg := string(job.Status)
	if job.Error != nil {
		msg += ": " + job.Error.Message + " (" + job.Error.Code + ")"
	}
	return fmt.Errorf("job %s %s", job.ID, msg)
}

// saveResults downloads a succeeded job's results into dir as base.<name><ext>.
func (c *client) saveResults(ctx context.Context, job *ingest.JobV2, dir, base string, stdout io.Writer) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, res := range job.Results {
		dst := filepath.Join(dir, base+"."+res.Name+filepath.Ext(res.URL))
		if err := c.download(ctx, res.URL, dst); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "  wrote %s\n", dst)
		if res.Name == "text" && filepath.Ext(dst) == ".json" {
			if err := printOCRText(dst, stdout); err != nil {
				return err
			}
		}
	}
	return nil
}

// printOCRText prints the lines of an ocr job's text result, in reading order.
func printOCRText(path string, stdout io.Writer) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var res schemas.OCRResult
	if err := json.Unmarshal(data, &res); err != nil {
		return fmt.Errorf("%s is not an OCR result: %w", path, err)
	}
	fmt.Fprintf(stdout, "  text (%d lines):\n", len(res.Lines))
	for _, l := range res.Lines {
		fmt.Fprintf(stdout, "    %s\n", l.Text)
	}
	return nil
}

type client struct {
	base  string
	token string
	http  *http.Client
	// style is the style image file sent with each job (arbitrary-style models).
	style string
}

// submit posts the image to /v2/jobs. Each image gets its own Idempotency-Key, so the
// request can be retried after a network failure or a 503 without creating a second
// job.
func (c *client) submit(ctx context.Context, path string, fields map[string]string) (*ingest.JobV2, error) {
	return c.post(ctx, "/v2/jobs", nil, path, fields, http.StatusAccepted)
}

// predict posts the image to /v2/predict, asking the server to wait for the result up
// to 60 s but less than what is left of ctx: 200 brings the final job, 202 the queued
// one (to follow). It is retried like submit.
func (c *client) predict(ctx context.Context, path string, fields map[string]string) (*ingest.JobV2, error) {
	wait := int(ingest.PredictMaxWait / time.Second)
	if dl, ok := ctx.Deadline(); ok {
		wait = min(wait, max(0, int(time.Until(dl)/time.Second)-1))
	}
	h := http.Header{"Prefer": {"wait=" + strconv.Itoa(wait)}}
	return c.post(ctx, "/v2/predict", h, path, fields, http.StatusOK, http.StatusAccepted)
}

// post sends the image and fields as a multipart form to route with an
// Idempotency-Key, retrying network failures and 503s; want lists the good statuses.
func (c *client) post(ctx context.Context, route string, header http.Header, path string, fields map[string]string, want ...int) (*ingest.JobV2, error) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, v := range fields {
		if v != "" {
			_ = mw.WriteField(k, v)
		}
	}
	if path != "" { // "" for a task without an image (generate)
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		fw, err := mw.CreateFormFile("image", filepath.Base(path))
		if err != nil {
			return nil, err
		}
		_, _ = fw.Write(data)
	}
	if c.style != "" && path != "" {
		data, err := os.ReadFile(c.style)
		if err != nil {
			return nil, fmt.Errorf("style image: %w", err)
		}
		fw, err := mw.CreateFormFile("style", filepath.Base(c.style))
		if err != nil {
			return nil, err
		}
		_, _ = fw.Write(data)
	}
	_ = mw.Close()
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	var job ingest.JobV2
	for attempt := 1; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+route, bytes.NewReader(body.Bytes()))
		if err != nil {
			return nil, err
		}
		for k, v := range header {
			req.Header[k] = v
		}
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.Header.Set("Idempotency-Key", "cli-"+hex.EncodeToString(key))
		err = c.doAny(req, &job, want...)
		var se *statusError
		retry := err != nil && (!errors.As(err, &se) || se.status == http.StatusServiceUnavailable)
		if !retry || attempt == 3 {
			if err != nil {
				return nil, err
			}
			return &job, nil
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(time.Duration(attempt) * time.Second):
		}
	}
}

// follow reports progress from the job's WebSocket until the job is final, then
// returns the final job. Without a WebSocket (a proxy that refuses upgrades) it polls.
func (c *client) follow(ctx context.Context, job *ingest.JobV2, progress func(ingest.EventFrame)) (*ingest.JobV2, error) {
	u := job.Links.WebSocket
	if u == "" {
		u = "ws" + strings.TrimPrefix(c.base, "http") + job.Links.Events
	}
	var opts *websocket.DialOptions
	if c.token != "" {
		opts = &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + c.token}}}
	}
	conn, _, err := websocket.Dial(ctx, u, opts)
	if err != nil {
		return c.poll(ctx, job.ID, progress)
	}
	defer conn.CloseNow()
	for {
		var f ingest.EventFrame
		if err := wsjson.Read(ctx, conn, &f); err != nil {
			if websocket.CloseStatus(err) == websocket.StatusGoingAway {
				return c.follow(ctx, job, progress) // the server restarts: reconnect
			}
			if ctx.Err() != nil {
				return nil, fmt.Errorf("job %s not finished: %w", job.ID, ctx.Err())
			}
			return c.poll(ctx, job.ID, progress)
		}
		progress(f)
		if f.Status.Final() {
			conn.Close(websocket.StatusNormalClosure, "")
			return c.get(ctx, job.ID)
		}
	}
}

func (c *client) get(ctx context.Context, id string) (*ingest.JobV2, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v2/jobs/"+id, nil)
	if err != nil {
		return nil, err
	}
	var job ingest.JobV2
	if err := c.do(req, http.StatusOK, &job); err != nil {
		return nil, err
	}
	return &job, nil
}

func (c *client) poll(ctx context.Context, id string, progress func(ingest.EventFrame)) (*ingest.JobV2, error) {
	last := ""
	for {
		job, err := c.get(ctx, id)
		if err != nil {
			return nil, err
		}
		if key := fmt.Sprint(job.Status, job.Stage, job.Percent); key != last {
			last = key
			progress(ingest.EventFrame{Type: ingest.FrameProgress, Status: job.Status, Stage: job.Stage, Percent: job.Percent})
		}
		if job.Status.Final() {
			return job, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("job %s not finished: %w", id, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (c *client) listTasks(ctx context.Context, stdout io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/tasks", nil)
	if err != nil {
		return err
	}
	var list ingest.TaskList
	if err := c.do(req, http.StatusOK, &list); err != nil {
		return err
	}
	for _, t := range list.Tasks {
		served := ""
		if !t.Served {
			served = " (no model on this server)"
		}
		fmt.Fprintf(stdout, "%s — %s%s\n", t.Task, t.Description, served)
		for _, p := range t.Params {
			rng := ""
			if p.Minimum != nil && p.Maximum != nil {
				rng = fmt.Sprintf(" %v..%v", *p.Minimum, *p.Maximum)
			}
			fmt.Fprintf(stdout, "  --param %s=<%s%s>  %s\n", p.Name, p.Type, rng, p.Description)
		}
	}
	return nil
}

func (c *client) download(ctx context.Context, url, dst string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+url, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("download %s: %s", url, resp.Status)
	}
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// statusError is an answer with an unexpected status.
type statusError struct {
	status int
	msg    string
}

func (e *statusError) Error() string { return e.msg }

func (c *client) do(req *http.Request, want int, out any) error { return c.doAny(req, out, want) }

// doAny sends req and decodes the answer into out when its status is one of want.
func (c *client) doAny(req *http.Request, out any, want ...int) error {
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%w (is studio running at %s? set --server)", err, c.base)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if !slices.Contains(want, resp.StatusCode) {
		var p ingest.Problem
		if json.Unmarshal(body, &p) == nil && p.Detail != "" {
			return &statusError{resp.StatusCode, fmt.Sprintf("%s: %s (%s)", resp.Status, p.Detail, p.Code)}
		}
		return &statusError{resp.StatusCode, fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(body)))}
	}
	return json.Unmarshal(body, out)
}

type paramFlags map[string]any

func (p *paramFlags) String() string { return "" }

func (p *paramFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not name=value", v)
	}
	if *p == nil {
		*p = paramFlags{}
	}
	var num float64
	if _, err := fmt.Sscan(val, &num); err == nil {
		(*p)[k] = num
	} else if b, err := parseBool(val); err == nil {
		(*p)[k] = b
	} else {
		(*p)[k] = val
	}
	return nil
}

func parseBool(s string) (bool, error) {
	switch s {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, errors.New("not a boolean")
}

func (p paramFlags) json() string {
	if len(p) == 0 {
		return ""
	}
	b, _ := json.Marshal(map[string]any(p))
	return string(b)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// bearer adds the caller's credentials to every request.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	if b.token != "" {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+b.token)
	}
	return b.next.RoundTrip(r)
}

// runBatch submits the images of dir as one batch, follows it until every job ended,
// and saves each succeeded job's results under the name of its image.
func (c *client) runBatch(ctx context.Context, dir string, fields map[string]string, out string, stdout io.Writer) error {
	start := time.Now()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var files []string
	for _, e := range entries {
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".png", ".jpg", ".jpeg", ".webp":
			if !e.IsDir() {
				files = append(files, filepath.Join(dir, e.Name()))
			}
		}
	}
	if len(files) == 0 {
		return fmt.Errorf("%s has no .png, .jpg, .jpeg or .webp files", dir)
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, v := range fields {
		if v != "" {
			_ = mw.WriteField(k, v)
		}
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		fw, err := mw.CreateFormFile("image", filepath.Base(f))
		if err != nil {
			return err
		}
		_, _ = fw.Write(data)
	}
	_ = mw.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/v2/batches", &body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	var b ingest.BatchV2
	if err := c.do(req, http.StatusAccepted, &b); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	fmt.Fprintf(stdout, "%s: batch %s of %d jobs queued\n", dir, b.ID, b.Total)
	refused := map[int]bool{}
	for _, r := range b.Refused {
		refused[r.Index] = true
		fmt.Fprintf(stdout, "  refused %s: %s (%s)\n", filepath.Base(files[r.Index]), r.Problem.Detail, r.Problem.Code)
	}
	// The batch's jobs are its admitted images, in order.
	var names []string
	for i, f := range files {
		if !refused[i] {
			names = append(names, strings.TrimSuffix(filepath.Base(f), filepath.Ext(f)))
		}
	}
	last := -1
	for b.Status != "done" {
		select {
		case <-ctx.Done():
			return fmt.Errorf("batch %s not finished: %w", b.ID, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v2/batches/"+b.ID, nil)
		if err != nil {
			return err
		}
		if err := c.do(req, http.StatusOK, &b); err != nil {
			return err
		}
		if b.Percent != last {
			last = b.Percent
			fmt.Fprintf(stdout, "  %3d%%  %d succeeded, %d failed, %d left\n", b.Percent, b.Counts.Succeeded, b.Counts.Failed+b.Counts.Cancelled, b.Counts.Queued+b.Counts.Running)
		}
	}
	var failed []string
	for i := range b.Jobs {
		job := &b.Jobs[i]
		if err := failure(job); err != nil {
			failed = append(failed, names[i]+": "+err.Error())
			continue
		}
		if err := c.saveResults(ctx, job, out, names[i], stdout); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "  done in %s\n", time.Since(start).Round(time.Millisecond))
	if len(failed) > 0 || len(b.Refused) > 0 {
		return fmt.Errorf("batch %s: %d refused, %d not succeeded: %s", b.ID, len(b.Refused), len(failed), strings.Join(failed, "; "))
	}
	return nil
}

// runGenerate submits one job without an image (task generate), follows its
// per-step progress and saves its images as <job id>.image.png, <job id>.image-2.png ...
func (c *client) runGenerate(ctx context.Context, fields map[string]string, out string, stdout io.Writer) error {
	start := time.Now()
	job, err := c.submit(ctx, "", fields)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "job %s queued (seed %v)\n", job.ID, job.Params["seed"])
	final := job
	if !job.Status.Final() {
		if final, err = c.follow(ctx, job, printProgress(stdout)); err != nil {
			return err
		}
	}
	if err := failure(final); err != nil {
		return err
	}
	if err := c.saveResults(ctx, final, out, final.ID, stdout); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "  done in %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}
