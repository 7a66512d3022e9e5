package schemas

// SchemaOCRResult identifies the OCR result document (the "text" result of an ocr job).
const SchemaOCRResult = "studio.ocr.result/v1"

// OCRResult is what an ocr job found: the text lines in reading order, each with the
// quadrilateral it occupies in the input image (after EXIF orientation). It is stored
// as the job's "text" result (text.json) beside an "overlay" image with the boxes drawn.
type OCRResult struct {
	Schema string `json:"schema"`
	// Width and Height are the input's size in pixels, the frame of every box.
	Width  int       `json:"width"`
	Height int       `json:"height"`
	Lines  []OCRLine `json:"lines"`
	// Text is every line's text joined with newlines, in reading order.
	Text string `json:"text"`
}

// OCRLine is one recognised line of text.
type OCRLine struct {
	// Index is the line's place in reading order (top to bottom, then left to right).
	Index int    `json:"index"`
	Text  string `json:"text"`
	// Confidence is the recogniser's mean per-character probability, 0..1.
	Confidence float64 `json:"confidence"`
	// Box is the line's corners in input pixels, clockwise from the top left:
	// [[x,y],[x,y],[x,y],[x,y]]. Rotated text gives a rotated box.
	Box [4][2]int `json:"box"`
	// Angle is 180 when the angle classifier turned the line upside down before reading
	// it, else 0.
	Angle int `json:"angle"`
}
