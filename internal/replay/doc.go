// Package replay re-reads past job requests from the REQUESTS stream (its retention is
// the replay window) and compares a shadow run's outputs with the original's: the
// window reader (ReadWindow: an ordered consumer from a start time, sampled, bounded,
// never a request of an erased user), the comparison metrics (mask IoU, PSNR, SSIM,
// text equality and CER) and the report (Row, Summary, WriteTable).
package replay
