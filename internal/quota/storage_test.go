package quota_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/internal/blob/natsobj"
	"github.com/creativeai-studio/studio/internal/quota"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// The kept usage is the object store's sum plus what was reserved since; a check
// between counts reads it without listing, and the next count replaces it with the
// truth whatever happened meanwhile (a redelivered store stage writing the same key
// again, a deletion). Forget makes the next check count at once.
func TestStorageUsageIsKeptBetweenCountsAndCorrectedByTheNext(t *testing.T) {
	ctx := context.Background()
	s := streamstest.Start(t)
	blobs, err := natsobj.Open(ctx, s.JS, natsobj.Bucket)
	require.NoError(t, err)
	put := func(key string, n int) {
		_, err := blobs.Put(ctx, key, bytes.NewReader(make([]byte, n)), int64(n), "")
		require.NoError(t, err)
	}
	st, err := quota.OpenStorage(ctx, s.JS, blobs, quota.StorageLimits{Tenants: map[string]int64{"ta": 1000}, Recount: time.Hour})
	require.NoError(t, err)

	put("inputs/ta/j1/original.png", 300)
	put("results/ta/j1/cutout.png", 200)
	put("uploads/ta/u1/x", 100)
	put("inputs/tb/j2/original.png", 5000) // another tenant
	put("work/j1/input.u8", 5000)          // intermediate, not counted
	u, err := st.Usage(ctx, "ta")
	require.NoError(t, err)
	require.EqualValues(t, 600, u.Bytes())
	require.Equal(t, 3, u.Objects)

	// A new input is reserved; the check sees it without a listing.
	put("inputs/ta/j3/original.png", 300)
	require.NoError(t, st.Reserve(ctx, "ta", 300))
	require.NoError(t, st.Check(ctx, "ta", 100))
	err = st.Check(ctx, "ta", 101)
	var ex *quota.StorageExceeded
	require.True(t, errors.As(err, &ex), "%v", err)
	require.ErrorIs(t, err, quota.ErrStorageQuota)
	require.EqualValues(t, 900, ex.Used)
	require.EqualValues(t, 1000, ex.Limit)

	// The store stage redelivered writes its result again, and a result is deleted:
	// until the next count the kept value stands; after it, the store's sum.
	put("results/ta/j1/cutout.png", 200)
	require.NoError(t, blobs.Delete(ctx, "uploads/ta/u1/x"))
	u, err = st.Usage(ctx, "ta")
	require.NoError(t, err)
	require.EqualValues(t, 900, u.Bytes(), "kept between counts")
	require.NoError(t, st.Forget(ctx, "ta"))
	u, err = st.Usage(ctx, "ta")
	require.NoError(t, err)
	require.EqualValues(t, 800, u.Bytes(), "counted again: the redelivered result once, the upload gone")
	require.Zero(t, u.Reserved)

	// A tenant without a quota is never refused; a second Storage (another replica)
	// reads the same kept usage.
	require.NoError(t, st.Check(ctx, "tb", 1<<40))
	other, err := quota.OpenStorage(ctx, s.JS, blobs, quota.StorageLimits{Default: 1000, Recount: time.Hour})
	require.NoError(t, err)
	u, err = other.Usage(ctx, "ta")
	require.NoError(t, err)
	require.EqualValues(t, 800, u.Bytes())
}

func TestStorageQuotaFlagsReadSizesPerTenant(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
	}{{"10GiB", 10 << 30}, {"512", 512}, {"64 KiB", 64 << 10}, {"2MB", 2_000_000}, {"0", 0}} {
		got, err := quota.ParseBytes(tt.in)
		require.NoError(t, err, tt.in)
		require.Equal(t, tt.want, got, tt.in)
	}
	for _, bad := range []string{"-1", "ten", "1.5GiB", "99999999999TiB"} {
		_, err := quota.ParseBytes(bad)
		require.Error(t, err, bad)
	}
	m, err := quota.ParseTenantBytes("acme=100GiB, trial=1GiB")
	require.NoError(t, err)
	require.Equal(t, map[string]int64{"acme": 100 << 30, "trial": 1 << 30}, m)
	_, err = quota.ParseTenantBytes("a.b=1GiB")
	require.Error(t, err, "a tenant id is a token")
	l := quota.StorageLimits{Default: 5, Tenants: m}
	n, own := l.For("acme")
	require.True(t, own)
	require.EqualValues(t, 100<<30, n)
	n, own = l.For("other")
	require.False(t, own)
	require.EqualValues(t, 5, n)
}
