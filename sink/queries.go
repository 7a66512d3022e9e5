package sink

import (
	"embed"
	"io/fs"
	"sort"
	"strings"
)

//go:embed queries/*.sql
var queryFiles embed.FS

// Query is one query of the analyst cookbook (sink/queries/*.sql). Each runs unchanged
// in clickhouse-client against the sink's database, on 18.16 and on a current server.
type Query struct {
	// Name is the file name without .sql, e.g. "p95_by_stage".
	Name string
	// Title is the first line of the file's leading comment.
	Title string
	SQL   string
}

// Cookbook returns the analyst queries sorted by name.
func Cookbook() ([]Query, error) {
	entries, err := fs.ReadDir(queryFiles, "queries")
	if err != nil {
		return nil, err
	}
	var out []Query
	for _, e := range entries {
		data, err := queryFiles.ReadFile("queries/" + e.Name())
		if err != nil {
			return nil, err
		}
		sql := strings.TrimSpace(string(data))
		title, _, _ := strings.Cut(sql, "\n")
		out = append(out, Query{
			Name:  strings.TrimSuffix(e.Name(), ".sql"),
			Title: strings.TrimSpace(strings.TrimPrefix(title, "--")),
			SQL:   sql,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
