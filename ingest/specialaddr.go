package ingest

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// specialRange is one row of the IANA special-purpose address registries (plus the
// multicast and deprecated blocks that are no place for a webhook either).
type specialRange struct {
	prefix netip.Prefix
	name   string
	rfc    string
}

// specialRanges are the IPv4 and IPv6 special-purpose address registries
// (iana-ipv4-special-registry, iana-ipv6-special-registry), whole: a callback may reach
// none of them, even the rows the registries mark globally reachable (NAT64, 6to4,
// Teredo and AS112 can all lead back into private networks or are no real receiver).
// IPv4-mapped IPv6 addresses (::ffff:0:0/96) are judged by their IPv4 address.
var specialRanges = []specialRange{
	// IPv4.
	{netip.MustParsePrefix("0.0.0.0/8"), "this network", "RFC 791"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private use", "RFC 1918"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared address space (carrier-grade NAT)", "RFC 6598"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback", "RFC 1122"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link local", "RFC 3927"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private use", "RFC 1918"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments", "RFC 6890"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation (TEST-NET-1)", "RFC 5737"},
	{netip.MustParsePrefix("192.31.196.0/24"), "AS112-v4", "RFC 7535"},
	{netip.MustParsePrefix("192.52.193.0/24"), "AMT", "RFC 7450"},
	{netip.MustParsePrefix("192.88.99.0/24"), "deprecated 6to4 relay anycast", "RFC 7526"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private use", "RFC 1918"},
	{netip.MustParsePrefix("192.175.48.0/24"), "direct delegation AS112 service", "RFC 7534"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking", "RFC 2544"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation (TEST-NET-2)", "RFC 5737"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation (TEST-NET-3)", "RFC 5737"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast", "RFC 5771"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved (and limited broadcast)", "RFC 1112, RFC 919"},
	// IPv6.
	{netip.MustParsePrefix("::/96"), "unspecified, loopback and deprecated IPv4-compatible", "RFC 4291"},
	{netip.MustParsePrefix("::ffff:0:0:0/96"), "IPv4-translated", "RFC 2765"},
	{netip.MustParsePrefix("64:ff9b::/96"), "IPv4-IPv6 translation (NAT64)", "RFC 6052"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local-use IPv4-IPv6 translation", "RFC 8215"},
	{netip.MustParsePrefix("100::/64"), "discard-only", "RFC 6666"},
	{netip.MustParsePrefix("100:0:0:1::/64"), "dummy IPv6 prefix", "RFC 9780"},
	{netip.MustParsePrefix("2001::/23"), "IETF protocol assignments (Teredo, benchmarking, AMT, AS112, ORCHID, DET)", "RFC 2928"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation", "RFC 3849"},
	{netip.MustParsePrefix("2002::/16"), "6to4", "RFC 3056"},
	{netip.MustParsePrefix("2620:4f:8000::/48"), "direct delegation AS112 service", "RFC 7534"},
	{netip.MustParsePrefix("3fff::/20"), "documentation", "RFC 9637"},
	{netip.MustParsePrefix("5f00::/16"), "segment routing (SRv6) SIDs", "RFC 9602"},
	{netip.MustParsePrefix("fc00::/7"), "unique local", "RFC 4193"},
	{netip.MustParsePrefix("fe80::/10"), "link-local unicast", "RFC 4291"},
	{netip.MustParsePrefix("fec0::/10"), "deprecated site-local", "RFC 3879"},
	{netip.MustParsePrefix("ff00::/8"), "multicast", "RFC 4291"},
}

// ErrSpecialAddress refuses a callback whose address is in an IANA special-purpose range
// (loopback, private, shared, benchmarking, documentation, translation, multicast...).
var ErrSpecialAddress = errors.New("callback address is in a special-purpose range (loopback, private, link-local, reserved...)")

// CheckCallbackAddr returns an error wrapping ErrSpecialAddress, naming the range and
// its RFC, when a webhook may not reach addr; nil for a public unicast address.
func CheckCallbackAddr(addr netip.Addr) error {
	if !addr.IsValid() {
		return fmt.Errorf("%w: invalid address", ErrSpecialAddress)
	}
	addr = addr.Unmap().WithZone("")
	for _, r := range specialRanges {
		if r.prefix.Contains(addr) {
			return fmt.Errorf("%w: %s is %s (%s, %s)", ErrSpecialAddress, addr, r.name, r.prefix, r.rfc)
		}
	}
	return nil
}

// WebhookDialer returns the dialer webhooks connect with. Unless allowPrivate, its
// Control function checks the address actually dialled, after name resolution, so a
// name that resolves (or is rebound) to a special-purpose address is refused before
// any packet is sent to it.
func WebhookDialer(allowPrivate bool) *net.Dialer {
	d := &net.Dialer{Timeout: 5 * time.Second}
	if !allowPrivate {
		d.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: cannot parse dialled address %q", ErrSpecialAddress, address)
			}
			return CheckCallbackAddr(ap.Addr())
		}
	}
	return d
}
