package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/schemas"
)

func runSubmit(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("studio submit", flag.ContinueOnError)
	server := fs.String("server", envOr("STUDIO_SERVER", "http://127.0.0.1:8080"), "studio HTTP address [STUDIO_SERVER]")
	task := fs.String("task", "remove-background", "task to run")
	model := fs.String("model", "", "model name (default: the task's default)")
	version := fs.String("version", "", "model version")
	tier := fs.String("tier", "", "priority tier: premium, normal or free")
	out := fs.String("o", ".", "directory for the results")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up waiting after this long")
	var params paramFlags
	fs.Var(&params, "param", "task parameter name=value (repeatable)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: studio submit [flags] IMAGE...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("name at least one image file")
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	c := &client{base: strings.TrimRight(*server, "/"), http: &http.Client{}}
	for _, path := range fs.Args() {
		start := time.Now()
		job, err := c.submit(ctx, path, map[string]string{"task": *task, "model": *model, "version": *version, "tier": *tier, "params": params.json()})
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		fmt.Fprintf(stdout, "%s: job %s queued (position %d)\n", path, job.ID, job.QueuePosition)
		final, err := c.wait(ctx, job.ID, func(r ingest.JobResponse) {
			fmt.Fprintf(stdout, "  %-9s %-11s %3d%%\n", r.Status, r.Stage, r.Percent)
		})
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if final.Status != schemas.StatusSucceeded {
			msg := string(final.Status)
			if final.Error != nil {
				msg += ": " + final.Error.Message + " (" + final.Error.Code + ")"
			}
			return fmt.Errorf("%s: job %s %s", path, final.ID, msg)
		}
		base := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
		for name, url := range final.Downloads {
			dst := filepath.Join(*out, base+"."+name+filepath.Ext(url))
			if err := c.download(ctx, url, dst); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "  wrote %s\n", dst)
		}
		fmt.Fprintf(stdout, "  done in %s\n", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

type client struct {
	base string
	http *http.Client
}

func (c *client) submit(ctx context.Context, path string, fields map[string]string) (*ingest.JobResponse, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, v := range fields {
		if v != "" {
			_ = mw.WriteField(k, v)
		}
	}
	fw, err := mw.CreateFormFile("image", filepath.Base(path))
	if err != nil {
		return nil, err
	}
	_, _ = fw.Write(data)
	_ = mw.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/v1/jobs", &body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	var job ingest.JobResponse
	if err := c.do(req, http.StatusAccepted, &job); err != nil {
		return nil, err
	}
	return &job, nil
}

func (c *client) wait(ctx context.Context, id string, progress func(ingest.JobResponse)) (*ingest.JobResponse, error) {
	last := ""
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/jobs/"+id, nil)
		if err != nil {
			return nil, err
		}
		var job ingest.JobResponse
		if err := c.do(req, http.StatusOK, &job); err != nil {
			return nil, err
		}
		if key := fmt.Sprint(job.Status, job.Stage, job.Percent); key != last {
			last = key
			progress(job)
		}
		if job.Status.Final() {
			return &job, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("job %s not finished: %w", id, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
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

func (c *client) do(req *http.Request, want int, out any) error {
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%w (is studio running at %s? set --server)", err, c.base)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != want {
		var p ingest.Problem
		if json.Unmarshal(body, &p) == nil && p.Detail != "" {
			return fmt.Errorf("%s: %s (%s)", resp.Status, p.Detail, p.Code)
		}
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
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
	} else {
		(*p)[k] = val
	}
	return nil
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
