//go:build !linux

package pivemu

import "net"

// quickACK is Linux's TCP_QUICKACK; elsewhere delayed ACKs stay.
func quickACK(net.Conn) {}
