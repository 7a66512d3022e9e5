package sink

import (
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"
)

func TestCompressionIsOffOnlyWhenEveryServerIsOnThisHost(t *testing.T) {
	for _, tc := range []struct {
		addrs []string
		want  clickhouse.CompressionMethod
	}{
		{[]string{"127.0.0.1:9000"}, clickhouse.CompressionNone},
		{[]string{"localhost:9000", "[::1]:9000"}, clickhouse.CompressionNone},
		{[]string{"127.0.0.1:9000", "ch-2.internal:9000"}, clickhouse.CompressionLZ4},
		{[]string{"10.0.0.5:9000"}, clickhouse.CompressionLZ4},
		{[]string{"clickhouse"}, clickhouse.CompressionLZ4},
	} {
		if got := compression(tc.addrs).Method; got != tc.want {
			t.Errorf("compression(%v) = %v, want %v", tc.addrs, got, tc.want)
		}
	}
}
