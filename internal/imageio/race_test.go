//go:build race

package imageio

// raceEnabled is set when testing with the race detector, under which
// sync.Pool drops a random share of what it is given.
const raceEnabled = true
