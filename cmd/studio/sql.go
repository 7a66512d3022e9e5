package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/creativeai-studio/studio/schemas"
)

const sqlUsage = `usage: studio sql [flags] "SELECT …"     one read-only query against the running studio's analytics
       studio sql [flags] --cookbook NAME    run a query of the analyst cookbook
       studio sql [flags] --list             list the cookbook
       studio sql [flags] -                  read the query from stdin

The query runs in the process that serves --server (its embedded chDB or its
ClickHouse), read-only, at most 30 s and 10,000 rows; it needs an admin credential.`

// runSQL sends one analyst query to POST /ops/api/sql and prints the answer.
func runSQL(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("studio sql", flag.ContinueOnError)
	var sf serverFlags
	sf.register(fs)
	format := fs.String("format", "table", "output: table, csv or json")
	cookbook := fs.String("cookbook", "", "run the cookbook query of this name (see --list)")
	list := fs.Bool("list", false, "list the cookbook's queries")
	timeout := fs.Duration("timeout", 45*time.Second, "give up after this long")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), sqlUsage+"\n\nflags:")
		fs.PrintDefaults()
	}
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	switch *format {
	case "table", "csv", "json":
	default:
		return fmt.Errorf("--format %q: use table, csv or json", *format)
	}
	query := strings.TrimSpace(strings.Join(rest, " "))
	switch {
	case *list && (query != "" || *cookbook != ""):
		return errors.New("--list takes no query")
	case *cookbook != "" && query != "":
		return errors.New("give either --cookbook NAME or a query, not both")
	case !*list && *cookbook == "" && query == "":
		return errors.New("name a query: studio sql \"SELECT …\" (or --cookbook NAME, --list)\n\n" + sqlUsage)
	case query == "-":
		b, err := io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
		if err != nil {
			return fmt.Errorf("read the query from stdin: %w", err)
		}
		query = string(b)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	c := sf.client()
	if *list || *cookbook != "" {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/ops/api/sql/cookbook", nil)
		if err != nil {
			return err
		}
		var book []schemas.SQLQuery
		if err := c.do(req, http.StatusOK, &book); err != nil {
			return err
		}
		if *list {
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tTITLE")
			for _, q := range book {
				fmt.Fprintf(tw, "%s\t%s\n", q.Name, q.Title)
			}
			return tw.Flush()
		}
		var names []string
		for _, q := range book {
			if q.Name == *cookbook {
				query = q.SQL
			}
			names = append(names, q.Name)
		}
		if query == "" {
			return fmt.Errorf("no cookbook query %q: use one of %s", *cookbook, strings.Join(names, ", "))
		}
	}
	body, _ := json.Marshal(schemas.SQLRequest{SQL: query})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/ops/api/sql", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	var res schemas.SQLResult
	if err := c.do(req, http.StatusOK, &res); err != nil {
		return err
	}
	return printSQL(stdout, &res, *format)
}

// printSQL writes a result as an aligned table (with a footer line), CSV with a header
// row, or the API's JSON.
func printSQL(w io.Writer, res *schemas.SQLResult, format string) error {
	if format == "json" {
		return writeJSON(w, res)
	}
	header := make([]string, len(res.Columns))
	for i, c := range res.Columns {
		header[i] = c.Name
	}
	cells := func(row []any) []string {
		out := make([]string, len(row))
		for i, v := range row {
			switch x := v.(type) {
			case nil:
				out[i] = "NULL"
			case string:
				out[i] = x
			case float64:
				out[i] = strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.6f", x), "0"), ".")
			default:
				b, _ := json.Marshal(x)
				out[i] = string(b)
			}
		}
		return out
	}
	if format == "csv" {
		cw := csv.NewWriter(w)
		_ = cw.Write(header)
		for _, r := range res.Rows {
			_ = cw.Write(cells(r))
		}
		cw.Flush()
		return cw.Error()
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range res.Rows {
		fmt.Fprintln(tw, strings.ReplaceAll(strings.Join(cells(r), "\t"), "\n", " "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	more := ""
	if res.Truncated {
		more = " (cut at the row limit)"
	}
	_, err := fmt.Fprintf(w, "%d rows%s in %.0f ms on ClickHouse %s\n", len(res.Rows), more, res.ElapsedMS, res.Engine)
	return err
}
