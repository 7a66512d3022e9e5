package imageio

// JPEG markers the scan counter needs.
const (
	markerSOI = 0xD8
	markerEOI = 0xD9
	markerSOS = 0xDA
	markerRST = 0xD0 // RST0..RST7 are 0xD0..0xD7
	markerTEM = 0x01
)

// jpegScans counts the scans (SOS segments) of a JPEG by walking its markers, reading
// no pixel data: O(file size), no allocation. It stops early once it has counted more
// than stopAfter. A truncated or malformed stream ends the count where it breaks; the
// decoder reports the damage.
//
// The count matters because a progressive JPEG's decoding cost is pixels × scans: every
// scan walks every block of its components, and a scan that only says "the next 16384
// blocks are empty" takes two bytes. A 4096x4096 file of a few hundred kilobytes with
// thousands of such scans keeps a decoder busy for minutes (5 ms a scan at 16.8 MP; a 10 MB file holds 250,000).
func jpegScans(data []byte, stopAfter int) int {
	if len(data) < 2 || data[0] != 0xFF || data[1] != markerSOI {
		return 0
	}
	scans := 0
	i := 2
	for i < len(data) {
		if data[i] != 0xFF {
			return scans // not at a marker: damaged
		}
		for i < len(data) && data[i] == 0xFF { // fill bytes
			i++
		}
		if i >= len(data) {
			return scans
		}
		m := data[i]
		i++
		switch {
		case m == markerEOI:
			return scans
		case m == markerSOI || m == markerTEM || (m >= markerRST && m <= markerRST+7):
			continue // standalone markers have no length
		}
		if i+2 > len(data) {
			return scans
		}
		n := int(data[i])<<8 | int(data[i+1])
		if n < 2 {
			return scans
		}
		i += n
		if m != markerSOS {
			continue
		}
		if scans++; scans > stopAfter {
			return scans
		}
		// Entropy-coded data runs to the next marker that is neither a stuffed 0xFF00
		// nor a restart marker.
		for i+1 < len(data) {
			if data[i] == 0xFF {
				if next := data[i+1]; next != 0x00 && (next < markerRST || next > markerRST+7) {
					break
				}
			}
			i++
		}
		if i+1 >= len(data) {
			return scans
		}
	}
	return scans
}
