package ingest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/creativeai-studio/studio/schemas"
)

func TestCutInlineDataCutsOnlyWhatCannotChangeTheParse(t *testing.T) {
	for _, tc := range []struct {
		name, body         string
		ok                 bool
		rest, image, style string
	}{
		{name: "an inline image is cut", body: `{"task":"upscale","image":{"data":"iVBORw0="}}`, ok: true,
			rest: `{"task":"upscale","image":{"data":"AA=="}}`, image: "iVBORw0="},
		{name: "image and style in either order", body: ` {"style":{"data":"U1RZ"} , "image" : { "key":"k", "data" : "SU1H" }, "params":{"a":[1,{"data":"x"}]}}` + "\n", ok: true,
			rest: ` {"style":{"data":"AA=="} , "image" : { "key":"k", "data" : "AA==" }, "params":{"a":[1,{"data":"x"}]}}` + "\n", image: "SU1H", style: "U1RZ"},
		{name: "a nested data field is left alone", body: `{"params":{"image":{"data":"SU1H"}},"image":{"key":"uploads/a/b"}}`},
		{name: "an uploaded key needs no cut", body: `{"image":{"key":"uploads/a/b"}}`},
		{name: "an empty string is left for the schema", body: `{"image":{"data":""}}`},
		{name: "a string with an escape", body: `{"image":{"data":"SU1H\u0041"}}`},
		{name: "a string with a raw line break", body: "{\"image\":{\"data\":\"SU1H\nSU1H\"}}"},
		{name: "a string with a raw carriage return", body: "{\"image\":{\"data\":\"SU1H\rSU1H\"}}"},
		{name: "an escaped key that reads image", body: `{"\u0069mage":{"data":"SU1H"}}`},
		{name: "an escaped key inside the image", body: `{"image":{"d\u0061ta":"SU1H"}}`},
		{name: "image twice", body: `{"image":{"data":"SU1H"},"image":{"key":"k"}}`},
		{name: "image twice, first not an object", body: `{"image":null,"image":{"data":"SU1H"}}`},
		{name: "data twice", body: `{"image":{"data":"SU1H","data":"QUFB"}}`},
		{name: "trailing bytes", body: `{"image":{"data":"SU1H"}} {}`},
		{name: "not an object", body: `["image",{"data":"SU1H"}]`},
		{name: "an unterminated string", body: `{"image":{"data":"SU1H}}`},
		{name: "a missing colon", body: `{"image" {"data":"SU1H"}}`},
		{name: "nesting past the bound", body: `{"params":` + string(bytes.Repeat([]byte("["), 100)) + string(bytes.Repeat([]byte("]"), 100)) + `,"image":{"data":"SU1H"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rest, image, style, ok := cutInlineData([]byte(tc.body))
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			if string(rest) != tc.rest || string(image) != tc.image || string(style) != tc.style {
				t.Errorf("got rest %s image %q style %q\nwant rest %s image %q style %q", rest, image, style, tc.rest, tc.image, tc.style)
			}
		})
	}
}

// FuzzCutInlineDataAgreesWithTheFullParse holds decodeJobRequest, which cuts the
// inline images out before parsing, to the full parse of the whole body: the same
// request or the same problem, whatever the bytes.
func FuzzCutInlineDataAgreesWithTheFullParse(f *testing.F) {
	img := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x89, 'P', 'N', 'G', 0, 0xff}, 40))
	f.Add([]byte(`{"task":"upscale","image":{"data":"`+img+`"},"params":{"scale":2}}`), "upscale")
	f.Add([]byte(`{"task":"style-transfer","style":{"data":"U1RZ"},"image":{"data":"`+img+`"}}`), "")
	f.Add([]byte(`{"image":{"data":"`+img+`","key":"uploads/a/b"}}`), "remove-background")
	f.Add([]byte(`{"image":{"data":"A==="}}`), "remove-background")
	f.Add([]byte(`{"image":{"data":"SU1H"},"image":{"data":"QUFB"}}`), "ocr")
	f.Add([]byte("{\"image\":{\"data\":\"SU1H\tSU1H\"}}"), "ocr")
	f.Add([]byte("{\"image\":{\"data\":\"SU1H\xffSU1H\"}}"), "ocr")
	f.Add([]byte(`{"image":{"data":"SU1H"},"task":"upscale","tier":"gold"}`), "")
	f.Fuzz(func(t *testing.T, data []byte, subject string) {
		subjectTask := schemas.Task(subject)
		if subject != "" && schemas.ValidToken(subject) != nil {
			subjectTask = ""
		}
		got, gp := decodeJobRequest(data, subjectTask)
		want, wp := decodeJobRequestDoc(data, subjectTask, nil, nil)
		if (gp == nil) != (wp == nil) {
			t.Fatalf("%q: with the cut %+v, full parse %+v", data, gp, wp)
		}
		if gp != nil {
			if gp.Code != wp.Code || gp.Detail != wp.Detail {
				t.Fatalf("%q: with the cut %+v, full parse %+v", data, gp, wp)
			}
			return
		}
		if !reflect.DeepEqual(got, want) {
			g, _ := json.Marshal(got)
			w, _ := json.Marshal(want)
			t.Fatalf("%q: with the cut %s, full parse %s", data, g, w)
		}
	})
}

// BenchmarkDecodeJobRequestInline is the NATS entry's parse of a request carrying a
// 50 KB image inline.
func BenchmarkDecodeJobRequestInline(b *testing.B) {
	raw := bytes.Repeat([]byte{0x89, 'P', 'N', 'G', 0, 0xff, 7, 200}, 50<<10/8)
	body, _ := json.Marshal(map[string]any{"task": "upscale", "image": map[string]any{"data": raw}, "params": map[string]any{"scale": 2}})
	for _, bc := range []struct {
		name   string
		decode func() *Problem
	}{
		{"cut", func() *Problem { _, p := decodeJobRequest(body, "upscale"); return p }},
		{"full", func() *Problem { _, p := decodeJobRequestDoc(body, "upscale", nil, nil); return p }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if p := bc.decode(); p != nil {
					b.Fatal(p)
				}
			}
		})
	}
}
