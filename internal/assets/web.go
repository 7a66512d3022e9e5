package assets

// uPlot (MIT, ~50 KB minified) draws the operations dashboard's charts. Like the
// models, it is fetched at set-up time (`npm pack`) and served from the cache, so no
// third-party code is committed and no CDN is reached when the page runs. Its licence
// file is served beside it, as the MIT licence asks of copies.
var (
	// UPlotJS is uPlot's browser build: a script that defines the global uPlot.
	UPlotJS = Asset{
		Name:    "uplot-js",
		Source:  Source{NPM: "uplot@1.6.32", File: "package/dist/uPlot.iife.min.js"},
		SHA256:  "19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f",
		Size:    51081,
		Path:    "web/uplot-1.6.32/uPlot.iife.min.js",
		License: "MIT",
	}
	// UPlotCSS is the stylesheet UPlotJS's charts and legends expect.
	UPlotCSS = Asset{
		Name:    "uplot-css",
		Source:  Source{NPM: "uplot@1.6.32", File: "package/dist/uPlot.min.css"},
		SHA256:  "df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04",
		Size:    1857,
		Path:    "web/uplot-1.6.32/uPlot.min.css",
		License: "MIT",
	}
	// UPlotLicense is uPlot's MIT licence text.
	UPlotLicense = Asset{
		Name:    "uplot-license",
		Source:  Source{NPM: "uplot@1.6.32", File: "package/LICENSE"},
		SHA256:  "8f989229699b4fe2f1a0432d0e9edc338a8a911e250e2d1b01ecd770a5f5b1bd",
		Size:    1078,
		Path:    "web/uplot-1.6.32/LICENSE",
		License: "MIT",
	}
)

// Web lists the assets the web studio and the operations dashboard serve; `studio up`
// ensures them, and `studio fetch web` fetches them ahead of time.
var Web = []Asset{UPlotJS, UPlotCSS, UPlotLicense}
