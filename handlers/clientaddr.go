package handlers

import (
	"net"

	"github.com/labstack/echo/v4"
)

// clientAddr decides where a request comes from. X-Forwarded-For is written by whoever
// sends the request, so it is believed only when the peer is a configured proxy, and then
// only as far back as the chain stays within trusted proxies.
func clientAddr(trusted []*net.IPNet) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, n := range trusted {
		opts = append(opts, echo.TrustIPRange(n))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}
