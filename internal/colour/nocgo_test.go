//go:build !cgo

package colour

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWithoutCgoProfilesAreRefusedNotIgnored(t *testing.T) {
	_, err := Parse(make([]byte, 200))
	require.ErrorIs(t, err, ErrUnavailable)
	require.Contains(t, err.Error(), "CGO_ENABLED=1")
}
