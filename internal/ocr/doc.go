// Package ocr reads text in images with PaddleOCR's three models: a DB text detector, a
// 0/180 degree angle classifier and a CTC text recogniser. It holds the algorithms
// around the models, each following PaddleOCR's reference implementation
// (ppocr/postprocess/db_postprocess.py, rec_postprocess.py, tools/infer/predict_*.py):
// the detector's input size and resize (DetSize, ResizeLinear), DB post-processing of
// the probability map to rotated boxes (Boxes), cropping a box upright (Crop), the
// classifier's and recogniser's input tensors (NormalizeCrops), CTC greedy decoding with
// the dictionary (Dictionary.Decode), reading order (SortReadingOrder), and a Reader that
// chains them around caller-supplied model runs. It imports no pipeline code, so the
// preprocess, inference and postprocess stages all use it without importing each other.
package ocr
